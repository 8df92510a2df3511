from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import shared

pytest_plugins = ["tests.support.fake_kube.plugin"]

# Packages whose tests share package- or session-scoped fixtures that are costly to build (a
# packaged bento and its live server, trained models): under xdist one worker runs each whole.
WHOLE_PACKAGES = ("mlgitops/serving", "mlgitops/export", "mlgitops/monitoring")


@pytest.fixture(scope="session", autouse=True)
def _shared_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Templates (projects, released projects) built once per session for every worker."""
    shared.configure(shared.session_root(tmp_path_factory.getbasetemp()))
    yield
    shared.configure(None)


@pytest.fixture(scope="session", autouse=True)
def _session_bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # No test reaches the user's ~/bentoml, and parallel workers never share a store: a bento's
    # tag is a hash of its content, so two workers packaging equal projects would write the
    # same entry at once. (Tests under tests/mlgitops get a store of their own on top.)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml-session")))
        patch.setenv("BENTOML_DO_NOT_TRACK", "True")
        patch.setenv("DVC_NO_ANALYTICS", "1")
        yield


def _unit(path: str) -> str:
    """What one xdist worker runs whole: a test file (`tests/...py`), or a package above."""
    return next((f"tests/{p}" for p in WHOLE_PACKAGES if path.startswith(f"tests/{p}/")), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile`, with the packages above as one unit each. (xdist's own `loadgroup`
    cannot do it under pytest 9.2: pytest-dev/pytest-xdist#1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class UnitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid.split("::", 1)[0])

    return UnitScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Units with a `slow` test go first, so the long end-to-end scenarios start at once and
    short files fill in around them instead of one long file starting last (`make test` keeps
    this order: --no-loadscope-reorder). Each unit's own order is kept."""

    def unit(item: pytest.Item) -> str:
        return _unit(item.path.relative_to(config.rootpath).as_posix())

    slow_units = {unit(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: unit(item) not in slow_units)
