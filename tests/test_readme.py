"""The README is executable: every command it shows is checked against the code, and the
ones a test can afford are run as written, on the tiny profile, in temp folders.

- Every `vista` command (fenced blocks, prose, and what `make -n` prints for each
  target): its subcommand exists, its `--help` renders, every option shown is one of
  the subcommand's, `a|b` alternatives appear in its help, `-p NAME` names a profile in
  conf/. Every `make` command: its targets are in `make help`, `make -n` prints the
  recipe, variables set on the line reach it. The bench scripts: each option and value
  shown is in the script's `--help`.
- Run for real (quick): `vista init-profile` / `ingest-events -p` on a small events file,
  the quarantine block on the profile it wrote, `VISTA__GENERATOR__N_USERS=5000 vista
  ingest-events --force` on the tiny profile. Slow: `vista run -p` on that file; on the
  tiny pipeline (conftest's ``pipeline_run``) the Feast SDK snippet, `vista feast-repo` + the
  feast CLI, `vista online`, `vista serve` + the curl line; the airflow and feast
  commands against their own `--help`.
- Every `vista` subcommand and `make` target the README shows is run here or names the
  test of its own that runs it (VISTA_RUN_BY, MAKE_RUN_BY); a target whose recipe must
  not run in a test (apt-get, pip, rm -rf) says so (MAKE_DRY_RUN_ONLY).

Placeholders are replaced through one explicit table (``substitutions``); each
replacement must find its text in the README, so an edit there cannot silently turn a
checked command into an unchecked one."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from devservers.ports import free_port
from tests.readme_blocks import (
    ASSIGNMENT,
    Command,
    Simple,
    blocks,
    commands,
    headings,
    options,
    simple_commands,
    spans,
)
from tests.sockets import wait_for_health
from vista import pipeline, state
from vista.cli import app
from vista.core.config import CONF_DIR, PROJECT_ROOT
from vista.provenance import RESULTS_DIR

BENCH = PROJECT_ROOT / "bench"

README = PROJECT_ROOT / "README.md"
BIN = Path(sys.executable).parent
CLI = typer.main.get_command(app)
# the programs a README command may start with; anything else in a fenced block fails
PROGRAMS = {"vista", "make", "python", "curl", "airflow", "feast", "eval", "cd"}

# Each `vista` subcommand the README shows, and the test that runs it for real: this
# file's own, or the test of its own elsewhere. The steps one by one run inside
# `vista run` (each step's function, in order, as `vista <step>` calls one).
HERE_OWN_DATA = "tests/test_readme.py::test_own_data_and_quarantine_blocks_run_as_written"
HERE_RUN = "tests/test_readme.py::test_vista_run_on_own_data_runs_as_written"
HERE_TINY = "tests/test_readme.py::test_feast_sdk_online_and_serving_run_on_the_tiny_pipeline"
HERE_ENV = "tests/test_readme.py::test_a_config_field_set_by_environment_reaches_ingest_events"
BROWSER = ("tests/test_browser.py::"
           "test_a_data_engineer_and_a_service_owner_walk_their_pages_in_a_browser")  # fmt: skip
VISTA_RUN_BY = {
    "init-profile": HERE_OWN_DATA,
    "ingest-events": HERE_ENV,
    "quarantine": HERE_OWN_DATA,
    "run": HERE_RUN,
    "validate-events": HERE_RUN,
    "build-histories": HERE_RUN,
    "train-summarizer": HERE_RUN,
    "summarize": HERE_RUN,
    "validate": HERE_RUN,
    "publish-features": HERE_RUN,
    "train-and-evaluate-ranker": HERE_RUN,
    "evaluate-and-report": HERE_RUN,
    "feast-repo": HERE_TINY,
    "online": HERE_TINY,
    "serve": HERE_TINY,
    "dag-test": "tests/test_dag.py::test_dag_runs_end_to_end_on_tiny_data",
    "backfill": "tests/test_dag.py::test_backfill_runs_the_chain_for_each_date_oldest_first",
    "airflow-ui": BROWSER,
    "unpause": BROWSER,
    "ablate": "tests/test_ablations.py::test_ablation_arms_are_isolated_and_differ_where_they_should",
    "probe": "tests/test_probes.py::test_probe_cli_on_the_tiny_pipeline_writes_the_report",
    "spark-cluster": "tests/test_spark_cluster.py::test_cluster_runs_the_jobs_like_local_mode",
    "postgres": BROWSER,
}
# Targets whose recipe is more than `vista` commands (those are covered by the table
# above): the test that runs what they run.
MAKE_RUN_BY = {
    "help": "tests/test_readme.py::test_every_make_command_names_listed_targets_and_dry_runs",
    "run-cluster": "tests/test_spark_cluster.py::test_cluster_runs_the_jobs_like_local_mode",
    "airflow-postgres": VISTA_RUN_BY["postgres"],
    "airflow-postgres-stop": VISTA_RUN_BY["postgres"],
}
# Targets a test must not run: checked by `make -n` alone (the recipe printed, its
# vista commands and repository paths checked).
MAKE_DRY_RUN_ONLY = {
    "install": "pip into .venv: the environment every test runs in is what it installs",
    "movielens": "pip download of the recbole wheel (MovieLens-100K's licence forbids a copy)",
    "redis": "apt-get install",
    "chromium": "apt-get install",
    "postgres": "apt-get install",
    "lint": "`make test` runs it before pytest",
    "test": "the whole suite, this file in it (`.ci/run` runs exactly `make test`)",
    "test-quick": 'a subset of the whole suite (`-m "not slow and not integration"`), this '
    "file's quick tests in it",
    "report-repeat": "the lifelong world's 1,000 users through the DAG chain with the report "
    "(an hour on 2 cores); its vista command is test_dag's",
    "format": "rewrites the tree",
    "lock": "rewrites requirements/constraints.txt",
    "clean-state": "rm -rf .state reports",
    "clean": "rm -rf .venv",
}


# ------------------------------------------------------------------ reading the README
def readme() -> str:
    return README.read_text()


def shown(text: str) -> list[tuple[Simple, str, bool]]:
    """Every command the README shows: (the simple command, where, in a fenced block)."""
    found = []
    for block in blocks(text):
        if block.lang in ("bash", "sh", "shell"):
            for command in commands(block.text, block.line + 1):
                where = f"README line {command.line}"
                found += [(s, where, True) for s in simple_commands(command.text)]
    for span in spans(text):
        simples = simple_commands(span.text, synopsis=True)
        if simples and simples[0].argv and program(simples[0].argv[0]) in PROGRAMS - {"cd"}:
            found += [(s, f"README line {span.line}", False) for s in simples]
    return found


def program(word: str) -> str:
    name = Path(word).name
    return "python" if re.fullmatch(r"python[\d.]*", name) else name


def fenced(text: str, first: str) -> list[Command]:
    """The commands of the one fenced shell block that holds a command starting with
    ``first`` (a prefix of the README's text)."""
    found = [commands(b.text, b.line + 1) for b in blocks(text) if b.lang == "bash"]
    found = [c for c in found if any(x.text.startswith(first) for x in c)]
    assert len(found) == 1, f"{len(found)} shell blocks of the README hold {first!r}"
    return found[0]


def span_with(text: str, part: str) -> str:
    found = [s.text for s in spans(text) if part in s.text]
    assert len(found) == 1, f"{len(found)} code spans of the README hold {part!r}"
    return found[0]


# ------------------------------------------------------------------ checking commands
def option_names(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(getattr(param, "opts", []), getattr(param, "secondary_opts", []))
    return names


@cache
def vista_help(name: str) -> str:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}, prog_name="vista")
    assert result.exit_code == 0, result.output
    return result.output


