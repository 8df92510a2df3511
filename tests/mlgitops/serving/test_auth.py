"""Credentials: token and key files, bearer checks, signed request ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlgitops.config import ServingConfig
from mlgitops.errors import ConfigError, ServingError
from mlgitops.serving import auth
from mlgitops.serving.auth import (
    RequestIds,
    SecretFile,
    accepted,
    bearer,
    load_credentials,
)

TOKEN = "a" * 64
OTHER = "b" * 64


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("\n  \n", "the file is empty"),
        ("short\n", "value 1 is 5 characters; at least 32 are required"),
        (f"{TOKEN}\nhas spaces in it but is long enough to pass\n", "value 2 holds spaces"),
        ("é" * 40, "characters other than visible ASCII"),
    ],
)
def test_a_secret_file_that_cannot_serve_is_one_line_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _file(tmp_path, "token", text)
    with pytest.raises(ServingError, match=re.escape(f"feedback token file {path}: ")) as error:
        SecretFile(str(path), "feedback token file")
    assert message in str(error.value)
    with pytest.raises(ServingError, match="file not found"):
        SecretFile(str(tmp_path / "absent"), "feedback token file")


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_old_values(
    tmp_path: Path,
) -> None:
    now = [0.0]
    path = _file(tmp_path, "token", TOKEN + "\n")
    secret = SecretFile(str(path), "token", clock=lambda: now[0])
    assert secret.current() == (TOKEN.encode(),)
    # Rotation: the new token is added as a line; both are accepted, after the next check.
    path.write_text(f"{OTHER}\n{TOKEN}\n")
    assert secret.current() == (TOKEN.encode(),)  # not looked at again yet
    now[0] += auth.RELOAD_SECONDS
    assert secret.current() == (OTHER.encode(), TOKEN.encode())
    # A Secret being swapped may be briefly empty: the values read before stay.
    path.write_text("")
    now[0] += auth.RELOAD_SECONDS
    assert secret.current() == (OTHER.encode(), TOKEN.encode())
    path.write_text(OTHER + "\n")
    now[0] += auth.RELOAD_SECONDS
    assert secret.current() == (OTHER.encode(),)


def test_bearer_header_parsing_and_constant_time_check() -> None:
    assert bearer(f"Bearer {TOKEN}") == TOKEN.encode()
    assert bearer(f"  bearer   {TOKEN}  ") == TOKEN.encode()  # the scheme in any case
    for header in (None, "", TOKEN, f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}é"):
        assert bearer(header) is None, header
    values = (TOKEN.encode(), OTHER.encode())
    assert accepted(TOKEN.encode(), values)
    assert accepted(OTHER.encode(), values)
    assert not accepted(TOKEN.encode()[:-1], values)
    assert not accepted(None, values)


def test_request_ids_are_random_signed_and_carry_their_row_count(tmp_path: Path) -> None:
    ids = RequestIds(SecretFile(str(_file(tmp_path, "key", TOKEN)), "key"))
    minted = [ids.mint(7) for _ in range(200)]
    assert len(set(minted)) == 200
    assert all(re.fullmatch(auth.REQUEST_ID_PATTERN, i) for i in minted)
    assert {ids.verify(i) for i in minted} == {7}
    nonce, rows, tag = minted[0].split("-")
    for forged in (
        f"{nonce}-70-{tag}",  # more rows than served
        f"{nonce[:-1]}0-{rows}-{tag}" if nonce[-1] != "0" else f"{nonce[:-1]}1-{rows}-{tag}",
        f"{nonce}-{rows}-{'0' * 32}",
        f"{nonce}-{rows}-{tag.upper()}",
        f"{nonce}-0{rows}-{tag}",
        "prefix-1",  # the old `<prefix>-<counter>` form
        minted[0] + "x",
    ):
        assert ids.verify(forged) is None, forged
    # Another service's key (or a key of its own, as a worker without the shared one has).
    other = RequestIds(SecretFile(str(_file(tmp_path, "other", OTHER)), "key"))
    assert other.verify(minted[0]) is None
    assert RequestIds(None).verify(minted[0]) is None
    # Rotation: a file with the new key first signs with it and still verifies the old ids.
    rotated = RequestIds(SecretFile(str(_file(tmp_path, "both", f"{OTHER}\n{TOKEN}")), "key"))
    assert rotated.verify(minted[0]) == 7
    assert other.verify(rotated.mint(3)) == 3


def test_credentials_from_settings(tmp_path: Path) -> None:
    feedback = _file(tmp_path, "feedback", TOKEN)
    predict = _file(tmp_path, "predict", OTHER)
    key = _file(tmp_path, "key", "c" * 64)
    settings = ServingConfig(
        feedback_token_file=str(feedback),
        predict_token_file=str(predict),
        request_id_key_file=str(key),
    )
    credentials = load_credentials(settings)
    assert credentials.may_write_feedback(f"Bearer {TOKEN}")
    assert not credentials.may_write_feedback(f"Bearer {OTHER}")  # the predict token
    assert credentials.may_read(f"Bearer {OTHER}")
    assert not credentials.may_read(f"Bearer {TOKEN}")
    assert not credentials.may_read(None)
    assert credentials.request_ids.shared
    # Nothing set: reads open, no label taken by anyone.
    open_ = load_credentials(ServingConfig())
    assert open_.may_read(None)
    assert not open_.may_write_feedback(f"Bearer {TOKEN}")
    assert not open_.request_ids.shared
    # One token for both is not a credential of its own for /feedback.
    same = ServingConfig(feedback_token_file=str(feedback), predict_token_file=str(feedback))
    with pytest.raises(ServingError, match="share a token"):
        load_credentials(same)


def test_credential_files_are_deployment_facts_not_params(tmp_path: Path) -> None:
    from mlgitops.config import parse_params
    from tests.support.project import raw_params

    raw = raw_params()
    raw["serving"]["feedback_token_file"] = "/x"
    with pytest.raises(ConfigError, match="set by the environment"):
        parse_params(raw)
    env = {"MLGITOPS_FEEDBACK_TOKEN_FILE": "/run/secrets/t", "MLGITOPS_REQUEST_ID_KEY_FILE": "/k"}
    settings = ServingConfig.from_env(env)
    assert (settings.feedback_token_file, settings.request_id_key_file) == ("/run/secrets/t", "/k")
    with pytest.raises(ServingError, match="did you mean MLGITOPS_FEEDBACK_TOKEN_FILE"):
        ServingConfig.from_env({"MLGITOPS_FEEDBACK_TOKEN_FIL": "/x"})
