"""`dvc exp run` as the README shows it, in a temp git+DVC project: every experiment finishes and
is listed with its gate verdict; one that does not PASS leaves the release (release.json, k8s/,
the bento archive, the report) as it was and cannot be deployed or merged; one that PASSes
under another params hash is another bento, whose release.json, pinned record (in the archive
and the store) and served /metadata say the same, field by field."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from mlgitops.errors import GateFailedError, ReleaseNotPassedError
from tests.support.project import REPO_ROOT, VENV_BIN, make_project, run
from tests.support.readme import readme_blocks
from tests.support.serve import mlgitops_serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
# What a non-PASS experiment must leave as it was: the release and everything deployed.
RELEASE_FILES = ("release.json", "k8s", "artifacts/bento/bento.tar", "reports/model_report.json")


@dataclass
class Project:
    root: Path
    env: dict[str, str]

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(list(cmd), self.root, check=check, env=self.env)

    def shell(self, script: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        return subprocess.run(
            ["bash", "-c", script], cwd=self.root, env=env, capture_output=True, text=True
        )

    def back_to_main(self) -> None:
        self.run("git", "checkout", "-q", "-f", "main")
        self.run("git", "clean", "-fdq")
        self.run("dvc", "checkout", "-q", "--force")
        assert "up to date" in self.run("dvc", "status").stdout


def _readme_command(prefix: str) -> str:
    """The README's own `dvc exp ...` command, as a user would copy it."""
    [line] = {
        line.split("  #")[0].strip() for line in README.splitlines() if line.startswith(prefix)
    }
    return line


def _digest(root: Path, name: str) -> str:
    path = root / name
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _release_state(root: Path) -> dict[str, str]:
    return {name: _digest(root, name) for name in RELEASE_FILES}


def _experiment_name(output: str) -> str:
    match = re.search(r"Ran experiment\(s\): (\S+)", output)
    assert match, output
    return match.group(1)


def _listed_verdict(project: Project, name: str) -> str:
    """The experiment's row of `dvc exp show`: its gate verdict column."""
    table = project.run("dvc", "exp", "show", "--csv").stdout
    rows = [row for row in csv.DictReader(io.StringIO(table)) if row["Experiment"] == name]
    assert len(rows) == 1, table[:2000]
    return rows[0]["verdict"]


def _gate(root: Path) -> dict:
    return json.loads((root / "reports" / "gate.json").read_text())


# The DVC metrics: what people compare across experiments, in a terminal of WIDTH columns. This
# project tunes for ROC AUC, so its CV column is cv_roc_auc.
HEADLINE = {
    "metrics/evaluate.json": ["roc_auc", "pr_auc", "recall", "fpr", "threshold", "cost_per_1000"],
    "metrics/gate.json": ["verdict", "roc_auc_diff", "cost_diff"],
    "metrics/tune.json": ["cv_roc_auc"],
}
WIDTH = 200
# Columns of `dvc exp show --csv` before the headline metrics (issue 18: 592, of which 346
# were metrics); what is left are params.yaml's keys and every stage's deps, which DVC lists.
MAX_CSV_COLUMNS = 300


