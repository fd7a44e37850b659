"""Wall time of the tests that walk each user's path, quoted in the README's user sections.

Runs each suite's test file with pytest in its own process (quick and slow tests alike,
as `make test` runs them; session fixtures such as the tiny pipeline built inside it),
and records the wall time, the tests passed, the load average at the start and the
machine and commit. A run with a failure, an error or a skip records nothing. Suites not
named on the command line keep their last record. Each user's sentence is rendered into
docs/results/test_times-<user>.md, which bench/readme_results.py puts into the README,
beside test_times-<user>.json: the records it quotes (and, on top, the latest one's
machine and commit).

The suite as a whole is measured the same way (``--suite``): the full pytest run that
`make test` makes and the quick set that `make test-quick` makes, each with its 12
slowest tests, into docs/results/test_suite.{md,json}, which the README's testing lines
quote.

    .venv/bin/python bench/test_wall_times.py --suite          # make test's pytest + quick set
    .venv/bin/python bench/test_wall_times.py                  # every suite below
    .venv/bin/python bench/test_wall_times.py readme           # only these, others kept
    .venv/bin/python bench/test_wall_times.py --render         # rewrite the .md files only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vista.provenance import RESULTS_DIR, provenance  # noqa: E402

SUITES = {
    "readme": "tests/test_readme.py",
    "browser": "tests/test_browser.py",
    "offline_docs": "tests/test_offline_docs.py",
}
# each user section of the README: (suite, what it does for that user)
USERS = {
    "data-engineer": [
        ("readme", "runs this section's commands as written on the tiny profile (`vista "
         "ingest-events` set by environment, the quarantine block) and checks the others "
         "against `vista --help`, `make -n` and the tests it names"),
        ("browser", "walks the Airflow UI in Chromium: the chain triggered from its form runs "
         "on a real scheduler with PostgreSQL"),
    ],
    "ranking-modeler": [
        ("readme", "runs the Feast SDK snippet on the tiny pipeline's features, `vista "
         "init-profile`, `ingest-events -p` and `run -p` on a small click log, the feast CLI "
         "on `vista feast-repo`'s repo, and `vista online`"),
    ],
    "service-owner": [
        ("readme", "starts `vista serve` on the tiny pipeline and runs the curl line"),
        ("browser", "scores the /docs example with Try it out"),
    ],
    "reviewer": [
        ("offline_docs", "renders the Data Docs and reads them in Chromium with the "
         "network off"),
    ],
}  # fmt: skip


def duration(seconds: float) -> str:
    """7 min 12 s; 11 s."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def counts(summary: str) -> dict[str, int]:
    """pytest's last line (`3 passed, 1 skipped, 8 deselected in 9.1s`) as numbers."""
    found = dict.fromkeys(("passed", "failed", "errors", "skipped"), 0)
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)", summary):
        found["errors" if word.startswith("error") else word] = int(number)
    return found


def run_pytest(args: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """pytest with ``args`` in a process of its own: (the run, its wall seconds, the load
    average at its start: other work on the machine slows it)."""
    command = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "FEAST_USAGE": "False",
           "DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT)}  # fmt: skip
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    return done, time.perf_counter() - started, load


def measure(suite: str) -> dict:
    path = SUITES[suite]
    done, seconds, load = run_pytest([path])
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    found = counts(tail)
    bad = found["failed"] + found["errors"] + found["skipped"]
    if done.returncode != 0 or found["passed"] == 0 or bad:
        sys.stdout.write(done.stdout[-5000:] + done.stderr[-3000:])
        raise SystemExit(f"{path}: not all tests passed ({tail!r}); nothing recorded")
    return {"file": path, "command": f".venv/bin/pytest {path}", "wall_seconds": round(seconds, 1),
            "passed": found["passed"], "load_average_before": round(load, 2),
            **provenance()}  # fmt: skip


# the two runs the README's testing lines quote: pytest as `make test` and `make
# test-quick` run it (the Makefile's PYTEST_ARGS defaults), with the 12 slowest printed
# (tests/test_readme.py checks these against the Makefile's recipes)
WHOLE_RUNS = {
    "make test": ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder"],
    "make test-quick": [
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--no-loadscope-reorder",
        "-m",
        "not slow and not integration",
    ],
}
DURATION_LINE = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)$")


def measure_run(name: str) -> dict:
    """One whole pytest run: wall time, counts, the 12 slowest phases pytest printed."""
    done, seconds, load = run_pytest(WHOLE_RUNS[name])
    lines = done.stdout.strip().splitlines()
    found = counts(lines[-1] if lines else "")
    if done.returncode != 0 or found["failed"] + found["errors"]:
        sys.stdout.write(done.stdout[-5000:] + done.stderr[-3000:])
        raise SystemExit(f"{name}: not all tests passed; nothing recorded")
    slowest = [{"seconds": float(m["seconds"]), "phase": m["phase"], "test": m["test"]}
               for m in map(DURATION_LINE.match, lines) if m]  # fmt: skip
    return {"run": name, "pytest_args": WHOLE_RUNS[name], "wall_seconds": round(seconds, 1),
            **found, "slowest": slowest[:12], "load_average_before": round(load, 2),
            **provenance()}  # fmt: skip