def vista_problems(argv: list[str], where: str) -> list[str]:
    """What is wrong with a `vista ...` command the README shows ([] when nothing)."""
    words, problems = [w.strip("[]") for w in argv[1:]], []
    while words and words[0].startswith("-"):
        if words[0] not in option_names(CLI):
            problems.append(f"{where}: `vista {words[0]}`: no such global option")
        words.pop(0)
    if not words or words[0] == "...":
        return problems
    name, rest = words[0], words[1:]
    if name not in CLI.commands:
        return [*problems, f"{where}: `vista {name}`: no such command"]
    command, text = CLI.commands[name], vista_help(name)
    if f"vista {name}" not in text:
        problems.append(f"{where}: `vista {name} --help` shows no usage")
    for i, word in enumerate(rest):
        if word.startswith("-"):
            if word.split("=")[0] not in option_names(command):
                problems.append(f"{where}: `vista {name} {word}`: no such option")
            elif word in ("-p", "--profile") and i + 1 < len(rest):
                value = rest[i + 1]
                named = not re.search(r"[/~]|\.ya?ml$", value)
                if named and not (CONF_DIR / f"{value}.yaml").exists():
                    problems.append(f"{where}: `vista {name} {word} {value}`: no conf/{value}.yaml")
        elif "|" in word:
            problems += [f"{where}: `vista {name} {word}`: {alt!r} is not in its --help"
                         for alt in word.split("|") if not re.search(rf"\b{re.escape(alt)}\b", text)]  # fmt: skip
    return problems


