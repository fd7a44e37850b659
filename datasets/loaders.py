"""Bring your own events: CSV/TSV, Parquet, JSON-lines files or a Delta table, plus a
column mapping (parsing, validation and quarantine: ``datasets.ingest``).

The good rows become the platform's two tables, with no code change:
- ``events``: every row (user_id, item_id, category, event_type, event_timestamp);
- ``impressions``: the rows at or after the configured cutoff, labelled by a rule
  (e.g. rating >= 4), so a ranker trained on snapshots taken at the cutoff is
  evaluated on each user's later events in time. There is no oracle for real data.

An optional items file supplies the category (e.g. MovieLens' first genre); string
categories are hashed to stable integers.
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from datasets.ingest import SourceError
from datasets.synthetic import EVENTS_SCHEMA, IMPRESSIONS_SCHEMA, ORACLE_COLUMNS
from vista.config import SourceConfig

UNKNOWN_CATEGORY = -1


def stable_category(value) -> int:
    """Integers (and integer text) stay; other strings hash (crc32) to the same integer
    on every machine."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return UNKNOWN_CATEGORY
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, str) and not value.strip():
        return UNKNOWN_CATEGORY
    return zlib.crc32(str(value).encode()) & 0x7FFFFFFF


def read_items(source: SourceConfig) -> pd.DataFrame | None:
    """item_id -> category from the optional items file."""
    if source.items_path is None:
        return None
    from datasets.ingest import read_rows, renamed

    fmt = source.format if source.format != "auto" else "csv"
    rows = read_rows(source.items_path, fmt, source.separator)
    items = renamed(rows.frame, source.item_columns, str(source.items_path))
    if source.category_first_token:
        items["category"] = items["category"].astype(str).str.split().str[0]
    items["item_id"] = pd.to_numeric(items["item_id"], errors="coerce")
    items = items.dropna(subset=["item_id"]).astype({"item_id": "int64"})
    return items[["item_id", "category"]].drop_duplicates("item_id")


def with_categories(good: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """The ``category`` column: from the items file, else the mapped column, else -1."""
    if items is not None:
        good = good.drop(columns=["category"], errors="ignore").merge(
            items, on="item_id", how="left"
        )
        good["category"] = good["category"].map(stable_category)
    if "category" not in good:
        good["category"] = UNKNOWN_CATEGORY
    good["category"] = good["category"].astype("int64")
    good["event_date"] = good["event_timestamp"].dt.strftime("%Y-%m-%d")
    return good


def prepare_file(
    path: Path, source: SourceConfig, items: pd.DataFrame | None, now: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(good rows with categories, quarantined rows, duplicates dropped) of one file."""
    from datasets.ingest import dedupe, read_rows, source_format, validate_rows

    rows = read_rows(path, source_format(source, path), source.separator)
    good, bad = validate_rows(rows, source, now)
    good, duplicates = dedupe(good)
    return with_categories(good, items), bad, duplicates


def load_events(source: SourceConfig, now: dt.datetime | None = None) -> pd.DataFrame:
    """The good rows of every file the source names, as the ``events`` columns plus
    the label column (bad rows are left out; ``vista.pipeline.ingest_source`` quarantines
    them)."""
    from datasets.ingest import DEDUPE_KEY, source_files

    now = now or dt.datetime.now(dt.UTC)
    items = read_items(source)
    frames = [prepare_file(path, source, items, now)[0] for path in source_files(source)]
    frame = pd.concat(frames, ignore_index=True).drop_duplicates(DEDUPE_KEY)
    frame = frame.drop(columns=["row_number"])
    return frame.sort_values(["user_id", "event_timestamp"], kind="stable").reset_index(drop=True)


def impression_ids(frame: pd.DataFrame) -> np.ndarray:
    """Stable ids (the same rows get the same ids on every run and machine)."""
    hashed = pd.util.hash_pandas_object(
        frame[["user_id", "item_id", "event_timestamp"]], index=False
    ).to_numpy()
    return (hashed & np.uint64(0x7FFFFFFFFFFFFFFF)).astype(np.int64)


def events_table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame[EVENTS_SCHEMA.names], schema=EVENTS_SCHEMA,
                                preserve_index=False)  # fmt: skip


def impressions_table(frame: pd.DataFrame, source: SourceConfig) -> pa.Table:
    """Rows at or after the cutoff, labelled by ``label_column >= label_threshold``."""
    if source.label_column not in frame:
        raise SourceError(f"label column {source.label_column!r} is not mapped in source.columns")
    cutoff = pd.Timestamp(source.cutoff_date, tz="UTC")
    later = frame[frame["event_timestamp"] >= cutoff].reset_index(drop=True)
    impressions = pd.DataFrame(
        {
            "impression_id": impression_ids(later),
            "user_id": later["user_id"],
            "item_id": later["item_id"],
            "category": later["category"],
            "event_timestamp": later["event_timestamp"],
            "label": (later[source.label_column] >= source.label_threshold).astype("int8"),
            # real data has no oracle
            **dict.fromkeys(ORACLE_COLUMNS, np.nan),
            "impression_date": later["event_date"],
        }
    )
    return pa.Table.from_pandas(impressions, schema=IMPRESSIONS_SCHEMA, preserve_index=False)


def split_tables(frame: pd.DataFrame, source: SourceConfig) -> tuple[pa.Table, pa.Table]:
    """(events, impressions): impressions are the labelled events at or after the cutoff."""
    return events_table(frame), impressions_table(frame, source)
