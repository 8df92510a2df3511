"""Every exit code the documentation states is the code of the error class it describes.

* README's CLI section lists every code with its words, as `mlgitops --help` does
  (mlgitops.cli.exitcodes.MEANING, one meaning per code).
* Every command's --help ends with the codes it exits with. Each must be one the command can
  raise (an error class used in a module it imports), and each error class it is seen to raise
  through its calls must be listed (tests/support/exit_codes.py reads both from the source).
  Codes its own text mentions must be among them.
* Every sentence of README.md and docs/*.md that states an exit code is in DOC_CODES below with
  the classes it speaks of; a new one fails the test until it is added there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from mlgitops import errors as e
from mlgitops.cli.exitcodes import MEANING, NEVER_RAISED, every_code, meaning
from mlgitops.cli.main import app, main
from tests.support.exit_codes import entry_of, error_classes, may_raise, raises
from tests.support.project import REPO_ROOT
from tests.support.readme import README

ErrorClass = type[e.MlgitopsError]


def _words(text: str) -> str:
    """Help text without Rich's frame and wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _raised_classes() -> list[ErrorClass]:
    return [c for c in error_classes().values() if c not in NEVER_RAISED]


# --- one code, one meaning; README and `mlgitops --help` list them all --------------------------


def test_every_error_class_has_the_words_of_its_code() -> None:
    by_code: dict[int, set[str]] = {}
    for cls in _raised_classes():
        by_code.setdefault(cls.exit_code, set()).add(meaning(cls))
    assert {code: words for code, words in by_code.items() if len(words) > 1} == {}
    # The table names only real classes, each with its own code.
    assert all(cls.exit_code not in (0,) for cls in MEANING)


def _readme_cli_codes() -> dict[int, str]:
    section = README.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    listed = _words(section).split("non-zero exit code (", 1)[1].split(": the `ab status`", 1)[0]
    pairs = [re.fullmatch(r"(\d+) (.+)", item.strip()) for item in listed.split(",")]
    assert all(pairs), listed
    return {int(m.group(1)): m.group(2) for m in pairs if m}


def test_the_readme_lists_every_code_with_its_words() -> None:
    expected = {cls.exit_code: meaning(cls) for cls in _raised_classes()}
    assert _readme_cli_codes() == expected


def test_mlgitops_help_lists_every_code(capsys) -> None:
    assert main(["--help"]) == 0
    assert _words(every_code()) in _words(capsys.readouterr().out)
    for cls in _raised_classes():
        assert f"{cls.exit_code} {meaning(cls)}" in every_code()


# --- each command's --help ----------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command that runs code: leaves, and groups whose callback runs without one."""
    subcommands = getattr(command, "commands", {})
    found = []
    runs = not subcommands or getattr(command, "invoke_without_command", False)
    if path and command.callback is not None and runs:
        found.append((path, command))
    for name, sub in sorted(subcommands.items()):
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _by_code_and_words() -> dict[tuple[int, str], ErrorClass]:
    """The class a help's "code words" names: of classes sharing both (a subclass that only
    narrows the message), the most general one."""
    found: dict[tuple[int, str], ErrorClass] = {}
    for cls in _raised_classes():
        key = (cls.exit_code, meaning(cls))
        if key not in found or issubclass(found[key], cls):
            found[key] = cls
    return found


