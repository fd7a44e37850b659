"""Expected failures end the real CLI (a subprocess, as a user runs it) with one line that
names the problem and the setting or command that fixes it, exit status 2; --debug (or
VISTA_DEBUG=1) adds the traceback; a bug keeps its traceback, exit status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vista.core import errors

ROOT = Path(__file__).resolve().parents[1]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without its VISTA settings, every path in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISTA")}
    env.update(
        PYTHONPATH=str(ROOT), GX_ANALYTICS_ENABLED="false", FEAST_USAGE="False",
        DO_NOT_TRACK="1", VISTA__PATHS__STATE=str(tmp_path / "state"),
        VISTA__PATHS__LAKE=str(tmp_path / "lake"),
        VISTA__PATHS__REPORTS=str(tmp_path / "reports"),
    )  # fmt: skip
    env.update(extra)
    return env


def vista(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vista.cli", *args], cwd=ROOT, env=cli_env(tmp_path, **env),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def the_line(result: subprocess.CompletedProcess) -> str:
    """An expected failure's stderr: exactly one (non-empty) line, and exit status 2."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.integration  # the CLI in a process of its own
def test_an_invalid_setting_names_the_field_and_where_settings_come_from(tmp_path):
    line = the_line(vista(tmp_path, "cutoff-date", "-p", "tiny", VISTA__SUMMARIZER__N_SEEDS="0"))
    assert "summarizer.n_seeds = 0" in line
    assert "greater than or equal to 1" in line
    assert "VISTA__<SECTION>__<FIELD>" in line


@pytest.mark.integration  # the CLI in a process of its own
def test_an_unknown_profile_lists_the_known_ones(tmp_path):
    line = the_line(vista(tmp_path, "config", "--profile", "nosuch"))
    assert "nosuch.yaml does not exist" in line
    assert "'tiny'" in line
    assert "--profile or $VISTA_PROFILE" in line


@pytest.mark.integration  # the CLI in a process of its own
def test_a_missing_source_file_names_the_source_setting(tmp_path):
    missing = tmp_path / "ratings.inter"
    result = vista(tmp_path, "generate", "-p", "movielens", VISTA__SOURCE__EVENTS_PATH=str(missing),
                   VISTA__SOURCE__ITEMS_PATH="null")  # fmt: skip
    line = the_line(result)
    assert str(missing) in line
    assert "source.events_path" in line


@pytest.mark.integration  # the CLI in a process of its own
def test_an_empty_source_file_is_named_with_the_source_setting(tmp_path):
    empty = tmp_path / "ratings.inter"
    empty.write_bytes(b"")
    result = vista(tmp_path, "generate", "-p", "movielens", VISTA__SOURCE__EVENTS_PATH=str(empty),
                   VISTA__SOURCE__ITEMS_PATH="null")  # fmt: skip
    line = the_line(result)
    assert str(empty) in line
    assert "source.unreadable_files" in line  # the setting that lets the others go on


@pytest.mark.integration  # the CLI in a process of its own
@pytest.mark.parametrize(
    ("command", "fix"),
    [
        ("report", "run `vista ingest-events`"),  # no impressions table yet
        ("summarize", "run `vista train-summarizer` first"),
        ("features", "run `vista train-summarizer` first"),
        ("serve", "run `vista train-and-evaluate-ranker`"),
    ],
)
def test_missing_state_names_the_command_that_makes_it(tmp_path, command, fix):
    line = the_line(vista(tmp_path, command, "-p", "tiny"))
    assert fix in line
    assert str(tmp_path) in line  # where it looked


@pytest.mark.integration  # the CLI in a process of its own
def test_a_step_that_starts_spark_still_fails_with_one_line(tmp_path):
    """The JVM's start-up notices and log4j lines go to a log file, not the terminal."""
    line = the_line(vista(tmp_path, "histories", "-p", "tiny", "--as-of", "2026-01-01"))
    assert "run `vista ingest-events`" in line
    jvm_log = (tmp_path / "state" / "logs" / "spark-jvm.log").read_text()
    assert "log4j" in jvm_log