# a make that runs this suite (`make test`) exports MAKELEVEL and MAKEFLAGS: a make
# started under it would print "make[1]: Entering directory" lines as recipe lines
PARENT_MAKE_VARIABLES = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")


def run_make(*args: str, env: dict[str, str] | None = None, check: bool = False):
    """`make ARGS` in the project as a reader's shell runs it, whoever runs this test."""
    clean = {k: v for k, v in os.environ.items() if k not in PARENT_MAKE_VARIABLES}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60, check=check,
                          env={**clean, **(env or {})})  # fmt: skip


@cache
def make_targets() -> tuple[str, ...]:
    """The targets `make help` lists, run for real."""
    out = run_make("help", check=True).stdout
    return tuple(re.findall(r"^\s+make (\S+)\s", out, re.MULTILINE))


@cache
def make_dry_run(args: tuple[str, ...], env: tuple[tuple[str, str], ...] = ()):
    return run_make("-n", *args, env=dict(env))


# the Makefile's own file targets: the venv's python and the install stamp
MAKE_FILES = (".venv/bin/python", ".venv/.installed")


def own_recipe(target: str) -> list[str]:
    """The command lines `make -n TARGET` prints for the target itself: the other listed
    targets and the venv held as done (-o); a target that is all prerequisites
    (install) prints theirs, as if out of date (-B: a fresh venv prints nothing else)."""
    held = [arg for t in (*make_targets(), *MAKE_FILES) if t != target for arg in ("-o", t)]
    for args in ((*held, target), ("-B", target)):
        printed = make_dry_run(args).stdout.splitlines()
        if printed := [line for line in printed if not line.startswith("make:")]:
            return printed
    return []


PATH_WORD = re.compile(r"^[A-Za-z_][\w.-]*(/[\w.*-]+)+/?$")


def recipe_problems(printed: str, where: str) -> list[str]:
    """A dry run's vista commands and the repository paths it names."""
    problems = []
    for command in commands(printed):
        for simple in simple_commands(command.text):
            if simple.argv and program(simple.argv[0]) == "vista":
                problems += vista_problems(simple.argv, where)
            for word in simple.argv[1:]:
                local = not word.startswith((".venv", ".state", "reports"))
                if local and PATH_WORD.match(word) and not (PROJECT_ROOT / word).exists():
                    problems.append(f"{where}: {word} does not exist")
    return problems


def make_problems(simple: Simple, where: str) -> list[str]:
    args = simple.argv[1:]
    targets = [a for a in args if not ASSIGNMENT.match(a) and not a.startswith("-")]
    problems = [f"{where}: `make {t}`: not a target `make help` lists"
                for t in targets if t not in make_targets()]  # fmt: skip
    if problems:
        return problems
    dry = make_dry_run(tuple(args), tuple(simple.env.items()))
    if dry.returncode != 0:
        return [f"{where}: `make -n {' '.join(args)}` failed: {dry.stderr[-500:]}"]
    values = [*simple.env.values(), *(a.partition("=")[2] for a in args if ASSIGNMENT.match(a))]
    problems += [f"{where}: {v!r} set on the line never reaches the recipe"
                 for v in values if v not in dry.stdout]  # fmt: skip
    return problems + recipe_problems(dry.stdout, where)


@cache
def script_help(script: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, script, "--help"], cwd=PROJECT_ROOT, timeout=120,
                          capture_output=True, text=True, env=child_env())  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def python_problems(argv: list[str], where: str) -> list[str]:
    if len(argv) < 2 or not argv[1].endswith(".py"):
        return [f"{where}: `{' '.join(argv)}`: only scripts of the repo are shown"]
    if not (PROJECT_ROOT / argv[1]).is_file():
        return [f"{where}: {argv[1]} does not exist"]
    code, text = script_help(argv[1])
    if code != 0:
        return [f"{where}: `{argv[1]} --help` failed: {text[-500:]}"]
    return [f"{where}: `{argv[1]} {word}`: not in its --help"
            for word in (w.strip("[]") for w in argv[2:])
            if not re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]  # fmt: skip


