"""The one timestamp every build artifact is stamped with, so the same inputs give the same bytes.

It is `SOURCE_DATE_EPOCH` (the reproducible-builds.org convention) when set, else 0: an input of
the build, never the wall clock. It goes into the bento archive (entry times, BentoML's
`creation_time`), the image config's `created`, the history entries, every file time in the
layers (buildah's `--timestamp`), the base image's commit, and the build environment (useradd's
password-change day in /etc/shadow reads it).
"""

from __future__ import annotations

import os

from mlgitops.errors import ConfigError

EPOCH_ENV = "SOURCE_DATE_EPOCH"
# 1970-01-01T00:00:00Z, what ko and rules_oci use too: "no date" rather than a made-up one.
DEFAULT_EPOCH = 0


def source_date_epoch() -> int:
    raw = os.environ.get(EPOCH_ENV, "").strip()
    if not raw:
        return DEFAULT_EPOCH
    if not raw.isdigit():
        raise ConfigError(f"{EPOCH_ENV}={raw!r}: expected whole seconds since 1970 (e.g. 0)")
    return int(raw)
