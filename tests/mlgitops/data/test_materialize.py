from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlgitops.data.materialize import materialize, pull_failure
from mlgitops.errors import DataError
from mlgitops.io import file_md5
from tests.support.project import make_project, run

DATA = Path("data/transactions.csv")
pytestmark = pytest.mark.timeout(300)


def _forget_data(root: Path) -> None:
    (root / DATA).unlink()
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)


def test_regenerates_when_no_remote_and_verifies_hash(tmp_path):
    root = make_project(tmp_path / "repo", default_data=True)
    expected = file_md5(root / DATA)
    _forget_data(root)
    result = materialize(Path("data.dvc"), DATA, cwd=root)
    assert result.source == "generated"
    assert file_md5(root / DATA) == expected
    # The expected path on a new machine, said as such: no half-quoted DVC error.
    assert result.detail == (
        "the data is not on the DVC remote yet (as on a new machine); regenerated "
        f"{DATA} with the embedded generator, hash matches data.dvc"
    )
    # Now in the local cache too, so it can be pushed.
    run(["dvc", "push"], root)


def test_pulls_from_the_remote_when_it_has_the_data(tmp_path):
    root = make_project(tmp_path / "repo", rows=800)
    run(["dvc", "push"], root)
    expected = file_md5(root / DATA)
    _forget_data(root)
    result = materialize(Path("data.dvc"), DATA, cwd=root)
    assert result.source == "pulled"
    assert file_md5(root / DATA) == expected


def test_present_data_is_left_alone(tmp_path):
    root = make_project(tmp_path / "repo", rows=800)
    assert materialize(Path("data.dvc"), DATA, cwd=root).source == "present"


def test_mismatch_fails_loudly(tmp_path):
    # data.dvc records a small custom dataset, which the default generator cannot reproduce.
    root = make_project(tmp_path / "repo", rows=800)
    _forget_data(root)
    with pytest.raises(DataError, match="does not match the hash recorded in data.dvc"):
        materialize(Path("data.dvc"), DATA, cwd=root)


def test_missing_dvc_file(tmp_path):
    with pytest.raises(DataError, match="nothing records which dataset"):
        materialize(Path("data.dvc"), DATA, cwd=tmp_path)


def test_edited_data_is_never_overwritten(tmp_path):
    root = make_project(tmp_path / "repo", rows=800)
    (root / DATA).write_text("my,edits\n1,2\n")
    with pytest.raises(DataError, match="differs from data.dvc"):
        materialize(Path("data.dvc"), DATA, cwd=root)
    assert (root / DATA).read_text() == "my,edits\n1,2\n"


def test_a_pull_failure_is_quoted_with_the_targets_it_lists():
    stderr = (
        "ERROR: failed to pull data from the cloud - Checkout failed for following targets:\n"
        "data\nIs your cache up to date?\n<https://error.dvc.org/missing-files>\n"
    )
    assert pull_failure(stderr) == (
        "dvc pull failed (failed to pull data from the cloud - Checkout failed for following "
        "targets: data)"
    )
    assert pull_failure("") == "dvc pull failed (no output)"
