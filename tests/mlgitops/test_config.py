from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.config import ServingConfig, load_params, parse_params
from mlgitops.errors import ConfigError, ServingError
from tests.support.project import REPO_ROOT, raw_params


def test_project_params_are_valid():
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.data.format == "csv"
    assert params.validate_.min_rows > 0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["train"].update(model="xgboost"), "train.model: Input should be"),
        (lambda r: r["train"].update(learning_rate=0.1), "train.learning_rate: unknown key"),
        (lambda r: r["threshold"].update(target_recall=1.5), "threshold.target_recall"),
        (lambda r: r["package"].update(image_repository="r/x:1"), "package.image_repository"),
        (lambda r: r["package"].update(bento_name="Not_Valid"), "package.bento_name"),
        (lambda r: r["data"].update(column_types={"is_fraud": "numeric"}), "target column cannot"),
        (lambda r: r["validate"].update(min_rows="many"), "validate.min_rows"),
        (lambda r: r.pop("paths"), "paths: Field required"),
        (lambda r: r["serving"].update(max_bach_size=5), "serving.max_bach_size: unknown key"),
        (lambda r: r["serving"].update(workers=0), "serving.workers"),
        (lambda r: r["serving"].update(git_commit="abc"), "git_commit: set by the environment"),
    ],
)
def test_invalid_params_name_the_field(mutate, message):
    raw = raw_params()
    mutate(raw)
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


def _renamed(section: dict, old: str, new: str) -> None:
    section[new] = section.pop(old)


@pytest.mark.parametrize(
    ("mutate", "line"),
    [
        (
            lambda r: _renamed(
                r["train"]["hist_gradient_boosting"], "learning_rate", "learning_rte"
            ),
            "train.hist_gradient_boosting.learning_rte: unknown key; did you mean 'learning_rate'?",
        ),
        # The typo, not the required key it leaves missing, is the error shown.
        (
            lambda r: _renamed(r["train"], "model", "modle"),
            "train.modle: unknown key; did you mean 'model'? (+1 more)",
        ),
        (
            lambda r: _renamed(r, "serving", "servng"),
            "servng: unknown key; did you mean 'serving'?",
        ),
        # An alias (validate_ in the model) is suggested as params.yaml spells it.
        (
            lambda r: _renamed(r, "validate", "validte"),
            "validte: unknown key; did you mean 'validate'?",
        ),
        (
            lambda r: r["serving"].update(workrs=2),
            "serving.workrs: unknown key; did you mean 'workers'?",
        ),
        (
            lambda r: r["monitoring"]["rules"].update(resource_nme="x"),
            "monitoring.rules.resource_nme: unknown key; did you mean 'resource_name'?",
        ),
        # Under an optional section (experiment: ExperimentConfig | None).
        (
            lambda r: r.update(experiment={"enabld": False}),
            "experiment.enabld: unknown key; did you mean 'enabled'?",
        ),
        (
            lambda r: r["report"]["words"].update(postive="x"),
            "report.words.postive: unknown key; did you mean 'positive'?",
        ),
    ],
)
def test_a_misspelt_key_is_one_line_with_a_suggestion(mutate, line):
    raw = raw_params()
    mutate(raw)
    with pytest.raises(ConfigError) as error:
        parse_params(raw, Path("params.yaml"))
    assert str(error.value) == f"params.yaml: {line}"


def test_a_key_like_none_lists_the_keys_there():
    raw = raw_params()
    raw["gate"]["zzz"] = 1
    with pytest.raises(ConfigError) as error:
        parse_params(raw)
    message = str(error.value)
    assert message.startswith("params.yaml: gate.zzz: unknown key (known: base, auc_margin, ")
    assert "\n" not in message


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


def test_serving_settings_one_environment_mapping(monkeypatch):
    # params.yaml is validated without the environment; from_env reads what environment() wrote.
    monkeypatch.setenv("MLGITOPS_MAX_BATCH_SIZE", "3")
    params = parse_params(raw_params())
    assert params.serving.max_batch_size == raw_params()["serving"]["max_batch_size"]
    settings = params.serving.model_copy(update={"tracing": True, "git_commit": "abc"})
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    assert ServingConfig.from_env() == settings
    assert settings.environment()["MLGITOPS_GIT_COMMIT"] == "abc"