def _assert_readable_at_200_columns(project: Project, experiment: str) -> None:
    """`dvc metrics show` fits the terminal; `dvc exp show` starts each row with the experiment
    and every headline figure, in full, within the first WIDTH columns (its pager, less -RS,
    shows those; params and deps follow to the right). With tuning off (the README's
    experiment) metrics/tune.json is empty, so its column is the baseline's alone."""
    everything = {name for keys in HEADLINE.values() for name in keys}
    shown = project.run("dvc", "metrics", "show").stdout.splitlines()
    assert max(len(line) for line in shown) <= WIDTH, shown
    markdown = project.run("dvc", "metrics", "show", "--md").stdout.strip().splitlines()
    header = [cell.strip() for cell in markdown[0].strip("|").split("|")]
    required = set(HEADLINE["metrics/evaluate.json"] + HEADLINE["metrics/gate.json"])
    assert header[0] == "Path"
    assert required <= set(header[1:]) <= everything
    assert header[1:] == sorted(header[1:])
    assert {row.split("|")[1].strip() for row in markdown[2:]} <= set(HEADLINE)

    listed = json.loads(project.run("dvc", "exp", "show", "--json").stdout)
    names: dict[str, None] = {}
    for baseline in listed:
        for state in [baseline, *(e["revs"][0] for e in baseline.get("experiments") or [])]:
            metrics = {path: list(m["data"]) for path, m in state["data"]["metrics"].items()}
            assert set(metrics) <= set(HEADLINE)
            # DVC leaves out null figures: no CV score with tuning off, no differences when the
            # gate had no champion (the first release).
            for path, keys in metrics.items():
                assert keys == [k for k in HEADLINE[path] if k in keys], (path, keys)
                names.update(dict.fromkeys(keys))
            assert metrics["metrics/gate.json"][0] == "verdict"
            assert metrics["metrics/evaluate.json"] == HEADLINE["metrics/evaluate.json"]
    assert required <= set(names) <= everything
    # One column per headline figure, unprefixed (no name is in two files), first after the
    # experiment's own columns.
    columns = next(csv.reader(io.StringIO(project.run("dvc", "exp", "show", "--csv").stdout)))
    assert len(columns) <= MAX_CSV_COLUMNS
    first = columns.index("parent") + 1
    assert sorted(columns[first : first + len(names)]) == sorted(names)

    table = project.shell("dvc exp show").stdout.splitlines()
    [head] = [line for line in table if line.lstrip().startswith("Experiment")]
    visible = head[:WIDTH]
    assert all(f" {name} " in visible + " " for name in names), visible
    [row] = [line for line in table if experiment in line]
    assert "…" not in row[:WIDTH]
    # The tree mark, rev and [name], the time, then a value under every headline name.
    assert len(row[:WIDTH].split()) >= 5 + len(names), row[:WIDTH]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    base = tmp_path_factory.mktemp("experiments")
    root = make_project(base / "repo", rows=4000)
    # `train:` as written is a poor config here (one split), so the tuner picks one of its
    # sampled trials, as it does on the default data: then a change to `train:` alone leaves
    # the model as it is. (ROC AUC: on 4,000 rows a near-constant model wins on log-loss.)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["tune"]["objective"] = "roc_auc"
    params["train"]["hist_gradient_boosting"].update(max_iter=1, max_leaf_nodes=2)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # As in a clone: the repository's ignore rules and its offline plots page.
    ignored = (root / ".gitignore").read_text() + (REPO_ROOT / ".gitignore").read_text()
    (root / ".gitignore").write_text(ignored)
    template = REPO_ROOT / "tools" / "dvc-plots" / "plots.html"
    run(["dvc", "config", "plots.html_template", str(template)], root)
    project = Project(root, {"BENTOML_HOME": str(base / "bentoml"), "COLUMNS": "200"})
    project.run("dvc", "repro")
    assert json.loads((root / "artifacts" / "tuned_params.json").read_text())["best_trial"] != 0
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "release A")
    return project


