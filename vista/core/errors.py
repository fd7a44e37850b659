"""Expected failures: the ones a user fixes with a setting or a command.

The CLI ends such a failure with one line, ``error: <problem>; <fix>``, and exit status
2; anything else is a bug and keeps its traceback (exit status 1). Which failures are
expected is decided here, in one place: our own errors derive from ``ExpectedError``,
and the ones other modules and libraries raise are listed in ``KNOWN`` by qualified
name, so that telling them apart never imports torch, Spark or GX.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vista.core import names
from vista.core.config import format_validation_error


class ExpectedError(Exception):
    """A failure the user can fix; the message names the problem and the setting or
    command that fixes it."""


class MissingStateError(ExpectedError, FileNotFoundError):
    """A step needs what an earlier step writes (a table, a trained model) and it is not
    there yet. A FileNotFoundError, as it was before, so existing handlers still match."""


class SettingError(ExpectedError, ValueError):
    """A setting or argument does not fit the data (an --as-of, the evaluation window, a
    ttl). A ValueError, as it was before."""


# the command that writes each table a step may find missing
TABLE_COMMANDS = {
    names.EVENTS: "`vista ingest-events` (synthetic data, or the profile's source)",
    names.IMPRESSIONS: "`vista ingest-events` (synthetic data, or the profile's source)",
    names.QUARANTINE: "`vista ingest-events` on a profile with a source",
    names.HISTORIES: "`vista build-histories`",
    names.HISTORY_TAIL: "`vista run` (its build_raw_features step)",
    names.CATEGORY_HISTORIES: "`vista run` (its build_raw_features step)",
    names.SUMMARIES: "`vista summarize`",
    names.SUMMARY_STATES: "`vista summarize`",
}
CONFIG_FIX = "settings come from conf/<profile>.yaml, then VISTA__<SECTION>__<FIELD> variables"
SOURCE_FIX = "check source.events_path, source.items_path, source.format and source.columns"


def _table_fix(message: str) -> str:
    """A missing table's message names its path; the fix is the command that writes it."""
    for table, command in TABLE_COMMANDS.items():
        if re.search(rf"/{table}(/|\b)", message):
            return f"run {command} first"
    return "run the steps before this one first (`vista run` runs them all in order)"


def _config_fix(message: str) -> str | None:
    if "does not exist (known profiles" in message:
        return "pick one with --profile or $VISTA_PROFILE"
    if message.startswith("profile file") and message.endswith("does not exist"):
        return (
            "give --profile (or $VISTA_PROFILE) the path of an existing .yaml file (`vista "
            "init-profile EVENTS_FILE` writes one) or the name of a profile in conf/"
        )
    return CONFIG_FIX


def _unless(marker: str, fix: str) -> Callable[[str], str | None]:
    """A fix to add unless the message already names it (``marker``)."""
    return lambda message: None if marker in message else fix


# qualified class name -> the fix to add to the message (None when it names one already)
KNOWN: dict[str, Callable[[str], str | None]] = {
    "vista.core.config.ConfigError": _config_fix,
    # a bare pydantic error is a settings object built outside load_config
    "pydantic_core._pydantic_core.ValidationError": lambda m: CONFIG_FIX,
    "sources.ingest.SourceError": _unless("source.", SOURCE_FIX),
    "validation.checkpoints.DataQualityError": lambda m: (
        "correct those rows where they come from (the profile's source, or `vista ingest-events "
        "--force` for synthetic data), then rerun the step"
    ),
    "vista.core.lake.TableNotFoundError": _table_fix,
    "vista.core.lake.ObjectStoreError": lambda m: None,
    "models.ranker.spec.TrainingSetError": _unless(
        "`vista",
        "rebuild the training set's inputs: `vista publish-features`, then "
        "`vista train-and-evaluate-ranker`",
    ),
    "models.summarizer.CheckpointMismatchError": _unless(
        "--retrain", "restore those summarizer.* settings, or `vista train-summarizer --retrain`"
    ),
    "models.probes.ProbeInputError": lambda m: None,
    "vista.probing.ProbeVersionError": lambda m: None,
}


def _qualified_names(exc: BaseException) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__]


def is_expected(exc: BaseException) -> bool:
    """A failure the user fixes (a setting, an input, a missing step), printed as one line."""
    if isinstance(exc, ExpectedError):
        return True
    return any(name in KNOWN for name in _qualified_names(exc))


def _message(exc: BaseException) -> str:
    if any(n == "pydantic_core._pydantic_core.ValidationError" for n in _qualified_names(exc)):
        return format_validation_error(exc)  # type: ignore[arg-type]
    return str(exc) or type(exc).__name__


def one_line(text: str) -> str:
    """Multi-line messages (a failed suite's expectations, a config's fields) joined on
    one line, so that a failure is one line however it was written."""
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    joined = parts[0] if parts else ""
    for part in parts[1:]:
        joined += f" {part}" if joined.endswith((":", ";")) else f"; {part}"
    return joined


def describe(exc: BaseException) -> str:
    """The one line the CLI prints for an expected failure: problem, then fix."""
    message = one_line(_message(exc))
    fix = next((KNOWN[n](message) for n in _qualified_names(exc) if n in KNOWN), None)
    return f"error: {message}; {fix}" if fix else f"error: {message}"