def problems(text: str) -> list[str]:
    """Everything wrong with the commands a README text shows (cheap checks only)."""
    found = []
    for simple, where, in_block in shown(text):
        if not simple.argv:
            continue
        name = program(simple.argv[0])
        if name == "vista":
            found += vista_problems(simple.argv, where)
        elif name == "make":
            found += make_problems(simple, where)
        elif name == "python" and in_block:
            found += python_problems(simple.argv, where)
        elif in_block and name not in PROGRAMS:
            found.append(f"{where}: `{simple.argv[0]}`: a program this test does not know")
    return found


def shown_vista_commands(text: str) -> set[str]:
    """The vista subcommands the README shows, its make targets' recipes included."""
    names = set()
    lines = [s.argv for s, _, _ in shown(text) if s.argv]
    for target in make_targets():
        lines += [s.argv for c in commands("\n".join(own_recipe(target)))
                  for s in simple_commands(c.text) if s.argv]  # fmt: skip
    for argv in lines:
        if program(argv[0]) == "vista":
            words = [w for w in argv[1:] if not w.startswith("-")]
            if words and words[0] != "...":
                names.add(words[0])
    return names


def node_exists(node: str) -> bool:
    path, _, name = node.partition("::")
    file = PROJECT_ROOT / path
    return file.is_file() and bool(re.search(rf"^def {re.escape(name)}\(", file.read_text(), re.M))


# ------------------------------------------------------------------ running commands
def child_env(**extra: str) -> dict[str, str]:
    """The environment of a command run as written: this checkout's packages first, no
    VISTA settings of the caller's, no usage reporting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISTA")}
    return {**env, "PYTHONPATH": str(PROJECT_ROOT), "GX_ANALYTICS_ENABLED": "false",
            "FEAST_USAGE": "False", "DO_NOT_TRACK": "1", **extra}  # fmt: skip


def substitutions(
    home: Path | None = None, port: int | None = None, as_of: dt.datetime | None = None
) -> list[tuple[str, str]]:
    """README text -> what runs here, in order (the longer `../.venv/bin/` first)."""
    table = [("../.venv/bin/", f"{BIN}/"), (".venv/bin/", f"{BIN}/")]
    if home is not None:  # the user's own data folder
        table.append(("~/data/", f"{home}/data/"))
    if port is not None:  # a free port for `vista serve`
        table += [("--port 8000", f"--port {port}"), ("localhost:8000", f"localhost:{port}")]
    if as_of is not None:  # the default profile's snapshot -> the tiny profile's
        table += [("2026-10-29", as_of.date().isoformat()),
                  ("2026-10-30", (as_of + dt.timedelta(days=1)).date().isoformat())]  # fmt: skip
    return table


def substitute(text: str, table: list[tuple[str, str]], needed: tuple[str, ...] = ()) -> str:
    for old in needed:
        assert old in text, f"the README's {text!r} no longer holds {old!r}"
    # one pass, the first match of the table's order at each place: a replacement is
    # never replaced again (`../.venv/bin/` holds `.venv/bin/`)
    pattern = "|".join(re.escape(old) for old, _ in table)
    return re.sub(pattern, lambda m: dict(table)[m[0]], text)


def sh(text: str, env: dict[str, str], cwd: Path = PROJECT_ROOT, timeout: int = 300):
    """One README command line, substituted, run by bash as a user would."""
    done = subprocess.run(["bash", "-c", text], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{text}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def tiny_paths(cfg) -> dict[str, str]:
    return {f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
            for k in ("state", "lake", "reports")}  # fmt: skip


def tiny_sizes() -> dict[str, str]:
    """conf/tiny.yaml's model sizes as VISTA__ variables: the README's own-data commands
    run as written, with the tests' sizes."""
    sizes = yaml.safe_load((CONF_DIR / "tiny.yaml").read_text())
    return {f"VISTA__{section.upper()}__{key.upper()}": json.dumps(value)
            for section in ("summarizer", "ranker") for key, value in sizes[section].items()}  # fmt: skip


def write_clicks(path: Path) -> None:
    """A small click log as exports write it (40 users over 30 days), plus one row whose
    item id is `10.5`: it goes to quarantine as id_not_integer."""
    rng = np.random.default_rng(0)
    n = 800
    start = pd.Timestamp("2025-01-01", tz="UTC")
    stamps = start + pd.to_timedelta(rng.uniform(0, 30 * 86_400, n), unit="s")
    frame = pd.DataFrame({
        "UserId": np.repeat(np.arange(1, 41), 20), "ProductId": rng.integers(1, 2_000, n),
        "Category": rng.choice(["books", "toys", "games"], n),
        "when": stamps.as_unit("ms").astype("int64") // 1000, "clicked": rng.integers(0, 2, n),
    })  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.to_csv(index=False)
    path.write_text(text + f"41,10.5,toys,{frame['when'].iloc[0]},1\n")


