"""`vista quarantine`: look at the rows the ingest set aside, export them, replay a
corrected file, and move rows the events suite rejects out of ``events``.

Nothing here deletes a quarantine row: every delivery (file name + content key +
ingest run) keeps its rows. A replay is a delivery like any other: the corrected file
goes through the same parsing and validation (``vista.pipeline.ingest_files``), exactly
once per content, so a second replay of the same file adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from vista import pipeline
from vista.core import lake, names
from vista.core.config import VistaConfig
from vista.core.snapshot import Snapshot
from vista.pipeline.ingest import append_quarantine, new_ingest_run

FILTERS = ("reason", "source_file", "ingest_run", "ingest_date")


class QuarantineError(ValueError):
    """The quarantine command cannot do what was asked; the message says why and what to do."""


def rows(cfg: VistaConfig, **filters: str | None) -> pd.DataFrame:
    """The quarantine rows, oldest delivery first, optionally only those whose
    ``reason``, ``source_file``, ``ingest_run`` or ``ingest_date`` equals the value."""
    path = cfg.paths.table(names.QUARANTINE)
    if not lake.table_exists(path):
        raise QuarantineError(f"no quarantine table at {path}: nothing was ingested from a "
                              "source yet (vista ingest-events with a source profile)")  # fmt: skip
    frame = lake.read_arrow(path).to_pandas()
    for name, value in filters.items():
        if name not in FILTERS:
            raise QuarantineError(f"unknown filter {name!r}; use one of {FILTERS}")
        if value is not None and name in frame:
            frame = frame[frame[name] == value]
    order = [c for c in ("ingested_at", "source_file", "row_number") if c in frame]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows, files and deliveries per reason (largest first)."""
    if frame.empty:
        return pd.DataFrame(columns=["reason", "rows", "files", "deliveries"])
    delivery = frame.get("file_key", frame["source_file"]).astype(str) + "|" + frame.get(
        "ingest_run", pd.Series("", index=frame.index)).astype(str)  # fmt: skip
    grouped = frame.assign(delivery=delivery).groupby("reason")
    table = pd.DataFrame({"rows": grouped.size(), "files": grouped["source_file"].nunique(),
                          "deliveries": grouped["delivery"].nunique()})  # fmt: skip
    return table.reset_index().sort_values(["rows", "reason"], ascending=[False, True],
                                           ignore_index=True)  # fmt: skip


def export_csv(frame: pd.DataFrame, out: Path) -> Path:
    """The rows as CSV (every column; ``raw`` is the row as it was in its file, bytes
    that were not UTF-8 written \\xNN): a starting point for a corrected file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def replay(cfg: VistaConfig, corrected: Path, as_of: Snapshot) -> dict[str, Any]:
    """Ingest a corrected file (the source's columns and format) through the same
    validating path, exactly once per content; its still-bad rows go to quarantine as
    rows of this new delivery."""
    if cfg.source is None:
        raise QuarantineError("this profile has no source: replay needs source.columns to "
                              "read the corrected file (use a profile with a source section)")  # fmt: skip
    if not corrected.is_file():
        raise QuarantineError(f"corrected file {corrected} does not exist")
    result = pipeline.ingest_files(cfg, as_of, [corrected.resolve()], replay=True)
    return {"replayed": str(corrected), **result}


def evict(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """Move every ``events`` row that the events suite rejects (e.g. a negative id stored
    by an older version) into quarantine (reason rejected_by_suite), then delete them
    from ``events``: two commits, the quarantine one first and recorded against the
    events version, so a rerun after a crash between them adds no row twice."""
    from sources.ingest import allowed_event_types, quarantine_table
    from validation.suites import events_frame, events_rejected

    events_path = cfg.paths.table(names.EVENTS)
    table = lake.open_table(events_path)
    version = table.version()
    events = lake.arrow_of(table).to_pandas()
    now = dt.datetime.now(dt.UTC)
    from sources.synthetic import EVENT_TYPES

    allowed = allowed_event_types(cfg.source) if cfg.source is not None else list(EVENT_TYPES)
    skew = cfg.source.max_clock_skew_seconds if cfg.source is not None else 0
    bad = events[events_rejected(events_frame(events), now, allowed, skew).to_numpy()]
    if bad.empty:
        return {"evicted": 0, "events_version": version}
    key = f"evict:{events_path}@{version}"
    quarantine_path = cfg.paths.table(names.QUARANTINE)
    existing = lake.open_table(quarantine_path) if lake.table_exists(quarantine_path) else None
    if existing is None or existing.transaction_version(f"quarantine:{key}") is None:
        records = bad.drop(columns=["event_date"], errors="ignore").to_dict("records")
        frame = pd.DataFrame({
            "row_number": 0,
            "reason": "rejected_by_suite",
            "detail": [f"events row rejected by the events suite (events version {version})"] * len(bad),
            "raw": [json.dumps(r, default=str) for r in records],
        })  # fmt: skip
        run = new_ingest_run(as_of, now)
        rows_table = quarantine_table(frame, str(events_path), now, as_of.iso,
                                      key, run)  # fmt: skip
        append_quarantine(quarantine_path, rows_table, [key],
                          {"vista.ingest_run": run, "vista.evicted_from": str(version)})  # fmt: skip
    latest = pd.Timestamp(now) + pd.Timedelta(seconds=skew)
    types = ", ".join("'" + t.replace("'", "''") + "'" for t in allowed)
    predicate = " OR ".join([
        "user_id IS NULL", "item_id IS NULL", "event_type IS NULL", "event_timestamp IS NULL",
        "user_id < 0", "item_id < 0", "event_timestamp < '1970-01-01T00:00:00Z'",
        f"event_timestamp > '{latest.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'",
        f"event_type NOT IN ({types})",
    ])  # fmt: skip
    deleted = lake.with_commit_retries(lambda: lake.open_table(events_path).delete(predicate))
    return {"evicted": int(deleted.get("num_deleted_rows", 0)), "events_version": version,
            "quarantined_as": "rejected_by_suite"}  # fmt: skip
