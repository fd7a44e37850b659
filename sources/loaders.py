"""Bring your own events: CSV/TSV, Parquet, JSON-lines files or a Delta table, plus a
column mapping (parsing, validation and quarantine: ``sources.ingest``).

The good rows become the platform's two tables, with no code change:
- ``events``: the rows that histories are built from (user_id, item_id, category,
  event_type, event_timestamp);
- ``impressions``: labelled rows (e.g. rating >= 4) that the ranker trains and is
  evaluated on, joined point-in-time with the summaries of a snapshot taken before
  them. There is no oracle for real data.

Two ways to split them (``source.split``):

``global`` (the default): one cutoff date for everyone. ``events`` holds every row;
the rows at or after ``source.cutoff_date`` are also the impressions, so a snapshot
taken at the cutoff sees only the past and each user is evaluated on their later
events in time. Right when users are active at the same time; when they are active in
different years most of them have no history before the cutoff, or no impressions
after it.

``per_user``: the last ``source.per_user_share`` of each user's events are that
user's impressions, whenever the user was active. Design: the snapshot machinery
(histories strictly before ``as_of``, Feast's point-in-time join, the impression days
after ``as_of``) is kept as it is, and the data is laid onto it:
- ``events`` holds each user's events before their split point only, so no history,
  at any snapshot date, contains a held-out event or anything after one;
- the held-out events are re-stamped onto ``source.per_user_days`` days from the
  snapshot on, in each user's order, spread so that a user's earlier held-out events
  fall on the first (training) days and the last ones on the last day(s), which the
  pipeline's ``ranker.eval_days`` evaluates; every user's evaluation impressions thus
  come after their training impressions in the user's own order. The original time
  stays in ``source_timestamp``;
- the snapshot (the default ``as_of``) is the day after the last event kept as
  history, over all users, or ``source.cutoff_date`` when set (which must be later).
The split point is rounded to whole timestamps: every event sharing the boundary's
timestamp (a basket, a session logged at once) is held out with it, or, when that
would leave no history, kept with the history; the held-out part is never empty and
the history keeps at least one timestamp. A user with fewer than
``source.min_user_events`` events, or with all events at one timestamp, is not split:
``source.short_users`` keeps all of their events as history (no labels from them) or
makes them all impressions with an empty history (cold start), and the ingest counts
them either way. Every good row lands in exactly one table: events + impressions =
good rows.

Why not a per-user snapshot date (each user's own cutoff)? Histories, summaries and
Feast's point-in-time join are keyed on one ``as_of`` per run; one snapshot per user
would mean a summaries partition and a Feast timestamp per user, and a serving path
that never exists in production. Re-stamping keeps one snapshot, one join and the
same tables and checks as the global split.

Trade-offs of ``per_user`` (documented in conf/movielens-per-user.yaml too):
- event ages relative to the snapshot are distorted: a user active years before the
  snapshot has a history that looks years old (the summarizer's age buckets saturate),
  and the gap between a held-out event and its history is not the real one;
- time across users is not respected: one user's history may be later in real time
  than another user's impressions (item popularity "from the future" can reach the
  models through other users' histories). Within each user there is no leakage;
- the impression days are synthetic: day-of-week or seasonality effects are lost, and
  how many impressions a user has per day says nothing about real activity;
- it is an offline evaluation split of a fixed data set: adding files later changes
  every user's split point, so a re-split needs a fresh ingest (``--force``).

An optional items file supplies the category (e.g. MovieLens' first genre); string
categories are hashed to stable integers.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sources.ingest import (
    RawRows,
    SourceError,
    dedupe,
    parse_id,
    read_rows,
    renamed,
    source_files,
    source_format,
    stable_category,
    validate_rows,
)
from sources.synthetic import EVENTS_SCHEMA, IMPRESSIONS_SCHEMA, ORACLE_COLUMNS
from vista.core.config import SourceConfig
from vista.core.names import UNKNOWN_CATEGORY


def read_items(source: SourceConfig) -> pd.DataFrame | None:
    """item_id -> category from the optional items file (ids read exactly, as in the
    events; rows without a valid id are left out)."""
    if source.items_path is None:
        return None
    fmt = source.format if source.format != "auto" else "csv"
    if not source.items_path.exists():
        raise SourceError(f"items file {source.items_path} does not exist (source.items_path;"
                          " leave it out when the events carry their category)")  # fmt: skip
    rows = read_rows(source.items_path, fmt, source.separator)
    items = renamed(rows.frame, source.item_columns, str(source.items_path))
    if source.category_first_token:
        items["category"] = items["category"].astype(str).str.split().str[0]
    ids = parse_id(items["item_id"], source.integral_decimal_ids)
    items = items[ids.reason.isna().to_numpy()].assign(
        item_id=ids.values[ids.reason.isna()].astype("int64")
    )
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


@dataclass(frozen=True)
class PreparedFile:
    """One file read and validated: its good rows (with categories and ``source_file``),
    its quarantine records, and the raw rows (for the raw text of later rejects)."""

    rows: RawRows
    good: pd.DataFrame
    bad: pd.DataFrame


def prepare_file(
    path: Path, source: SourceConfig, items: pd.DataFrame | None, now: dt.datetime
) -> PreparedFile:
    """Read and validate one file (duplicates are ``dedupe``'s, over all files of a run)."""
    rows = read_rows(path, source_format(source, path), source.separator)
    good, bad = validate_rows(rows, source, now)
    good = with_categories(good, items).assign(source_file=str(path))
    return PreparedFile(rows, good, bad)


def load_events(source: SourceConfig, now: dt.datetime | None = None) -> pd.DataFrame:
    """The good rows of every file the source names, as the ``events`` columns plus
    the label column, unique per event (the first seen kept; bad rows and conflicting
    duplicates are left out: ``vista.pipeline.ingest_source`` quarantines them)."""
    now = now or dt.datetime.now(dt.UTC)
    items = read_items(source)
    frames = [prepare_file(path, source, items, now).good for path in source_files(source)]
    frame, _, _ = dedupe(pd.concat(frames, ignore_index=True))
    frame = frame.drop(columns=["row_number", "source_file"])
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


def _require_label(frame: pd.DataFrame, source: SourceConfig) -> None:
    if source.label_column not in frame:
        raise SourceError(f"label column {source.label_column!r} is not mapped in source.columns")


def labelled(rows: pd.DataFrame, source: SourceConfig) -> pd.DataFrame:
    """Rows as the IMPRESSIONS_SCHEMA columns, labelled ``label_column >= label_threshold``."""
    rows = rows.reset_index(drop=True)
    return pd.DataFrame(
        {
            "impression_id": impression_ids(rows),
            "user_id": rows["user_id"],
            "item_id": rows["item_id"],
            "category": rows["category"],
            "event_timestamp": rows["event_timestamp"],
            "label": (rows[source.label_column] >= source.label_threshold).astype("int8"),
            # real data has no oracle
            **dict.fromkeys(ORACLE_COLUMNS, np.nan),
            "impression_date": rows["event_timestamp"].dt.strftime("%Y-%m-%d"),
        }
    )


# ---------------------------------------------------------------- the per-user split
# per_user impressions keep the event's real time beside the re-stamped one
PER_USER_IMPRESSIONS_SCHEMA = IMPRESSIONS_SCHEMA.append(
    pa.field("source_timestamp", pa.timestamp("us", tz="UTC"))
)
# a total order of each user's events that does not depend on file order
SPLIT_ORDER = ["user_id", "event_timestamp", "item_id", "event_type"]
_DAY_US = 86_400_000_000


def _micros(stamps: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds (comparable, groupable, no Python objects)."""
    return (
        stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)
    )


def split_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(SPLIT_ORDER, kind="stable").reset_index(drop=True)


def held_out_rows(frame: pd.DataFrame, share: float, min_events: int) -> pd.DataFrame:
    """Per row of ``frame`` (in ``split_order``): ``held_out`` (the row is among its
    user's last ``share`` of events, the split rounded to whole timestamps) and
    ``not_split`` (None, ``too_few_events`` or ``single_timestamp``: the user is not
    split, and ``held_out`` is False for all their rows)."""
    users = frame["user_id"].to_numpy()
    ts = _micros(frame["event_timestamp"])
    by_user = pd.Series(ts).groupby(users, sort=False)
    n = by_user.transform("size").to_numpy()
    position = by_user.cumcount().to_numpy()
    # the first held-out position: at least one event held out, at least one kept
    keep = n - np.clip(np.floor(share * n).astype(np.int64), 1, None)
    at_boundary = position == keep
    boundary = pd.Series(ts[at_boundary], index=users[at_boundary])
    boundary_ts = pd.Series(users).map(boundary).to_numpy()
    first_ts = by_user.transform("min").to_numpy()
    # the events sharing the boundary's timestamp go with the held-out part, unless that
    # would leave no history: then with the history
    held = np.where(boundary_ts > first_ts, ts >= boundary_ts, ts > boundary_ts)
    held_any = pd.Series(held).groupby(users, sort=False).transform("any").to_numpy()
    reason = np.full(len(frame), None, dtype=object)
    reason[~held_any] = "single_timestamp"
    reason[n < min_events] = "too_few_events"
    held[pd.notna(reason)] = False
    return pd.DataFrame({"held_out": held, "not_split": reason})


def impression_day(held: pd.DataFrame, days: int) -> np.ndarray:
    """Day (0 .. days-1 after the snapshot) of each held-out row (in ``split_order``):
    spread over the days in the user's order, the user's last event on the last day;
    events sharing a timestamp share the day (the later one), so no training day holds
    an event that is not earlier than every evaluation-day event of the user."""
    grouped = held.groupby("user_id", sort=False)
    k = grouped["user_id"].transform("size").to_numpy()
    from_last = k - 1 - grouped.cumcount().to_numpy()
    day = days - 1 - (from_last * days) // k
    same_time = [held["user_id"].to_numpy(), _micros(held["event_timestamp"])]
    return pd.Series(day).groupby(same_time).transform("max").to_numpy()


def restamped(held: pd.DataFrame, day: np.ndarray, as_of: pd.Timestamp) -> pd.Series:
    """Impression times: ``day`` days after ``as_of``, the user's events of one day
    spread evenly over it in their order (strictly increasing per user, so ids stay
    unique)."""
    keys = [held["user_id"].to_numpy(), day]
    slot = pd.Series(day).groupby(keys).cumcount().to_numpy() + 1
    count = pd.Series(day).groupby(keys).transform("size").to_numpy()
    offset_us = day * _DAY_US + slot * _DAY_US // (count + 1)
    return pd.Series(as_of + pd.to_timedelta(offset_us, unit="us"), index=held.index)


def per_user_as_of(history: pd.DataFrame, source: SourceConfig) -> dt.date:
    """The snapshot date: ``source.cutoff_date``, which must be after every event kept
    as history, or else the day after the last of them."""
    if history.empty:
        raise SourceError("split per_user left no event as history (every user is too short "
                          "and source.short_users is cold_start)")  # fmt: skip
    last = history["event_timestamp"].max()
    needed = (last.tz_convert("UTC").normalize() + pd.Timedelta(days=1)).date()
    if source.cutoff_date is not None and source.cutoff_date < needed:
        raise SourceError(
            f"source.cutoff_date={source.cutoff_date} is not after the last event kept as "
            f"history ({last.isoformat()}): this data needs source.cutoff_date >= {needed} "
            "(or null: the day after that event)"
        )
    return source.cutoff_date or needed


@dataclass(frozen=True)
class SourceSplit:
    """The rows of the two tables, the snapshot date the split was made for, and counts
    of what went where."""

    events: pd.DataFrame
    impressions: pd.DataFrame | None  # labelled; None when no label column is mapped
    as_of: dt.date | None  # per_user: the snapshot the impressions were stamped after
    counts: dict[str, Any]


def split_per_user(frame: pd.DataFrame, source: SourceConfig) -> SourceSplit:
    """Good rows -> (history events, re-stamped labelled impressions): see the module
    docstring."""
    _require_label(frame, source)
    rows = split_order(frame)
    marks = held_out_rows(rows, source.per_user_share, source.min_user_events)
    short = marks["not_split"].notna().to_numpy()
    to_impressions = marks["held_out"].to_numpy() | (short & (source.short_users == "cold_start"))
    history, held = rows[~to_impressions], rows[to_impressions].reset_index(drop=True)
    as_of = per_user_as_of(history, source)
    day = impression_day(held, source.per_user_days)
    stamps = restamped(held, day, pd.Timestamp(as_of, tz="UTC"))
    impressions = labelled(held.assign(event_timestamp=stamps), source)
    impressions["source_timestamp"] = held["event_timestamp"]  # both in split order
    users = rows.drop_duplicates("user_id")
    not_split = marks.loc[users.index, "not_split"].value_counts().to_dict()
    counts = {
        "split": "per_user",
        "as_of": as_of.isoformat(),
        "good_rows": len(rows),
        "history_events": len(history),
        "impressions": len(impressions),
        "users": len(users),
        "users_split": len(users) - sum(not_split.values()),
        "users_not_split": {str(k): int(v) for k, v in sorted(not_split.items())},
        "users_not_split_went_to": source.short_users,
        "events_of_users_not_split": int(short.sum()),
        "impression_days": sorted(impressions["impression_date"].unique().tolist()),
    }
    return SourceSplit(history, impressions, as_of, counts)


def split_global(frame: pd.DataFrame, source: SourceConfig) -> SourceSplit:
    """Every row is an event; rows at or after the cutoff are also the impressions."""
    impressions = None
    if source.label_column in frame:
        cutoff = pd.Timestamp(source.cutoff_date, tz="UTC")
        impressions = labelled(frame[frame["event_timestamp"] >= cutoff], source)
    counts = {"split": "global", "good_rows": len(frame), "history_events": len(frame),
              "impressions": 0 if impressions is None else len(impressions)}  # fmt: skip
    return SourceSplit(frame, impressions, source.cutoff_date, counts)


def split_source(frame: pd.DataFrame, source: SourceConfig) -> SourceSplit:
    return (split_per_user if source.split == "per_user" else split_global)(frame, source)


def split_tables(frame: pd.DataFrame, source: SourceConfig) -> tuple[pa.Table, pa.Table]:
    """(events, impressions) as Arrow tables, split as ``source.split`` says."""
    _require_label(frame, source)
    split = split_source(frame, source)
    return events_table(split.events), impressions_arrow(split.impressions, source)


def impressions_arrow(impressions: pd.DataFrame, source: SourceConfig) -> pa.Table:
    schema = PER_USER_IMPRESSIONS_SCHEMA if source.split == "per_user" else IMPRESSIONS_SCHEMA
    return pa.Table.from_pandas(impressions[schema.names], schema=schema, preserve_index=False)


def source_as_of(source: SourceConfig) -> dt.date:
    """The default snapshot date of a source: ``cutoff_date``, or for a per-user split
    without one, the day after the last event it keeps as history (reads the source)."""
    if source.cutoff_date is not None:
        return source.cutoff_date
    signature = tuple((str(p), *_stat(p)) for p in source_files(source))
    return _computed_as_of(source.model_dump_json(), signature)


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _computed_as_of(source_json: str, signature: tuple) -> dt.date:
    # keyed on the files' names, sizes and mtimes: the CLI and each DAG task that need
    # the default date read the source once, and again only when a file changes
    source = SourceConfig.model_validate_json(source_json)
    split = split_per_user(load_events(source), source)
    return split.as_of