def own_data(home: Path, skip: tuple[str, ...] = ()) -> list:
    """The own-data block run as written on ``home``/data/clicks.csv; what each printed."""
    write_clicks(home / "data" / "clicks.csv")
    env = child_env(**tiny_sizes())
    done = []
    for command in fenced(readme(), ".venv/bin/vista init-profile"):
        if any(command.text.startswith(s) for s in skip):
            continue
        text = substitute(command.text, substitutions(home=home), ("~/data/",))
        done.append((command, sh(text, env, cwd=home, timeout=900)))
    return done


@contextlib.contextmanager
def kept_environment():
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ------------------------------------------------------------------ the parser
def test_blocks_carry_language_heading_and_line():
    text = ("# Top\n\n## Use\n\nrun `vista serve --port 1`\nand `make\nhelp`.\n\n"
            "```bash\nvista run \\\n  -p tiny   # all steps\n# a note\n\nmake help\n```\n"
            "<!-- results:x -->\n# Generated\n<!-- /results:x -->\n"
            "```python\nprint(1)  # `not a span`\n```\n")  # fmt: skip
    found = blocks(text)
    assert [(b.lang, b.heading, b.line) for b in found] == [("bash", "Use", 9),
                                                           ("python", "Use", 19)]  # fmt: skip
    assert commands(found[0].text, 10) == [Command("vista run -p tiny", 10, "all steps"),
                                           Command("make help", 14)]  # fmt: skip
    assert [(s.text, s.line) for s in spans(text)] == [("vista serve --port 1", 5),
                                                       ("make help", 6)]  # fmt: skip


def test_shell_lines_split_into_simple_commands():
    line = """A=1 B='x y' tool run --n=2 "a # b" && eval "$(vista env)"; cd repo | tee [--opt v]"""
    got = simple_commands(line)
    assert [(s.env, s.argv) for s in got] == [
        ({"A": "1", "B": "x y"}, ["tool", "run", "--n=2", "a # b"]),
        ({}, ["eval", "$(vista env)"]), ({}, ["vista", "env"]),
        ({}, ["cd", "repo"]), ({}, ["tee", "[--opt", "v]"]),
    ]  # fmt: skip
    assert options(got[0].argv) == ["--n"]
    assert options(got[-1].argv) == ["--opt"]
    assert [s.argv for s in simple_commands("vista q list|counts", synopsis=True)] == [
        ["vista", "q", "list|counts"]
    ]
    with pytest.raises(ValueError, match="continuation"):
        commands("vista run \\\n")


def test_substitutions_replace_once_in_the_tables_order():
    table = substitutions(port=5)
    line = "cd x; ../.venv/bin/feast ls; .venv/bin/vista serve --port 8000; curl localhost:8000/"
    assert substitute(line, table) == (
        f"cd x; {BIN}/feast ls; {BIN}/vista serve --port 5; curl localhost:5/"
    )
    with pytest.raises(AssertionError, match="no longer holds"):
        substitute(".venv/bin/vista serve", table, needed=("8000",))