def test_a_misspelt_serving_variable_is_named_with_a_suggestion():
    with pytest.raises(ServingError) as error:
        ServingConfig.from_env({"MLGITOPS_WORKRES": "2"})
    assert str(error.value) == (
        "environment variable MLGITOPS_WORKRES: no serving setting; did you mean MLGITOPS_WORKERS?"
    )
    with pytest.raises(ServingError, match="did you mean MLGITOPS_PREDICTION_LOG"):
        ServingConfig.from_env({"MLGITOPS_PREDICTION_LOGS": "off"})
    # Other tools' variables share the prefix and are none of the server's business.
    other = {"MLGITOPS_CACHE": "/c", "MLGITOPS_BENTO_ARCHIVE": "a.tar", "MLGITOPS_KUBECTL": "k"}
    assert ServingConfig.from_env({**other, "MLGITOPS_WORKERS": "3"}).workers == 3
    # Empty is unset (a pod's variable from a missing annotation).
    assert ServingConfig.from_env({"MLGITOPS_GIT_COMMIT": ""}).git_commit is None


def test_a_bad_serving_variable_is_one_line_naming_it():
    with pytest.raises(ServingError) as error:
        ServingConfig.from_env({"MLGITOPS_MAX_BATCH_SIZE": "0"})
    assert str(error.value) == (
        "environment variable MLGITOPS_MAX_BATCH_SIZE='0': Input should be greater than or "
        "equal to 1"
    )
    with pytest.raises(ServingError, match="MLGITOPS_TRACING='maybe': Input should be a valid"):
        ServingConfig.from_env({"MLGITOPS_TRACING": "maybe"})


def test_the_id_column_is_defined_once() -> None:
    from tests.support.project import raw_params

    raw = raw_params()
    assert parse_params(raw).id_column == raw["data"]["id_column"]
    raw["monitoring"]["id_column"] = "other_id"
    with pytest.raises(ConfigError, match="differs from data.id_column"):
        parse_params(raw)
    raw = raw_params()
    raw["data"]["column_types"][raw["data"]["id_column"]] = "numeric"
    with pytest.raises(ConfigError, match="cannot be a feature"):
        parse_params(raw)


def test_no_experiment_by_default_and_an_off_one_needs_no_challenger():
    assert load_params(REPO_ROOT / "params.yaml").active_experiment is None
    raw = raw_params()
    raw["experiment"] = {"enabled": False}
    params = parse_params(raw)
    assert params.experiment is not None
    assert params.active_experiment is None


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({"enabled": True, "challenger": "v2", "share": 0.0}, "experiment.share: Input should be"),
        ({"enabled": True, "challenger": "v2", "share": 1.0}, "experiment.share: Input should be"),
        ({"enabled": True}, "challenger: a Git revision is required"),
        ({"enabled": True, "challenger": "  "}, "challenger: a Git revision is required"),
        ({"enabled": True, "challenger": "v2", "mode": "canary"}, "experiment.mode"),
        (
            {"enabled": True, "challenger": "v2", "primary_metric": "recall", "min_effect": 5},
            "min_effect: recall is a fraction",
        ),
        ({"enabled": True, "challenger": "v2", "assignment_key": "is_fraud"}, "is the target"),
    ],
)
def test_bad_experiments_are_one_line_errors(experiment, message):
    raw = raw_params()
    raw["experiment"] = experiment
    with pytest.raises(ConfigError, match=message) as error:
        parse_params(raw)
    assert "\n" not in str(error.value)


def test_the_assignment_key_defaults_to_the_id_column_and_must_be_a_column():
    from mlgitops.config import experiment_key_error

    raw = raw_params()
    raw["experiment"] = {"enabled": True, "challenger": "v2"}
    assert parse_params(raw).experiment_key == raw["data"]["id_column"]
    assert experiment_key_error("transaction_id", ["amount", "transaction_id"]) is None
    assert experiment_key_error("card_id", ["amount", "transaction_id"]) == (
        "experiment.assignment_key: 'card_id' is not a column of the data (amount, transaction_id)"
    )
