"""README's "Signed releases" block, run as written in a repository with a release."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.mlgitops.attest.conftest import ReleaseRepo, image_digest
from tests.support.readme import readme_blocks


def test_the_signed_releases_commands_run_as_written(
    release_repo: ReleaseRepo, tmp_path: Path
) -> None:
    record = release_repo.commit_release("A")
    [commands] = readme_blocks("## Signed releases")
    keys = tmp_path / "keys"
    keys.mkdir()
    env = {
        **os.environ,
        "KEYS": str(keys),
        "IMAGE_DIGEST": image_digest("A"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }

    shell = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=release_repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert shell.returncode == 0, shell.stderr
    assert f"verified {record.bento_tag} at HEAD" in shell.stdout
    assert "signed by key ci-2026a" in shell.stdout
    assert release_repo.git("status", "--porcelain") == ""
    assert oct((keys / "ci.pem").stat().st_mode & 0o777) == "0o600"
