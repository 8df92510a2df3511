from __future__ import annotations

import numpy as np
import pytest

from mlgitops.errors import ArtifactError
from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import CategoricalInput, score
from mlgitops.export.tables import columns_of


def test_the_exported_form_scores_like_the_pipeline(trained) -> None:
    model = from_pipeline(trained.pipeline)
    got = score(model, columns_of(trained.test, model.names))
    assert np.max(np.abs(got - trained.reference())) <= 1e-12


def test_rare_categories_share_the_encoders_infrequent_code(trained) -> None:
    if trained.params.train.model == "logistic_regression":
        pytest.skip("one-hot: covered by the score test")
    model = from_pipeline(trained.pipeline)
    cats = [spec for spec in model.inputs if isinstance(spec, CategoricalInput)]
    assert cats, "the test data has categorical features"
    # min_frequency groups the rare categories: several categories, one code.
    merchant = next(c for c in cats if c.name == "country")
    assert len(set(merchant.values)) < len(merchant.categories)


def test_an_unsupported_estimator_is_a_one_line_error(trained) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    estimator = DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ArtifactError, match="cannot export a DecisionTreeClassifier"):
        from_pipeline(Pipeline([("preprocess", trained.pipeline[0]), ("model", estimator)]))
