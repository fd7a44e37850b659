"""The run summary (reports/<as_of>/run.json): keyed by step name, and runs recorded
before that name (steps/data.json, summary.json) still read."""

import json

import pytest

from tests.conftest import tiny_config
from vista import pipeline
from vista.core.errors import MissingStateError
from vista.core.snapshot import Snapshot
from vista.state import report_dir, write_json


def test_run_summary_gathers_steps_by_name_and_reads_the_old_keys(tmp_path):
    cfg = tiny_config(tmp_path)
    as_of = Snapshot.of("2026-10-29")
    folder = report_dir(cfg, as_of)
    pipeline.record_step(cfg, as_of, "build_histories", {"users": 7, "events": 70})
    states = {"users": 2, "events": 5000, "events_read": 40,
              "how": {"new": 0, "refreshed": 1, "advanced": 0, "rebuilt_corrupt": 1}}  # fmt: skip
    pipeline.record_step(cfg, as_of, "summarize", {"summarizer_version": "s-1", "states": states})
    write_json(folder / "steps" / "histories.json", {"users": 1})  # an older run's key
    write_json(folder / "steps" / "ranker.json",
               {"metrics": {"ranker_v1": {"auc": 0.75, "log_loss": 0.5}}})  # fmt: skip
    latest = cfg.paths.reports / "latest"
    write_json(latest / "summary.json", {"stale": True})

    path = pipeline.write_run_summary(cfg, as_of)["path"]
    assert path == str(folder / "run.json")
    run = json.loads((latest / "run.json").read_text())
    assert list(run["steps"]) == ["build_histories", "summarize", "train_and_evaluate_ranker"]
    assert run["steps"]["build_histories"]["users"] == 7  # the step's own name wins
    assert run["headline"]["ranker_auc"] == 0.75
    assert not (latest / "summary.json").exists()  # no stale copy beside the new one
    printed = pipeline.format_run_summary(pipeline.read_run_summary(latest))
    assert "7 users, 70 events" in printed
    # a corrupted cached state is counted where the data engineer reads the run
    assert "2 long histories (rebuilt corrupt 1, refreshed 1), 40 of 5000 events read" in printed


def test_an_old_summary_json_is_read_under_the_step_names(tmp_path):
    cfg = tiny_config(tmp_path)
    folder = report_dir(cfg, Snapshot.of("2026-10-01"))
    with pytest.raises(MissingStateError, match=r"run\.json"):
        pipeline.read_run_summary(folder)
    old = {"as_of": "2026-10-01", "profile": "tiny", "data_docs": "x",
           "headline": {"ranker_auc": 0.6, "ranker_log_loss": 0.7, "oracle_auc": None,
                        "summarizer_version": "abc"},
           "steps": {"histories": {"users": 3, "events": 9}, "data": {"generated": True}}}  # fmt: skip
    write_json(folder / "summary.json", old)
    run = pipeline.read_run_summary(folder)
    assert set(run["steps"]) == {"build_histories", "ingest_events"}
    assert "3 users, 9 events" in pipeline.format_run_summary(run)
