"""The workload the fault tests kill: one date's ingest -> histories -> raw features ->
summaries, in a process of its own.

    python -m tests.fault_workload <root> <as_of>

It prints one JSON line as each step starts (``{"started": step}``) and one as it ends
(``{"step": step, ...}``), so a test can kill it inside a chosen step.

``<root>`` holds a tiny profile's state and lake (``prepare_root``): per-day landing
folders of events files and a frozen summarizer, so each run does real Spark, Delta and
PyTorch work for one date.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from vista.core.snapshot import Snapshot

STEPS = ("ingest_events", "build_histories", "build_raw_features", "summarize")
COLUMNS = {"user_id": "user_id", "item_id": "item_id", "timestamp": "ts",
           "event_type": "event_type", "category": "category"}  # fmt: skip


def workload_config(root: Path):
    from tests.conftest import tiny_config

    source = {"events_path": str(root / "landing" / "{date}"), "format": "auto",
              "timestamp_unit": "us", "columns": COLUMNS, "cutoff_date": "2026-07-31"}  # fmt: skip
    return tiny_config(root, source=source)


def prepare_root(root: Path, dates: list[str]) -> None:
    """Landing files: for each date, the synthetic events of the day before it (all
    earlier events for the first date); a frozen summarizer with random weights."""
    import pandas as pd

    from models.summarizer import build_summarizer, save_checkpoint
    from sources.synthetic import generate
    from vista import state

    cfg = workload_config(root)
    events = pd.concat([e.to_pandas() for e, _ in generate(cfg.generator)], ignore_index=True)
    events["ts"] = events["event_timestamp"].astype("datetime64[us, UTC]").astype("int64")
    starts = [None, *dates[:-1]]
    for start, day in zip(starts, dates, strict=True):
        keep = events["event_date"] < day
        if start is not None:
            keep &= events["event_date"] >= start
        folder = root / "landing" / day
        folder.mkdir(parents=True, exist_ok=True)
        events.loc[keep, list(COLUMNS.values())].to_parquet(folder / "events.parquet")
    import torch

    torch.manual_seed(0)
    model = build_summarizer(cfg.summarizer).eval()
    version = model.version()
    path = save_checkpoint(model, state.checkpoint_dir(cfg) / f"{version}.pt")
    pointer = state.checkpoint_dir(cfg) / "current.json"
    pointer.write_text(json.dumps({"version": version, "path": str(path),
                                   "settings": cfg.summarizer.model_dump(mode="json")}))  # fmt: skip


def run(root: Path, as_of: str) -> None:
    from vista import pipeline

    cfg = workload_config(root)
    day = Snapshot.of(as_of)
    for step in STEPS:
        print(json.dumps({"started": step}), flush=True)
        result = pipeline.STEPS[step](cfg, day)
        print(json.dumps({"step": step, "at": dt.datetime.now(dt.UTC).isoformat(),
                          "unchanged": bool(result.get("unchanged"))}), flush=True)  # fmt: skip


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])
