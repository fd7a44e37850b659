"""Reruns for the same date change nothing: every Delta table keeps its version and its
content, and the online store serves the same summaries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import tiny_config
from vista import features, pipeline
from vista.core import lake, names
from vista.core.snapshot import Snapshot


def delta_tables(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if p.is_dir())


def content_hash(path: Path) -> str:
    """Order-free hash of a table's rows (list columns included)."""
    frame = lake.read_arrow(path).to_pandas()
    text = frame.map(lambda v: repr(v.tolist()) if hasattr(v, "tolist") else repr(v))
    rows = sorted("|".join(row) for row in text.itertuples(index=False, name=None))
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def lake_state(cfg) -> dict[str, tuple[int, int, str]]:
    """table -> (version, rows, content hash)."""
    return {
        str(path.relative_to(cfg.paths.lake)): (
            lake.table_version(path),
            lake.read_arrow(path).num_rows,
            content_hash(path),
        )
        for path in delta_tables(cfg.paths.lake)
    }


def run_every_step(cfg, as_of) -> dict:
    results = {}
    for step in pipeline.RUN_STEPS:
        if step == "evaluate_and_report":
            continue
        results[step] = pipeline.STEPS[step](cfg, as_of)
    return results


@pytest.mark.slow
def test_whole_pipeline_again_for_the_same_date_leaves_every_table_unchanged(pipeline_run):
    """The shared tiny run (tests/conftest.py: every step but the ranker's) is the first
    run; every step again, the ranker's included, is the second."""
    cfg, as_of, _ = pipeline_run
    first = lake_state(cfg)
    users = pipeline.read_summaries(cfg, as_of)["user_id"].tolist()
    online_first = features.online_summaries(features.feature_store(cfg), users)

    again = run_every_step(cfg, as_of)
    assert lake_state(cfg) == first  # same versions: the rerun committed nothing
    assert {"events", "impressions", "user_histories"} <= set(first)
    assert any(name.startswith("user_summaries/") for name in first)
    assert again["build_histories"]["unchanged"]
    assert again["summarize"]["unchanged"]
    assert again["build_raw_features"]["unchanged"]
    online_again = features.online_summaries(features.feature_store(cfg), users)
    pd.testing.assert_frame_equal(pd.DataFrame(online_again), pd.DataFrame(online_first))


@pytest.mark.slow
def test_new_events_make_the_rerun_rebuild_that_date(tmp_path, spark):
    """Skipping is keyed on the inputs: once the events table changes, the same date is
    rebuilt (and the new event is in its histories)."""
    cfg = tiny_config(tmp_path)
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    pipeline.ingest_events(cfg)
    first = pipeline.build_histories(cfg, as_of)
    events = cfg.paths.table(names.EVENTS)
    late = lake.read_arrow(events).slice(0, 1).to_pandas()
    late["item_id"] = 4_999
    late["event_timestamp"] = pd.Timestamp(as_of) - pd.Timedelta(hours=1)
    late["event_date"] = (as_of - pd.Timedelta(days=1)).date().isoformat()
    lake.write_arrow(events, __import__("pyarrow").Table.from_pandas(late, preserve_index=False),
                     ["event_date"], mode="append")  # fmt: skip
    second = pipeline.build_histories(cfg, as_of)
    assert not second.get("unchanged")
    assert second["table_version"] > first["table_version"]
    assert second["events"] == first["events"] + 1