# ------------------------------------------------------------------ quick checks
def test_every_command_the_readme_shows_exists_with_the_options_it_shows():
    text = readme()
    assert problems(text) == []
    found = shown(text)
    # the parser found what is there: not a vacuous pass
    fenced_programs = {program(s.argv[0]) for s, _, in_block in found if in_block and s.argv}
    assert fenced_programs == {"vista", "make", "python", "curl"}
    assert {"dag-test", "backfill", "quarantine", "init-profile", "serve", "online"} <= {
        s.argv[1] for s, _, _ in found if s.argv[:1] and program(s.argv[0]) == "vista"
        and len(s.argv) > 1
    }  # fmt: skip
    # every fenced block is a language this test runs
    assert {b.lang for b in blocks(text)} == {"bash", "python", ""}
    # the entry point a user types, in its own process, lists every command shown
    listed = subprocess.run([str(BIN / "vista"), "--help"], env=child_env(COLUMNS="200"),
                            capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    for name in shown_vista_commands(text):
        assert re.search(rf"\b{re.escape(name)}\b", listed), name


def test_a_readme_edit_that_breaks_a_command_fails_the_checks():
    text = readme()
    edits = {
        "--as-of 2026-10-29": ("--as_of 2026-10-29", "no such option"),
        "vista backfill --start": ("vista backfil --start", "no such command"),
        "make airflow-ui  ": ("make airflow-iu  ", "not a target"),
        "list|counts|export": ("list|count|export", "'count' is not in its --help"),
        "cache_bench.py --ranker": ("cache_bench.py --rankers", "not in its --help"),
        "AIRFLOW_PORT=8090 make": ("AIRFLOW_PORTS=8090 make", "never reaches the recipe"),
        "vista online 1 2 3": ("vista online 1 2 3 -p nosuch", "no conf/nosuch.yaml"),
    }
    for old, (new, message) in edits.items():
        assert old in text, old
        found = problems(text.replace(old, new, 1))
        assert any(message in p for p in found), (old, found)


def test_every_make_command_names_listed_targets_and_dry_runs():
    """`make help` runs for real; every listed target dry-runs (`make -n`), its recipe's
    vista commands and repository paths checked; `make test` runs pytest with the
    arguments the README passes."""
    targets = make_targets()
    assert {"help", "run", "test", "serve", "report"} <= set(targets)
    listed = run_make("help", check=True).stdout
    assert "$$" not in listed  # make's escape is not shown to the reader
    for target in targets:
        dry = make_dry_run((target,))
        assert dry.returncode == 0, (target, dry.stderr)
        assert recipe_problems(dry.stdout, f"make -n {target}") == []
        assert own_recipe(target), target
    # the pytest runs bench/test_wall_times.py --suite measures are the Makefile's
    wall_times = wall_times_bench()
    for target in ("test", "test-quick"):
        recipe = shlex.split(own_recipe(target)[-1])
        assert recipe == [".venv/bin/pytest", *wall_times.WHOLE_RUNS[f"make {target}"]]
    assert own_recipe("run") == [".venv/bin/vista dag-test"]


def test_every_shown_command_and_make_target_is_run_here_or_by_a_named_test():
    text = readme()
    assert set(VISTA_RUN_BY) == shown_vista_commands(text)
    for node in {*VISTA_RUN_BY.values(), *MAKE_RUN_BY.values()}:
        assert node_exists(node), node
    assert not set(MAKE_RUN_BY) & set(MAKE_DRY_RUN_ONLY)
    for target in make_targets():
        if target in MAKE_RUN_BY or target in MAKE_DRY_RUN_ONLY:
            continue
        # a target that only runs vista commands is covered by their tests
        recipe = [s.argv for c in commands("\n".join(own_recipe(target)))
                  for s in simple_commands(c.text)]  # fmt: skip
        assert recipe, target
        for argv in recipe:
            assert program(argv[0]) == "vista", f"make {target}: {argv} needs MAKE_RUN_BY"
            assert argv[1] in VISTA_RUN_BY, (target, argv)
    assert set(MAKE_RUN_BY) | set(MAKE_DRY_RUN_ONLY) <= set(make_targets())


@cache
def wall_times_bench():
    """bench/test_wall_times.py as a module (a script, not a package's)."""
    spec = importlib.util.spec_from_file_location("wall_times", BENCH / "test_wall_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_user_section_quotes_its_tests_wall_times_from_the_results():
    """The sentences are bench/test_wall_times.py's rendering of its committed records,
    each between results markers under its user's heading (tests/test_readme_results.py
    checks the README holds them as rendered)."""
    times = wall_times_bench()
    recorded = times.recorded_suites()
    assert set(recorded) == set(times.SUITES)
    text = readme()
    under = headings(text)
    for user in times.USERS:
        name = f"test_times-{user}"
        quoted = json.loads((RESULTS_DIR / f"{name}.json").read_text())["suites"]
        assert (RESULTS_DIR / f"{name}.md").read_text() == times.render(user, quoted)
        assert quoted == {suite: recorded[suite] for suite, _ in times.USERS[user]}
        line = text[: text.index(f"<!-- results:{name} -->")].count("\n")
        assert under[line].lower().startswith(user.replace("-", " ")), (user, under[line])
    assert times.duration(432) == "7 min 12 s"
    assert times.counts("3 passed, 1 skipped, 8 deselected in 9.1s") == {
        "passed": 3, "failed": 0, "errors": 0, "skipped": 1}  # fmt: skip


# ------------------------------------------------------------------ run as written
def test_own_data_and_quarantine_blocks_run_as_written(tmp_path):
    """`vista init-profile` and `vista ingest-events -p` on a small click log, then the
    quarantine block on the profile it wrote (`vista run -p` is the slow test's)."""
    home = tmp_path
    (_, made), (ingest, ingested) = own_data(home, skip=(".venv/bin/vista run",))
    assert "wrote" in made.stdout
    profile = home / "data" / "clicks.yaml"
    assert yaml.safe_load(profile.read_text())["source"]["columns"]["user_id"] == "UserId"
    result = json.loads(ingested.stdout)
    assert (result["events"], result["quarantined_by_reason"]) == (800, {"id_not_integer": 1})
    # where the README's comment says the lake is
    lake_dir = re.search(r"into (\S+)", ingest.comment)[1]
    assert (Path(substitute(lake_dir, substitutions(home=home))) / "events").is_dir()

    env = child_env(VISTA_PROFILE=str(profile))
    block = fenced(readme(), ".venv/bin/vista quarantine counts")
    assert [c.text.split()[2] for c in block] == ["counts", "export", "replay", "evict"]
    out = {}
    for command in block:
        action = command.text.split()[2]
        if action == "replay":  # the user corrects the exported row
            bad = pd.read_csv(home / "bad.csv")
            fixed = bad["raw"].iloc[0].replace("10.5", "10")
            (home / "fixed.csv").write_text(f"UserId,ProductId,Category,when,clicked\n{fixed}\n")
        done = sh(substitute(command.text, substitutions()), env, cwd=home)
        out[action] = json.loads(done.stdout)
    assert out["counts"]["rows"] == 1
    assert out["counts"]["by_reason"][0]["reason"] == "id_not_integer"
    assert out["export"]["rows"] == 1
    assert pd.read_csv(home / "bad.csv")["reason"].tolist() == ["id_not_integer"]
    assert (out["replay"]["events"], out["replay"]["quarantined"]) == (1, 0)
    assert out["evict"]["evicted"] == 0
    # replayed exactly once
    again = sh(substitute(block[2].text, substitutions()), env, cwd=home)
    assert json.loads(again.stdout)["generated"] is False


def test_a_config_field_set_by_environment_reaches_ingest_events(tmp_path):
    """`VISTA__GENERATOR__N_USERS=5000 vista ingest-events --force` on the tiny profile."""
    command = next(c for c in fenced(readme(), ".venv/bin/vista dag-test")
                   if "vista ingest-events" in c.text)  # fmt: skip
    paths = {f"VISTA__PATHS__{k}": str(tmp_path / k.lower()) for k in ("STATE", "LAKE", "REPORTS")}
    env = child_env(VISTA_PROFILE="tiny", **paths)
    first = json.loads(sh(substitute(command.text, substitutions()), env).stdout)
    assert (first["generated"], first["users"]) == (True, 5000)
    again = json.loads(sh(substitute(command.text, substitutions()), env).stdout)
    assert again["generated"] is True  # --force: written again though present


# ------------------------------------------------------------------ slow: pipelines
@pytest.mark.slow
def test_vista_run_on_own_data_runs_as_written(tmp_path):
    """The own-data block whole: init-profile, ingest-events -p, run -p (the tiny profile's
    model sizes through VISTA__ variables; the commands as written)."""
    done = own_data(tmp_path)
    assert [c.text.split()[1] for c, _ in done] == ["init-profile", "ingest-events", "run"]
    ran = done[-1][1]
    assert "VISTA pipeline, as_of" in ran.stdout
    profile = yaml.safe_load((tmp_path / "data" / "clicks.yaml").read_text())
    folder = tmp_path / "data" / "reports" / "clicks" / str(profile["source"]["cutoff_date"])
    assert (folder / "report.md").is_file()
    summary = json.loads((folder / "run.json").read_text())
    assert 0 <= summary["headline"]["ranker_auc"] <= 1


@pytest.mark.slow
def test_feast_sdk_online_and_serving_run_on_the_tiny_pipeline(pipeline_run, tmp_path):
    cfg, as_of, _ = pipeline_run
    text = readme()
    env = child_env(VISTA_PROFILE="tiny", **tiny_paths(cfg))

    # the Feast SDK snippet, executed as written (its date: the tiny snapshot's next day)
    (snippet,) = [b for b in blocks(text) if b.lang == "python"]
    assert "Feast SDK" in snippet.heading
    code = substitute(snippet.text, substitutions(as_of=as_of), ("2026-10-30",))
    scope: dict = {}
    with kept_environment():
        os.environ.update({k: v for k, v in env.items() if k.startswith("VISTA")})
        exec(compile(code, f"README.md:{snippet.line + 1}", "exec"), scope)
    train, online = scope["train"], scope["online"]
    assert len(train) == 2
    columns = {"user_id", "event_timestamp", "summary", "history_length", "summarizer_version"}
    assert columns <= set(train.columns)
    k_by_d = cfg.summarizer.n_seeds * cfg.summarizer.dim
    assert all(len(v) == k_by_d for v in train["summary"])
    assert len(online["summary"][0]) == k_by_d
    assert online["summarizer_version"] == [train["summarizer_version"].iloc[0]]

    # the plain feast CLI on the repo `vista feast-repo` writes, and `vista online`
    line = substitute(span_with(text, "feature-views list"), substitutions())
    assert "user_summary_encoded" in sh(line, env).stdout
    line = substitute(span_with(text, ".venv/bin/vista online"), substitutions())
    online_out = sh(line, env).stdout
    for user in (1, 2, 3):
        assert f"user {user}: history_length=" in online_out

    # `vista serve` and the curl line beside it
    if not (state.ranker_dir(cfg) / "current.json").exists():
        pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)
    port = free_port()
    serve, curl = fenced(text, ".venv/bin/vista serve")
    table = substitutions(port=port)
    server = subprocess.Popen(["bash", "-c", "exec " + substitute(serve.text, table, ("8000",))],
                              cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=(tmp_path / "serve.log").open("w"))  # fmt: skip
    try:
        wait_for_health(f"http://127.0.0.1:{port}", server,
                        (tmp_path / "serve.log").read_text, 180)  # fmt: skip
        answer = json.loads(sh(substitute(curl.text, table, ("localhost:8000",)), env).stdout)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer["item_ids"] == [17, 42]
    assert len(answer["scores"]) == 2
    assert all(0 < s < 1 for s in answer["scores"])


def help_walk(argv: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    """Check an airflow or feast command against its own --help: each word after the
    program is a listed command while the help lists commands; each option shown is in
    the deepest command's help."""
    path, problems = [argv[0]], []
    # an option's value (`-c "$(vista feast-repo)"`) is not a command word
    words = [w for i, w in enumerate(argv[1:], 1)
             if not w.startswith("-") and not (argv[i - 1].startswith("-") and "$(" in w)]  # fmt: skip
    # options before the first command word are the program's (`feast -c DIR ...`)
    first = argv.index(words[0]) if words else len(argv)
    top, flags = options(argv[:first]), options(argv[first:])
    if top:
        text = cli_help((argv[0],), tuple(env.items()), cwd)
        problems += [f"`{argv[0]} {f}`: not in its --help"
                     for f in top if not re.search(rf"(?<![\w-]){re.escape(f)}\b", text)]  # fmt: skip
    for word in words:
        if word == "...":
            break
        text = cli_help(tuple(path), tuple(env.items()), cwd)
        usage = next((line for line in text.splitlines() if "sage:" in line), "")
        if "COMMAND" not in usage:
            break  # the words left are the command's arguments
        if not re.search(rf"^\s+{re.escape(word)}\s", text, re.MULTILINE):
            return [f"`{' '.join(path)} {word}`: not a command of `{' '.join(path)}`"]
        path.append(word)
    if flags:
        text = cli_help(tuple(path), tuple(env.items()), cwd)
        problems += [f"`{' '.join(path)} {f}`: not in its --help"
                     for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}\b", text)]  # fmt: skip
    return problems


@cache
def cli_help(path: tuple[str, ...], env: tuple, cwd: Path) -> str:
    done = subprocess.run([*path, "--help"], cwd=cwd, env=dict(env), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, (path, done.stderr[-2000:])
    return done.stdout


@pytest.mark.slow
def test_airflow_and_feast_commands_the_readme_shows_are_theirs(tmp_path):
    env = child_env(AIRFLOW_HOME=str(tmp_path / "airflow"), COLUMNS="200")
    checked, found = set(), []
    for simple, where, _ in shown(readme()):
        name = program(simple.argv[0]) if simple.argv else ""
        if name in ("airflow", "feast"):
            argv = [str(BIN / name), *simple.argv[1:]]
            found += [f"{where}: {p}" for p in help_walk(argv, env, PROJECT_ROOT / "feature_repo")]
            words = [w for w in simple.argv[1:] if not w.startswith("-") and "$(" not in w]
            checked.add(" ".join([name, *words[:2]]))
    assert found == []
    # and the walk finds a misspelt command and an option the command lacks
    airflow = str(BIN / "airflow")
    assert help_walk([airflow, "dags", "trigerr"], env, PROJECT_ROOT)
    assert help_walk([airflow, "dags", "trigger", "x", "--confs", "{}"], env, PROJECT_ROOT)
    shown_here = {"airflow dags trigger", "airflow backfill create", "feast feature-views list"}
    assert shown_here <= checked
    assert shutil.which("curl"), "the README's curl line needs curl"
