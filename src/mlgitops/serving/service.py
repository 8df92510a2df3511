"""The BentoML service (placeholder until the HTTP app lands)."""

from __future__ import annotations

import bentoml


@bentoml.service(name="fraud-detector")
class FraudDetector:
    def __init__(self) -> None:
        pass
