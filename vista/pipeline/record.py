"""The run's record: what each step returned for a date (``steps/<step>.json``) and the
run summary gathered from them (``reports/<as_of>/run.json``, copied to
``reports/latest/``), whichever DAG or command finishes the chain.

One name per stage: a step here, its DAG task, its ``vista`` command (with dashes) and
its key in ``run.json`` are the same word.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from vista.core.config import VistaConfig
from vista.core.errors import MissingStateError
from vista.core.snapshot import Snapshot
from vista.state import (
    report_dir,
    write_json,
)

# One name per stage: the step here, its DAG task, its `vista` command (with dashes) and
# its key in the run summary (reports/<as_of>/run.json) are the same word.
# The steps `vista run` runs, in order, before write_run_summary gathers their results.
RUN_STEPS = (
    "ingest_events",
    "validate_events",
    "build_histories",
    "validate_histories",
    "build_raw_features",
    "train_summarizer",
    "summarize",
    "validate_summaries",
    "publish_features",
    "train_and_evaluate_ranker",
    "evaluate_and_report",
)
RUN_SUMMARY_FILE = "run.json"  # the run's record; "summary" alone means summary tokens
# what runs before these names recorded: the step keys and the run summary's old file
OLD_STEP_KEYS = {
    "data": "ingest_events",
    "events_quality": "validate_events",
    "histories": "build_histories",
    "histories_quality": "validate_histories",
    "raw_features": "build_raw_features",
    "summarizer": "train_summarizer",
    "summaries": "summarize",
    "summaries_quality": "validate_summaries",
    "features": "publish_features",
    "ranker": "train_and_evaluate_ranker",
    "evaluation": "evaluate_and_report",
}
OLD_RUN_SUMMARY_FILE = "summary.json"


def record_step(cfg: VistaConfig, as_of: Snapshot, step: str, result: dict) -> Path:
    """reports/<as_of>/steps/<step>.json: what each step of the date's run returned, so
    the run summary can be written by whichever DAG finishes the chain."""
    return write_json(report_dir(cfg, as_of) / "steps" / f"{step}.json", result)


def recorded_steps(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """Step name -> its recorded result for the date, in run order (files written under
    the old keys, e.g. ``steps/data.json``, are read under their step's name)."""
    folder = report_dir(cfg, as_of) / "steps"
    rank = {step: i for i, step in enumerate(RUN_STEPS)}
    found: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stem in OLD_STEP_KEYS):
        found.setdefault(OLD_STEP_KEYS.get(path.stem, path.stem), json.loads(path.read_text()))
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def write_run_summary(
    cfg: VistaConfig, as_of: Snapshot, steps: dict[str, Any] | None = None
) -> dict[str, Any]:
    """reports/<as_of>/run.json, copied to reports/latest/run.json: the date's headline
    figures, every step recorded for it (plus ``steps``) by step name, and the config.

    Returns ``{"path": <the date's run.json>}``."""
    steps = {**recorded_steps(cfg, as_of), **(steps or {})}
    ranker = steps.get("train_and_evaluate_ranker", {})
    metrics = ranker.get("metrics", {})
    payload = {
        "as_of": as_of.iso,
        "profile": cfg.profile,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "headline": {
            "ranker_auc": metrics.get("ranker_v1", {}).get("auc"),
            "ranker_log_loss": metrics.get("ranker_v1", {}).get("log_loss"),
            "oracle_auc": metrics.get("oracle", {}).get("auc"),
            "summarizer_version": steps.get("summarize", {}).get("summarizer_version"),
            "evaluation_auc": {
                name: by_bucket.get("all")
                for name, by_bucket in steps.get("evaluate_and_report", {})
                .get("auc_by_bucket", {})
                .items()
            },
        },
        "steps": steps,
        "data_docs": str(report_dir(cfg, as_of) / "data_docs" / "index.html"),
        "config": cfg.to_dict(),
    }
    path = write_json(report_dir(cfg, as_of) / RUN_SUMMARY_FILE, payload)
    latest = cfg.paths.reports / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, latest / RUN_SUMMARY_FILE)
    # latest/ holds one run: an older copy under the old name would be stale
    (latest / OLD_RUN_SUMMARY_FILE).unlink(missing_ok=True)
    return {"path": str(path)}


def read_run_summary(folder: Path) -> dict[str, Any]:
    """The run summary in ``folder`` (reports/<as_of> or reports/latest): run.json, or
    the summary.json of a run before that name, its step keys renamed to step names."""
    path = folder / RUN_SUMMARY_FILE
    if not path.exists() and (folder / OLD_RUN_SUMMARY_FILE).exists():
        path = folder / OLD_RUN_SUMMARY_FILE
    if not path.exists():
        raise MissingStateError(
            f"no run summary at {folder / RUN_SUMMARY_FILE}: run `vista run`, `vista "
            "write-run-summary` or the DAG chain for that date first"
        )
    payload = json.loads(path.read_text())
    payload["steps"] = {OLD_STEP_KEYS.get(k, k): v for k, v in payload.get("steps", {}).items()}
    return payload


def format_run_summary(payload: dict[str, Any]) -> str:
    """A few lines for the terminal from a run summary (``read_run_summary``)."""
    head = payload["headline"]
    steps = payload["steps"]

    def fmt(x):
        return "n/a" if x is None else f"{x:.4f}"

    lines = [
        f"VISTA pipeline, as_of {payload['as_of']} (profile {payload['profile']})",
        f"  histories : {steps.get('build_histories', {}).get('users', '?')} users, "
        f"{steps.get('build_histories', {}).get('events', '?')} events",
        f"  summarizer: {head['summarizer_version']}",
        f"  ranker AUC: {fmt(head['ranker_auc'])}  log loss {fmt(head['ranker_log_loss'])}"
        f"  (oracle AUC {fmt(head['oracle_auc'])})",
        f"  data docs : {payload['data_docs']}",
    ]
    states = steps.get("summarize", {}).get("states")
    if states:  # memory mode: how the long histories' cached states were made
        how = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in states["how"].items() if v)
        lines.insert(3, f"  states    : {states['users']} long histories ({how}), "
                        f"{states['events_read']} of {states['events']} events read")  # fmt: skip
    evaluation = steps.get("evaluate_and_report", {})
    if evaluation.get("files"):
        aucs = ", ".join(f"{k} {fmt(v)}" for k, v in head.get("evaluation_auc", {}).items())
        lines += [f"  evaluation: AUC {aucs}", f"  report    : {evaluation['files']['report']}"]
    return "\n".join(lines)
