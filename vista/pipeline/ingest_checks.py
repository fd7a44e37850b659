"""Stage 1's check, ``validate_events``: the critical events and impressions suites and
the quarantine suite, on the rows the ingest runs of the date added (found by their
commits), so a bad row stored once fails the run that added it and not every later one.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.names import (
    EVENTS,
    IMPRESSIONS,
    INGEST_DATE,
    QUARANTINE,
)
from vista.core.snapshot import Snapshot
from vista.state import (
    report_dir,
)

GENERATOR_META_KEY = "vista.generator"


def ingest_commits(path, date: str) -> list[dict[str, Any]]:
    """The events commits of the ingest runs for run date ``date`` (oldest first), each
    with the table files it added (``added``)."""
    from deltalake import DeltaTable

    table = lake.open_table(path)
    commits = [c for c in table.history() if c.get("vista.ingest_date") == date]

    def files(version: int) -> set[str]:
        if version < 0:
            return set()
        at = DeltaTable(lake.table_uri(path), version=version,
                        storage_options=lake.storage_options(path))  # fmt: skip
        return set(at.get_add_actions(flatten=True).column("path").to_pylist())

    return [{**c, "added": files(c["version"]) - files(c["version"] - 1)}
            for c in sorted(commits, key=lambda c: c["version"])]  # fmt: skip


def rows_added(path, commits: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows in the files ``commits`` added that are still in the table (an ingest
    commit only adds files: its merge inserts rows and rewrites none)."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pa_fs

    table = lake.open_table(path)
    added = set().union(*(c["added"] for c in commits)) if commits else set()
    local = None
    if lake.is_local(path):
        local = pa_fs.SubTreeFileSystem(str(Path(path).resolve()), pa_fs.LocalFileSystem())
    dataset = table.to_pyarrow_dataset(filesystem=local)
    fragments = [f for f in dataset.get_fragments() if f.path in added]
    subset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    return subset.to_table().to_pandas()


def _events_problem(cfg, frame, commits, now, allowed, skew, exc) -> str:
    """The failed suite's message, plus the rows (and the commits and files they came
    from) that it rejects and how to repair the table."""
    from validation.suites import events_frame, events_rejected

    bad = frame[events_rejected(events_frame(frame), now, allowed, skew).to_numpy()]
    shown = bad.head(5)[["user_id", "item_id", "event_type", "event_timestamp"]]
    rows = "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in shown.to_dict("records"))
    versions = [c["version"] for c in commits]
    files = sorted({f for c in commits for f in json.loads(c.get("vista.ingested_files", "[]"))})
    return (
        f"{exc}\n  {len(bad)} of the {len(frame)} rows that the ingest runs of this date added "
        f"to {cfg.paths.table(EVENTS)} (commit versions {versions}, from {files[:5]}) fail "
        f"it, e.g. {rows}.\n  Repair: `vista quarantine evict --as-of <date>` moves every "
        f"events row the suite rejects to {QUARANTINE} (reason rejected_by_suite), or restore "
        f"the table to version {min(versions, default=1) - 1} and ingest again"
    )


def validate_events(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """The events and impressions suites (critical) and, for an ingested source, the
    quarantine suite on the rows this run set aside (warns).

    For an ingested source the events suite checks the rows the ingest runs of this
    date added (found by their commits), not the whole table: a bad row already stored
    fails the run that added it, names itself and the repair, and does not stop every
    later run. The table itself must not be empty."""
    from sources.ingest import REASONS, allowed_event_types
    from validation.checkpoints import DataQualityError, run_suite
    from validation.suites import (
        events_frame,
        events_suite,
        impressions_suite,
        quarantine_frame,
        quarantine_suite,
    )

    events_path = cfg.paths.table(EVENTS)
    now = dt.datetime.now(dt.UTC)
    if cfg.source is None:
        events = lake.read_arrow(events_path).to_pandas()
        suite = events_suite(now=now)
        outcome = run_suite(suite, events_frame(events), report_dir(cfg, as_of)).to_dict()
    else:
        allowed = allowed_event_types(cfg.source)
        skew = cfg.source.max_clock_skew_seconds
        commits = ingest_commits(events_path, as_of.iso)
        events = rows_added(events_path, commits)
        stored = sum(lake.open_table(events_path).get_add_actions(flatten=True)
                     .column("num_records").to_pylist())  # fmt: skip
        if not stored:
            raise DataQualityError(
                f"critical suite 'events' failed: {events_path} holds no event; every source "
                f"row was quarantined or duplicated (see `vista quarantine counts`)"
            )
        suite = events_suite(now=now, event_types=allowed, max_skew_seconds=skew, min_rows=0)
        try:
            checked = run_suite(suite, events_frame(events), report_dir(cfg, as_of))
        except DataQualityError as exc:
            raise DataQualityError(
                _events_problem(cfg, events, commits, now, allowed, skew, exc)
            ) from exc
        outcome = {**checked.to_dict(), "rows_checked": len(events), "rows_in_table": stored,
                   "commits_checked": [c["version"] for c in commits]}  # fmt: skip
    impressions = cfg.paths.table(IMPRESSIONS)
    if lake.table_exists(impressions):
        frame = lake.read_arrow(impressions).to_pandas()
        checked = run_suite(impressions_suite(), frame, report_dir(cfg, as_of))
        outcome["impressions"] = checked.to_dict()
    quarantine = cfg.paths.table(QUARANTINE)
    if cfg.source is None or not lake.table_exists(quarantine):
        return outcome
    rows = lake.read_arrow(quarantine, filters=as_of.partition_filter(INGEST_DATE))
    frame = quarantine_frame(rows.to_pandas())
    checked = run_suite(quarantine_suite(list(REASONS)), frame, report_dir(cfg, as_of))
    by_reason = rows.group_by("reason").aggregate([("reason", "count")]).to_pylist()
    unreadable = rows.filter(pc.field("reason") == "unreadable_file")
    return {
        **outcome,
        "quarantine": {
            **checked.to_dict(),
            "rows": rows.num_rows,
            "by_reason": {r["reason"]: r["reason_count"] for r in by_reason},
            "files_unreadable": sorted(set(unreadable.column("source_file").to_pylist())),
        },
    }
