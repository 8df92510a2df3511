"""The packaging tests build the same stand-in bento as the serving tests."""

from tests.mlgitops.serving.conftest import bentoml_home, dev_artifacts, packaged

__all__ = ["bentoml_home", "dev_artifacts", "packaged"]
