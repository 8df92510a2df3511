from __future__ import annotations

import pytest

from mlgitops.epoch import source_date_epoch
from mlgitops.errors import ConfigError


def test_source_date_epoch_defaults_to_zero_and_rejects_garbage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch() == 1700000000
    for garbage in ("yesterday", "-5", "1.5"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", garbage)
        with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
            source_date_epoch()
