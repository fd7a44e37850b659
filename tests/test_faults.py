"""Crashes and concurrency: a workload killed with SIGKILL inside each of its steps leaves
every table readable at its last version, and a rerun completes with no lost and no
duplicated rows; two dates run at the same time both succeed.

The kill points: one trial that kills the workload (tests/fault_workload.py) inside each
of its steps in turn, at a point drawn from a fixed seed (10-40% into the step's
duration in an uninterrupted run), so that every step's Delta commits are interrupted
once, and each restart begins on what the kills before it left: the ingest's append to events and impressions, the histories partition's
overwrite, the two raw-feature tables, the summaries partition (and the summarizer
read before it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fault_workload import STEPS, prepare_root, workload_config
from vista import pipeline
from vista.core import lake
from vista.core.config import PROJECT_ROOT
from vista.core.snapshot import Snapshot

DATES = ["2026-07-29", "2026-07-30", "2026-07-31"]
# columns that record when a row was written, not what it says
RUN_TIME_COLUMNS = ("ingested_at", "created_timestamp", "summary_codes", "summary_scales")


def tables(root: Path) -> dict[str, Path]:
    lake_root = workload_config(root).paths.lake
    return {str(p.parent.relative_to(lake_root)): p.parent
            for p in sorted(lake_root.rglob("_delta_log"))}  # fmt: skip


def read_all(root: Path) -> dict[str, pd.DataFrame]:
    """Every table, read in full at its current version (fails if one is unreadable)."""
    return {name: lake.read_arrow(path).to_pandas() for name, path in tables(root).items()}


def comparable(frame: pd.DataFrame, ignore: tuple[str, ...] = ()) -> list[str]:
    keep = [c for c in frame.columns if c not in RUN_TIME_COLUMNS + ignore]
    text = frame[keep].map(lambda v: repr(v.tolist()) if hasattr(v, "tolist") else repr(v))
    return sorted("|".join(row) for row in text.itertuples(index=False, name=None))


def summaries(root: Path, as_of: str) -> pd.DataFrame:
    cfg = workload_config(root)
    frame = pipeline.read_summaries(cfg, Snapshot.of(as_of))
    return frame.set_index("user_id").sort_index()


def workload(root: Path, as_of: str) -> subprocess.Popen:
    """The workload for one date; its stderr (Spark's log) goes to ``process.log``, a file
    beside ``root``, so that reading its stdout line by line never waits on a full pipe."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    log = root.parent / f"{root.name}-{as_of}.log"
    with log.open("a") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "tests.fault_workload", str(root),
                                    as_of], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)  # fmt: skip
    process.log = log
    return process


def finish(process: subprocess.Popen, timeout: int = 600) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, process.log.read_text()[-3000:]
    return out


def timed(process: subprocess.Popen) -> dict[str, float]:
    """Seconds each step took, as this process saw the workload's lines; waits for its end."""
    seconds, began = {}, 0.0
    for line in process.stdout:
        record, now = json.loads(line), time.monotonic()
        if "started" in record:
            began = now
        else:
            seconds[record["step"]] = now - began
    finish(process)
    return seconds


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The first date done; the reference: the second date done without a fault, and how
    long each of its steps took."""
    root = tmp_path_factory.mktemp("faults") / "base"
    prepare_root(root, DATES)
    finish(workload(root, DATES[0]))
    reference = root.parent / "reference"
    shutil.copytree(root, reference, symlinks=True)
    return root, reference, timed(workload(reference, DATES[1]))


def assert_same_tables(got: Path, want: Path, ignore: tuple[str, ...] = ()) -> None:
    mine, theirs = read_all(got), read_all(want)
    assert set(mine) == set(theirs)
    for name in theirs:
        assert comparable(mine[name], ignore) == comparable(theirs[name], ignore), name


def kill_inside(root: Path, as_of: str, step: str, seconds: float) -> list[str]:
    """Start the workload, SIGKILL it ``seconds`` after ``step`` started; the steps that
    had finished by then."""
    process = workload(root, as_of)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if json.loads(line).get("started") == step:
            break
    time.sleep(seconds)
    process.send_signal(signal.SIGKILL)
    out, _ = process.communicate()
    assert process.returncode == -signal.SIGKILL, process.log.read_text()[-3000:]
    records = [json.loads(line) for line in [*seen, *out.splitlines()]]
    return [record["step"] for record in records if "step" in record]


@pytest.mark.slow
def test_sigkill_inside_each_step_then_rerun_loses_and_duplicates_nothing(base, tmp_path):
    """One date's workload killed inside each of its steps in turn: each start reruns (or
    finds done) what the one before finished and is killed inside the next step; after
    every kill each table reads at its last version; the last start runs to the end and
    leaves the tables of the uninterrupted run, with no duplicated event."""
    root, reference, seconds = base
    trial_root = tmp_path / "trial"
    shutil.copytree(root, trial_root, symlinks=True)
    for step in STEPS:
        rng = random.Random(20261129 + STEPS.index(step))
        finished = kill_inside(
            trial_root, DATES[1], step, seconds[step] * (0.1 + 0.3 * rng.random())
        )
        assert step not in finished, f"{step} ended before the kill: {finished}"
        assert finished == list(STEPS[: STEPS.index(step)]), finished
        read_all(trial_root)  # every table opens and reads at its last version
    finish(workload(trial_root, DATES[1]))  # the rerun completes
    assert_same_tables(trial_root, reference)
    events = read_all(trial_root)["events"]
    key = ["user_id", "item_id", "event_timestamp", "event_type"]
    assert not events.duplicated(key).any()
    np.testing.assert_allclose(np.stack(summaries(trial_root, DATES[1]).summary),
                               np.stack(summaries(reference, DATES[1]).summary),
                               atol=1e-6)  # fmt: skip


@pytest.mark.slow
def test_two_dates_at_the_same_time_both_succeed(base, tmp_path):
    root, reference, _ = base
    both = tmp_path / "both"
    shutil.copytree(root, both, symlinks=True)
    runs = [workload(both, DATES[1]), workload(both, DATES[2])]
    for process in runs:
        finish(process)
    tables_now = read_all(both)
    assert not tables_now["events"].duplicated(
        ["user_id", "item_id", "event_timestamp", "event_type"]).any()  # fmt: skip
    histories = tables_now["user_histories"]
    assert set(histories.as_of_date) == set(DATES)
    # the second date depends only on events before it: equal to the sequential run
    second = histories[histories.as_of_date == DATES[1]].drop(columns=["updated"])
    want = read_all(reference)["user_histories"]
    want = want[want.as_of_date == DATES[1]].drop(columns=["updated"])
    assert comparable(second) == comparable(want)
    # the third may have run before the second's events landed; a rerun converges to
    # the sequential run (the two run side by side: separate lakes)
    sequential = tmp_path / "sequential"
    shutil.copytree(reference, sequential, symlinks=True)
    for process in [workload(both, DATES[2]), workload(sequential, DATES[2])]:
        finish(process)
    assert_same_tables(both, sequential, ignore=("updated",))