@pytest.mark.integration  # the CLI in a process of its own
def test_a_failed_critical_suite_is_one_line_naming_the_expectation(tmp_path):
    import deltalake

    assert vista(tmp_path, "generate", "-p", "tiny").returncode == 0
    impressions = tmp_path / "lake" / "impressions"
    bad = deltalake.DeltaTable(impressions).to_pandas().head(1)
    bad["impression_id"] = 10**9
    bad.loc[:, "label"] = 2  # labels are 0 or 1
    deltalake.write_deltalake(impressions, bad, mode="append", partition_by=["impression_date"])
    line = the_line(vista(tmp_path, "validate", "-p", "tiny"))
    assert "critical suite 'impressions' failed" in line
    assert "on column 'label'" in line
    assert "1 of 2401 rows unexpected" in line
    assert "data_docs/index.html" in line
    assert "`vista ingest-events --force`" in line


@pytest.mark.integration  # the CLI in a process of its own
@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_adds_the_traceback(tmp_path, how):
    args, env = (["--debug"], {}) if how == "flag" else ([], {"VISTA_DEBUG": "1"})
    result = vista(tmp_path, *args, "serve", "-p", "tiny", **env)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "MissingStateError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: no trained ranker")


@pytest.mark.integration  # the CLI in a process of its own
def test_a_bug_keeps_its_traceback_and_exit_status_1(tmp_path):
    script = (
        "from vista.cli import app\n"
        "@app.command('boom')\n"
        "def boom():\n"
        "    raise RuntimeError('a bug')\n"
        "app()\n"
    )
    result = subprocess.run([sys.executable, "-c", script, "boom"], cwd=ROOT,
                            env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: a bug" in result.stderr
    assert "error: " not in result.stderr


# ---------------------------------------------------------------- the pure parts
def test_multi_line_messages_become_one_line():
    text = "invalid configuration:\n  a.b = 1: too small\n  c.d = 2: too big"
    assert errors.one_line(text) == "invalid configuration: a.b = 1: too small; c.d = 2: too big"


def test_known_library_errors_are_told_apart_by_name_without_importing_them():
    class SourceError(ValueError):
        pass

    SourceError.__module__, SourceError.__qualname__ = "sources.ingest", "SourceError"
    assert errors.is_expected(SourceError("no events files at x"))
    assert not errors.is_expected(ValueError("no events files at x"))
    assert errors.is_expected(errors.MissingStateError("gone"))
    assert isinstance(errors.MissingStateError("gone"), FileNotFoundError)  # old handlers match
    line = errors.describe(SourceError("no events files at x"))
    assert line == f"error: no events files at x; {errors.SOURCE_FIX}"


def test_every_known_error_name_is_a_class_where_it_says():
    """A class that moves (models/ranker.py became a package) must take its entry along,
    or its failures would print a traceback again."""
    import importlib

    for name in errors.KNOWN:
        if name.startswith("pydantic_core."):  # the library's, not ours
            continue
        module, _, qualname = name.rpartition(".")
        found = importlib.import_module(module)
        assert isinstance(getattr(found, qualname, None), type), name
        assert getattr(found, qualname).__module__ == module, name


def test_a_missing_table_names_the_command_that_writes_it():
    class TableNotFoundError(FileNotFoundError):
        pass

    TableNotFoundError.__module__ = "vista.core.lake"
    TableNotFoundError.__qualname__ = "TableNotFoundError"
    line = errors.describe(
        TableNotFoundError("Delta table /x/lake/user_summaries/v1 does not exist")
    )
    assert line.endswith("run `vista summarize` first")


def test_a_pydantic_error_names_the_field():
    from pydantic import ValidationError

    from vista.core.config import ServingConfig

    with pytest.raises(ValidationError) as caught:
        ServingConfig(max_body_bytes=-1)
    line = errors.describe(caught.value)
    assert line.startswith("error: invalid configuration: max_body_bytes = -1:")


def test_a_variable_that_is_not_yaml_is_taken_as_text():
    from vista.core.config import load_config

    cfg = load_config("movielens", environ={"VISTA__SOURCE__SEPARATOR": ","})
    assert cfg.source.separator == ","
