from __future__ import annotations

import pytest

from mlgitops.config import load_params, parse_params
from mlgitops.errors import ConfigError
from tests.support.project import REPO_ROOT, raw_params


def test_project_params_are_valid():
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.data.format == "csv"
    assert params.validate_.min_rows > 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["train"].update(model="xgboost"), "train.model: Input should be"),
        (lambda r: r["train"].update(learning_rate=0.1), "train.learning_rate: Extra inputs"),
        (lambda r: r["threshold"].update(target_recall=1.5), "threshold.target_recall"),
        (lambda r: r["package"].update(image_repository="r/x:1"), "package.image_repository"),
        (lambda r: r["package"].update(bento_name="Not_Valid"), "package.bento_name"),
        (lambda r: r["data"].update(column_types={"is_fraud": "numeric"}), "target column cannot"),
        (lambda r: r["validate"].update(min_rows="many"), "validate.min_rows"),
        (lambda r: r.pop("paths"), "paths: Field required"),
    ],
)
def test_invalid_params_name_the_field(mutate, message):
    raw = raw_params()
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def test_unsupported_data_format():
    raw = raw_params()
    raw["data"]["path"] = "data/x.xlsx"
    with pytest.raises(ConfigError, match="unsupported file type 'x.xlsx'"):
        _ = parse_params(raw).data.format


def test_unparsable_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
