"""Bring your own events: any CSV/TSV, Parquet or JSON-lines file plus a column mapping.

The file becomes the platform's two tables, with no code change:
- ``events``: every row (user_id, item_id, category, event_type, event_timestamp);
- ``impressions``: the rows at or after the configured cutoff, labelled by a rule
  (e.g. rating >= 4), so a ranker trained on snapshots taken at the cutoff is
  evaluated on each user's later events in time. There is no oracle for real data.

An optional items file supplies the category (e.g. MovieLens' first genre); string
categories are hashed to stable integers.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from datasets.synthetic import EVENTS_SCHEMA, IMPRESSIONS_SCHEMA
from vista.config import SourceConfig

UNKNOWN_CATEGORY = -1


class SourceError(ValueError):
    """The events file cannot be read as configured."""


def _read(path: Path, fmt: str, separator: str) -> pd.DataFrame:
    if not path.exists():
        raise SourceError(f"events file {path} does not exist")
    try:
        if fmt == "csv":
            return pd.read_csv(path, sep=separator)
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "jsonl":
            return pd.read_json(path, lines=True)
    except (ValueError, OSError) as exc:
        raise SourceError(f"cannot read {path} as {fmt}: {exc}") from exc
    raise SourceError(f"unknown format {fmt!r} for {path}")


def _renamed(frame: pd.DataFrame, mapping: dict[str, str], path: Path) -> pd.DataFrame:
    missing = [source for source in mapping.values() if source not in frame.columns]
    if missing:
        raise SourceError(f"{path} has no column(s) {missing}; it has {list(frame.columns)}")
    return frame.rename(columns={v: k for k, v in mapping.items()})[list(mapping)]


def stable_category(value) -> int:
    """Integers stay; strings hash (crc32) to the same integer on every machine."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return UNKNOWN_CATEGORY
    if isinstance(value, int | np.integer):
        return int(value)
    return zlib.crc32(str(value).encode()) & 0x7FFFFFFF


def _timestamps(values: pd.Series, unit: str) -> pd.Series:
    if unit == "iso":
        return pd.to_datetime(values, utc=True)
    return pd.to_datetime(values.astype("int64"), unit=unit, utc=True)


def load_events(source: SourceConfig) -> pd.DataFrame:
    """The events file as the ``events`` schema's columns, plus ``label_value``."""
    raw = _read(source.events_path, source.format, source.separator)
    frame = _renamed(raw, source.columns, source.events_path)
    if source.items_path is not None:
        items = _renamed(
            _read(source.items_path, source.format, source.separator),
            source.item_columns,
            source.items_path,
        )
        if source.category_first_token:
            items["category"] = items["category"].astype(str).str.split().str[0]
        frame = frame.drop(columns=["category"], errors="ignore").merge(
            items[["item_id", "category"]], on="item_id", how="left"
        )
    if "category" not in frame:
        frame["category"] = UNKNOWN_CATEGORY
    frame["category"] = frame["category"].map(stable_category).astype("int64")
    if "event_type" not in frame:
        frame["event_type"] = source.event_type
    frame["event_timestamp"] = _timestamps(frame["timestamp"], source.timestamp_unit)
    frame["event_date"] = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["item_id"] = frame["item_id"].astype("int64")
    return frame.sort_values(["user_id", "event_timestamp"], kind="stable").reset_index(drop=True)


def split_tables(frame: pd.DataFrame, source: SourceConfig) -> tuple[pa.Table, pa.Table]:
    """(events, impressions): impressions are the events at or after the cutoff."""
    events = pa.Table.from_pandas(frame[EVENTS_SCHEMA.names], schema=EVENTS_SCHEMA,
                                  preserve_index=False)  # fmt: skip
    cutoff = pd.Timestamp(source.cutoff_date, tz="UTC")
    later = frame[frame["event_timestamp"] >= cutoff].reset_index(drop=True)
    if source.label_column not in later:
        raise SourceError(f"label column {source.label_column!r} is not mapped in source.columns")
    impressions = pd.DataFrame(
        {
            "impression_id": np.arange(len(later), dtype=np.int64),
            "user_id": later["user_id"],
            "item_id": later["item_id"],
            "category": later["category"],
            "event_timestamp": later["event_timestamp"],
            "label": (later[source.label_column] >= source.label_threshold).astype("int8"),
            "oracle_prob": np.nan,  # real data has no oracle
            "impression_date": later["event_date"],
        }
    )
    return events, pa.Table.from_pandas(impressions, schema=IMPRESSIONS_SCHEMA,
                                        preserve_index=False)  # fmt: skip