def render_suite(runs: dict[str, dict]) -> str:
    """The README's testing lines: each run's wall time, tests, machine and load."""
    parts = []
    for name in WHOLE_RUNS:
        r = runs[name]
        skipped = f", {r['skipped']} skipped" if r["skipped"] else ""
        parts.append(f"`{name}`'s pytest took {duration(r['wall_seconds'])} ({r['passed']} "
                     f"passed{skipped}; load average {r['load_average_before']:.1f} at the "
                     f"start)")  # fmt: skip
    first = runs["make test"]
    commit = first["commit"][:10] + (" with uncommitted changes" if first["dirty"] else "")
    slow = ", ".join(f"{t['test'].split('::')[-1]} {duration(t['seconds'])}"
                     for t in first["slowest"][:3])  # fmt: skip
    return (
        f"Measured on {first['machine']['cpus']} cores (commit {commit}; "
        f"`bench/test_wall_times.py --suite`): {'; '.join(parts)}. Slowest: {slow}.\n"
    )


def render(user: str, suites: dict[str, dict]) -> str:
    """One user's sentence: each suite's wall time and where it was measured."""
    parts = []
    for suite, what in USERS[user]:
        record = suites[suite]
        parts.append(f"`{record['file']}` {what}: {duration(record['wall_seconds'])} "
                     f"({record['passed']} test{'s' if record['passed'] > 1 else ''})")  # fmt: skip
    records = [suites[suite] for suite, _ in USERS[user]]
    machines = {(r["machine"]["cpus"], r["commit"][:10] + (" with uncommitted changes"
                 if r["dirty"] else "")) for r in records}  # fmt: skip
    where = "; ".join(f"{cpus} cores, commit {commit}" for cpus, commit in sorted(machines))
    loads = sorted(r["load_average_before"] for r in records)
    where += f"; load average {loads[0]:.1f}" + (f" to {loads[-1]:.1f}" if loads[-1] != loads[0]
                                                  else "") + " at the start"  # fmt: skip
    return (f"**Tested as written.** {'; '.join(parts)}. Wall time of the whole file, "
            f"session fixtures included ({where}; `bench/test_wall_times.py`).\n")  # fmt: skip


def recorded_suites() -> dict[str, dict]:
    """Every suite's last record, from the users' files."""
    found: dict[str, dict] = {}
    for path in sorted(RESULTS_DIR.glob("test_times-*.json")):
        for suite, record in json.loads(path.read_text())["suites"].items():
            if suite not in found or record["written_at"] > found[suite]["written_at"]:
                found[suite] = record
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help=f"of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md files")
    parser.add_argument("--suite", action="store_true",
                        help="measure make test's and make test-quick's pytest runs")  # fmt: skip
    args = parser.parse_args()
    suite_file = RESULTS_DIR / "test_suite.json"
    if args.suite:
        runs = {name: measure_run(name) for name in WHOLE_RUNS}
        for name, r in runs.items():
            print(f"{name}: {duration(r['wall_seconds'])}, {r['passed']} passed")
        top = {k: runs["make test"][k] for k in ("machine", "commit", "dirty", "written_at")}
        suite_file.write_text(json.dumps({"runs": runs, **top}, indent=2) + "\n")
    if suite_file.exists():
        suite_file.with_suffix(".md").write_text(
            render_suite(json.loads(suite_file.read_text())["runs"])
        )
    if args.suite:
        return 0
    if unknown := set(args.suites) - set(SUITES):
        parser.error(f"unknown suite(s) {', '.join(sorted(unknown))}: use {', '.join(SUITES)}")
    recorded = recorded_suites()
    if not args.render:
        for suite in args.suites or SUITES:
            recorded[suite] = measure(suite)
            print(f"{SUITES[suite]}: {duration(recorded[suite]['wall_seconds'])}, "
                  f"{recorded[suite]['passed']} passed")  # fmt: skip
    for user in USERS:
        (RESULTS_DIR / f"test_times-{user}.md").write_text(render(user, recorded))
        records = {suite: recorded[suite] for suite, _ in USERS[user]}
        latest = max(records.values(), key=lambda r: r["written_at"])
        top = {k: latest[k] for k in ("machine", "commit", "dirty", "written_at")}
        text = json.dumps({"suites": records, **top}, indent=2) + "\n"
        (RESULTS_DIR / f"test_times-{user}.json").write_text(text)
    print(f"{len(USERS)} user sections written; then: .venv/bin/python bench/readme_results.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
