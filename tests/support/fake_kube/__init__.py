"""A project-owned, in-memory Kubernetes API server for tests.

(Docstring completed below.)
"""

from .server import FakeKubeServer, RequestRecord

__all__ = ["FakeKubeServer", "RequestRecord"]