def _pin_in_archive(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        [name] = [n for n in tar.getnames() if n.endswith("src/mlgitops/serving/pinned.json")]
        return json.loads(tar.extractfile(name).read())


def _served_metadata(project: Project, home: Path) -> dict:
    """`mlgitops serve` of release.json's bento, imported from the archive into an empty store."""
    env = {**os.environ, **project.env, "BENTOML_HOME": str(home)}
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    log = home.parent / "serve.log"
    with mlgitops_serve([], cwd=project.root, env=env, log=log) as url:
        return httpx.get(f"{url}/metadata", timeout=10).json()


def _one_truth(project: Project, tmp_path: Path) -> dict:
    """release.json, the pin in the bento archive, the pin and model metadata in the store and
    the served /metadata, compared field by field; returns release.json."""
    root, home = project.root, Path(project.env["BENTOML_HOME"])
    release = json.loads((root / "release.json").read_text())
    name, version = release["bento_name"], release["bento_version"]
    archived = _pin_in_archive(root / "artifacts" / "bento" / "bento.tar")
    stored_pin = json.loads(
        (home / "bentos" / name / version / "src/mlgitops/serving/pinned.json").read_text()
    )
    model_yaml = yaml.safe_load((home / "models" / name / version / "model.yaml").read_text())
    for source in (archived["release"], stored_pin["release"], model_yaml["metadata"]):
        assert set(source) == set(release)
        for field, value in release.items():
            assert source[field] == value, field
    assert archived["bento_tag"] == stored_pin["bento_tag"] == f"{name}:{version}"
    assert archived["model_tag"] == release["model_tag"]
    patch = yaml.safe_load((root / "k8s" / "base" / "release.yaml").read_text())
    template = patch["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == release["image"]
    assert template["metadata"]["annotations"]["mlgitops.io/params-hash"] == release["params_hash"]
    served = _served_metadata(project, tmp_path / "fresh-bentoml-home")
    assert served["bento_tag"] == f"{name}:{version}"
    shared = set(served) & set(release)
    assert shared >= {
        "model_tag", "model_hash", "model_format", "data_hash", "params_hash", "threshold",
        "threshold_policy", "metrics", "data_until", "image", "mlgitops_version",
    }  # fmt: skip
    for field in shared:
        assert served[field] == release[field], field
    return release


def test_the_readme_experiment_finishes_and_is_listed_with_its_verdict(
    project: Project, tmp_path: Path
) -> None:
    command = _readme_command("dvc exp run")
    assert command == (
        "dvc exp run -S tune.enabled=false -S train.hist_gradient_boosting.learning_rate=0.05"
    )
    before = _release_state(project.root)
    champion = json.loads((project.root / "release.json").read_text())
    result = project.shell(command)
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        name = _experiment_name(result.stdout + result.stderr)
        verdict = _gate(project.root)["verdict"]
        assert _listed_verdict(project, name) == verdict
        _assert_readable_at_200_columns(project, name)
        # The README's `dvc exp show` line shows it too.
        shown = project.shell(_readme_command("dvc exp show")).stdout
        [row] = [line for line in shown.splitlines() if name in line]
        assert verdict in row
        # The README's experiment changes the model (tuning off, another learning rate).
        assert _gate(project.root)["challenger_model_hash"] != champion["model_hash"]
        if verdict == "PASS":
            assert json.loads((project.root / "release.json").read_text()) != champion
        else:
            assert f"package: gate verdict {verdict} (see reports/gate.md): release not " in (
                result.stdout
            )
            assert _release_state(project.root) == before
        _one_truth(project, tmp_path)
    finally:
        project.back_to_main()


def test_an_experiment_that_loses_finishes_and_leaves_the_release(
    project: Project, tmp_path: Path
) -> None:
    root = project.root
    before = _release_state(root)
    lock_before = yaml.safe_load((root / "dvc.lock").read_text())
    result = project.run(
        "dvc", "exp", "run", "-S", "tune.enabled=false",
        "-S", "train.hist_gradient_boosting.max_iter=1",
        "-S", "train.hist_gradient_boosting.max_leaf_nodes=2",
    )  # fmt: skip
    try:
        assert result.returncode == 0
        name = _experiment_name(result.stdout + result.stderr)
        assert _gate(root)["verdict"] == "FAIL"
        assert _listed_verdict(project, name) == "FAIL"
        lines = [line for line in result.stdout.splitlines() if "release not changed" in line]
        assert [line.split(":")[0] for line in lines] == ["rules", "package", "report"]
        assert lines[1].startswith("package: gate verdict FAIL (see reports/gate.md): release")
        # The release pin, the k8s manifests, the bento archive and the report: as they were.
        assert project.run("git", "diff", "--stat", "release.json", "k8s/").stdout == ""
        assert _release_state(root) == before
        lock = yaml.safe_load((root / "dvc.lock").read_text())
        assert lock["stages"]["package"]["outs"] == lock_before["stages"]["package"]["outs"]
        # The experiment's own results are what changed, recorded consistently: not half-done.
        assert lock["stages"]["train"]["outs"] != lock_before["stages"]["train"]["outs"]
        assert "up to date" in project.run("dvc", "status").stdout
        released = json.loads((root / "release.json").read_text())
        assert _one_truth(project, tmp_path) == released

        # Committed anyway: CI's `report pr` fails the PR by the verdict, deploy refuses it.
        project.run("git", "switch", "-q", "-c", "lost-experiment")
        project.run("git", "add", "-A")
        project.run("git", "commit", "-qm", "a lost experiment")
        pr = project.run("mlgitops", "report", "pr", "--base", "main", check=False)
        assert pr.returncode == GateFailedError.exit_code
        assert "## Not a release: head's model did not pass the gate (FAIL)" in pr.stdout
        deploy = project.run(
            "mlgitops", "deploy", "--env", "staging", "--kubeconfig", str(tmp_path / "none"),
            check=False,
        )  # fmt: skip
        assert deploy.returncode == ReleaseNotPassedError.exit_code
        [line] = deploy.stderr.strip().splitlines()
        assert line.startswith("error: HEAD (")
        assert f"still names {released['bento_name']}:{released['bento_version']}" in line
    finally:
        project.back_to_main()


def test_the_same_model_under_other_params_is_another_bento_with_one_record(
    project: Project, tmp_path: Path
) -> None:
    """The issue's case: tuning on, `train:` changed, the tuner picks the same model; the params
    hash moves, so does the bento tag, and every copy of the record says the new hash."""
    root = project.root
    champion = json.loads((root / "release.json").read_text())
    result = project.run(
        "dvc", "exp", "run", "-S", "train.hist_gradient_boosting.learning_rate=0.05"
    )
    try:
        name = _experiment_name(result.stdout + result.stderr)
        # The same model: the gate's record (a PASS on it) still holds, its stage did not rerun.
        gate = _gate(root)
        assert gate["verdict"] == "PASS"
        assert gate["challenger_model_hash"] == champion["model_hash"]
        assert "Running stage 'gate'" not in result.stdout
        assert _listed_verdict(project, name) == "PASS"
        release = _one_truth(project, tmp_path)
        assert release["model_hash"] == champion["model_hash"]
        assert release["params_hash"] != champion["params_hash"]
        assert release["bento_version"] != champion["bento_version"]
        assert project.run("git", "diff", "--stat", "release.json").stdout != ""
    finally:
        project.back_to_main()


def test_the_quick_start_commands_leave_the_tree_clean(project: Project) -> None:
    """Every command of the README's Quick start but the experiment (its results stay in the
    work tree until `git checkout -- . && dvc checkout`, tested above) leaves `git status`
    as it was: clean."""
    [_, manual] = readme_blocks("## Quick start")
    commands = [line.split("  #")[0].strip() for line in manual.splitlines() if line.strip()]
    assert commands[0] == "source .venv/bin/activate"  # the tests' PATH has the venv already
    assert [c for c in commands if c.startswith("dvc exp run")] == [_readme_command("dvc exp run")]
    ran = []
    for command in commands[1:]:
        if command.startswith("dvc exp run"):
            continue
        result = project.shell(command)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        status = project.run("git", "status", "--porcelain", "--untracked-files=all").stdout
        assert status == "", (command, status)
        ran.append(command.split()[:3])
    assert ["dvc", "plots", "show"] in ran
    assert ["dvc", "metrics", "show"] in ran
    assert (project.root / "dvc_plots" / "index.html").is_file()