BY_CODE_AND_WORDS = _by_code_and_words()
EXIT_LINE = re.compile(r"Exit codes: (.*?); every code: mlgitops --help\.")
MENTION = re.compile(r"\bexits?\b[^.]*", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def _listed(help_text: str) -> tuple[set[ErrorClass], str]:
    """The classes the help's exit-code line names, and the rest of the help."""
    match = EXIT_LINE.search(help_text)
    assert match, "the help does not end with its exit codes (mlgitops.cli.exitcodes.epilog)"
    items = [re.fullmatch(r"(\d+) (.+)", item.strip()) for item in match.group(1).split(", ")]
    assert all(items), match.group(1)
    listed: set[ErrorClass] = set()
    for item in items[1:]:  # the first is 0 and what success means for the command
        assert item is not None
        key = (int(item.group(1)), item.group(2))
        assert key in BY_CODE_AND_WORDS, f"no error class exits {key[0]} for {key[1]!r}"
        listed.add(BY_CODE_AND_WORDS[key])
    assert items[0] is not None
    assert items[0].group(1) == "0"
    return listed, help_text[: match.start()] + help_text[match.end() :]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_each_help_states_the_codes_its_command_exits_with(path, command, capsys) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    listed, _ = _listed(_words(out))
    # The command's own text (its arguments, options and subcommands come after it).
    own = _words(re.split(r"\n(?:Arguments|Options|Commands):\n", out, maxsplit=1)[0])
    entry, modules = entry_of(command.callback)
    seen = raises(entry)
    if path[0] == "stage":  # the stage's module is imported by name at run time
        modules.add(f"mlgitops.stages.{path[1]}")
        seen |= raises((f"mlgitops.stages.{path[1]}", "run"))
    possible = may_raise(modules)
    names = {cls.__name__ for cls in listed}
    assert names - {"ConfigError"} <= possible, f"listed, never raised: {names - possible}"
    # A class seen raised is listed, itself or by a base with its code (a narrower message).
    classes = error_classes()
    missing = {
        name
        for name in seen
        if not any(issubclass(classes[name], c) and c.exit_code == classes[name].exit_code
                   for c in listed | {e.ConfigError})
    }  # fmt: skip
    assert missing == set(), f"{' '.join(path)} raises, its help does not list: {missing}"
    codes = {cls.exit_code for cls in listed} | {0, e.ConfigError.exit_code}
    for mention in MENTION.findall(own):
        stated = {int(n) for n in NUMBER.findall(mention)}
        assert stated <= codes, f"the help says {mention!r}; its exit codes are {sorted(codes)}"


def test_the_help_check_reads_commands_and_codes_right() -> None:
    paths = {path for path, _ in COMMANDS}
    assert {("report",), ("revert",), ("stage", "export"), ("ab", "status"), ("serve",)} <= paths
    assert ("data",) not in paths  # a group that runs nothing itself
    command = dict(COMMANDS)[("audit", "sample")]
    entry, modules = entry_of(command.callback)
    assert raises(entry) == {"ConfigError", "ArtifactError", "AuditInputError"}
    # Caught and turned into AuditInputError: reachable, not raised.
    assert "MonitoringInputError" in may_raise(modules)
    command = dict(COMMANDS)[("report", "pr")]
    assert {"GateFailedError", "GateInconclusiveError"} <= raises(entry_of(command.callback)[0])


# --- README.md and docs/*.md --------------------------------------------------------------------

FAIL, INCONCLUSIVE = e.GateFailedError, e.GateInconclusiveError
VERDICTS = [
    e.ExperimentNoDifferenceYetError,
    e.ExperimentInsufficientDataError,
    e.ExperimentChampionBetterError,
    e.ExperimentGuardrailBreachedError,
    e.ExperimentSampleRatioMismatchError,
]
# A statement of exit codes in prose, and the classes it speaks of, in the order of its numbers
# (None: 0, success; "shell": not ours). The README's CLI list is checked above.
DOC_CODES: list[tuple[str, str, list[ErrorClass | None] | str]] = [
    ("README.md", "`.venv/bin/dvc repro` fails with exit 127", "shell"),
    ("README.md", "non-zero exit code (1 other error", "the CLI list"),
    ("README.md", "for a misspelt key, the nearest allowed one (exit 2)", [e.ConfigError]),
    ("README.md", "`package` stops instead, exit 17 (FAIL) or 18", [FAIL, INCONCLUSIVE]),
    ("README.md", "predicts another target is an error naming it (exit 16)", [e.GateError]),
    ("README.md", "It exits 0 on PASS, 17 on FAIL and 18 on", [None, FAIL, INCONCLUSIVE]),
    (
        "README.md",
        "a PASS exits 33 instead of 0 (a FAIL still exits 17, an INCONCLUSIVE 18)",
        [e.PolicyChangedError, None, FAIL, INCONCLUSIVE],
    ),
    ("README.md", "(exit 34 when that judge cannot run)", [e.JudgeError]),
    (
        "docs/judge.md",
        "a FAIL exits 17 and an INCONCLUSIVE 18 whatever the policy",
        [FAIL, INCONCLUSIVE],
    ),
    (
        "docs/judge.md",
        "edits the policy exits 33 (`PolicyChangedError`), not 0",
        [e.PolicyChangedError, None],
    ),
    ("docs/judge.md", "Exit 33 fails the required check on purpose", [e.PolicyChangedError]),
    ("docs/judge.md", "the judge's own exit 33", [e.PolicyChangedError]),
    ("docs/judge.md", "It exits 34 (`JudgeError`) when the trusted judge", [e.JudgeError]),
    ("docs/judge.md", "(its base predates `--verdict-json`: exit 34)", [e.JudgeError]),
    ("README.md", "refused whole with one line and exit 19 (3 for", [e.IngestError, e.DataError]),
    ("README.md", "the batch is refused with one line and exit 19", [e.IngestError]),
    ("README.md", "it exits 17 or 18 with one line", [FAIL, INCONCLUSIVE]),
    ("README.md", "Other refusals exit 20", [e.RetrainError]),
    ("README.md", "a `--set` key that is no param exits 2", [e.ConfigError]),
    ("README.md", "(and `mlgitops serve`, exit 7)", [e.ServingError]),
    ("README.md", "at the digest it recorded and exits 10", [e.RolloutFailedError]),
    ("README.md", "writes nothing, exits 0 and prints one line", [None]),
    ("README.md", "the first field that differs (exit 6)", [e.PackagingError]),
    ("README.md", "release not changed; ...`), and exit 0", [None]),
    (
        "README.md",
        "is refused by `mlgitops deploy` (exit 28) and by `mlgitops report pr` (exit 17/18",
        [e.ReleaseNotPassedError, FAIL, INCONCLUSIVE],
    ),
    (
        "README.md",
        "exits by it (17, 18); a committed PASS about another model than head's release exits 28",
        [FAIL, INCONCLUSIVE, e.ReleaseNotPassedError],
    ),
    ("README.md", "It finishes, exit 0, whatever the verdict", [None]),
    ("README.md", "`mlgitops deploy` refuses the commit (exit 28)", [e.ReleaseNotPassedError]),
    ("README.md", "makes `mlgitops deploy` exit 28 before", [e.ReleaseNotPassedError]),
    ("README.md", "`--require-digest` refuses instead (exit 32)", [e.ImageDigestError]),
    ("README.md", "does not matter; else exit 11", [e.DeployLockedError]),
    ("README.md", "rendered or written (exit 28, one line)", [e.ReleaseNotPassedError]),
    ("README.md", "before its next write and exits 31", [e.DeployLeaseLostError]),
    ("README.md", "the lease at once and exits 143 or 130", "signals: 128 + SIGTERM, SIGINT"),
    ("README.md", "an unknown `--base`: a one-line error (exit 25)", [e.RevertError]),
    (
        "README.md",
        "exits 0 (nothing fired), 15 (an alert fired) or 14 (unusable input)",
        [None, e.MonitoringAlertError, e.MonitoringInputError],
    ),
    (
        "README.md",
        "exits by verdict: 0 `CHALLENGER_BETTER`, 41 `NO_DIFFERENCE_YET`, 42 `INSUFFICIENT_DATA`, "
        "43 `CHAMPION_BETTER`, 44 `GUARDRAIL_BREACHED`, 45 `SRM`",
        [None, *VERDICTS],
    ),
    ("README.md", "(with one line, exit 27)", [e.AuditInputError]),
    ("docs/ab.md", "Bad declarations are one-line errors (exit 2)", [e.ConfigError]),
    ("docs/ab.md", "is not a commit of the repository at ...`, exit 12)", [e.GitError]),
    ("docs/ab.md", "unreadable logs/labels exit 14", [e.MonitoringInputError]),
    ("docs/audit.md", "and the value, exit code 27", [e.AuditInputError]),
    (
        "README.md",
        "exit 35 for a failed check, 36 for a missing attestation or a key the trust root does "
        "not list, 37 for an unusable trust root",
        [e.AttestationError, e.AttestationMissingError, e.TrustRootError],
    ),
    (
        "README.md",
        "refuse (exit 35 or 36) unless",
        [e.AttestationError, e.AttestationMissingError],
    ),
    ("docs/attest.md", "fails with exit 35 naming the file", [e.AttestationError]),
    ("docs/attest.md", "exit 36 when the release has no", [e.AttestationMissingError]),
    ("docs/attest.md", "(exit 37) rather than", [e.TrustRootError]),
    ("docs/attest.md", "refuses with exit 35 when the registry", [e.AttestationError]),
    ("docs/attest.md", "exits 28 before", [e.ReleaseNotPassedError]),
    ("docs/deploy.md", "one-line error naming the file(s) tried (exit 9)", [e.DeployError]),
    ("docs/deploy.md", "else exit 11 naming the holder", [e.DeployLockedError]),
    ("docs/deploy.md", "is refused (exit 32) before any write", [e.ImageDigestError]),
    ("docs/deploy.md", "the deploy refuses instead (exit 32)", [e.ImageDigestError]),
    ("docs/deploy.md", "and stops there if not (exit 31)", [e.DeployLeaseLostError]),
    ("docs/deploy.md", "refuses, with one line and exit 28", [e.ReleaseNotPassedError]),
    ("docs/deploy.md", "renewed all that time is exit 11", [e.DeployLockedError]),
    ("docs/deploy.md", "unchanged one, and exits 31 with one line", [e.DeployLeaseLostError]),
    ("docs/deploy.md", "and the deploy exits 143 or 130", "signals: 128 + SIGTERM, SIGINT"),
    ("docs/deploy.md", "and exits 10 with a message naming both", [e.RolloutFailedError]),
    ("docs/export.md", "fails the stage with one line (exit code 13)", [e.ExportError]),
    ("docs/export.md", "raises `ArtifactError` (exit code 5)", [e.ArtifactError]),
    ("docs/image.md", "`mlgitops.errors.ImageBuildError` (exit code 8)", [e.ImageBuildError]),
    (
        "docs/scale-kubernetes.md",
        "the CronJob fails without retries on exit codes 14 and 15",
        [e.MonitoringInputError, e.MonitoringAlertError],
    ),
    ("docs/revert.md", "is refused with one line (exit 25)", [e.RevertError]),
    (
        "docs/revert.md",
        "stderr, exit 25 (12 for a repository that is not one)",
        [e.RevertError, e.GitError],
    ),
]
DOC_MENTION = re.compile(r"\bexit(?:s|ed)?(?: code| codes)?(?: by verdict:)? \(?\d+", re.I)


def _prose(path: str) -> str:
    """A doc's text without fenced blocks (commands, example outputs), in single spaces."""
    text = (REPO_ROOT / path).read_text(encoding="utf-8")
    text = re.sub(r"^(`{3,})[^\n]*\n.*?^\1\s*$", "", text, flags=re.S | re.M)
    return " ".join(text.split())


DOCS = ["README.md", *sorted(str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob("docs/*.md"))]


@pytest.mark.parametrize("path", DOCS)
def test_every_exit_code_in_the_docs_is_its_classes(path: str) -> None:
    text = _prose(path)
    covered: list[tuple[int, int]] = []
    for doc, phrase, classes in DOC_CODES:
        if doc != path:
            continue
        where = text.find(phrase)
        assert where >= 0, f"{path} no longer says {phrase!r}: update DOC_CODES"
        covered.append((where, where + len(phrase)))
        if isinstance(classes, str):
            continue
        stated = [int(n) for n in NUMBER.findall(re.sub(r"`[^`]*`", "", phrase))]
        expected = [0 if cls is None else cls.exit_code for cls in classes]
        assert stated == expected, f"{path}: {phrase!r} states {stated}, the classes {expected}"
    for match in DOC_MENTION.finditer(text):
        inside = any(start <= match.start() < end for start, end in covered)
        context = text[max(0, match.start() - 60) : match.end() + 40]
        assert inside, f"{path}: an exit code not in DOC_CODES: ...{context}..."


def test_the_ab_verdict_table_is_the_classes() -> None:
    rows = re.findall(r"^\| (`[A-Z_]+`|\(input error\)) \| (\d+) \|", _ab_doc(), flags=re.M)
    table = {name.strip("`"): int(code) for name, code in rows}
    expected = {meaning(cls): cls.exit_code for cls in VERDICTS}
    expected |= {"CHALLENGER_BETTER": 0, "(input error)": e.ExperimentError.exit_code}
    assert table == expected
    assert all(issubclass(cls, e.ExperimentVerdictError) for cls in VERDICTS)


def _ab_doc() -> str:
    return (REPO_ROOT / "docs" / "ab.md").read_text(encoding="utf-8")
