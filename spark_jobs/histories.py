"""Per-user histories as of a cutoff: events -> one time-sorted row per user.

A snapshot is complete (every user with any event before ``as_of``). It is built
either from all events, or incrementally from the previous snapshot plus the events
of [previous as_of, as_of): only users with new events are recomputed, the others
are carried over unchanged, and ``updated`` says which is which so that the
summarizer can skip users whose history did not change. A history longer than
``max_history`` keeps its most recent events; an incremental build names those it cut
(``dropped_*``), so that a cached summarizer state can subtract them.

Incremental builds assume events land before the snapshot that covers their
timestamp; a late event older than the previous snapshot needs a full rebuild
(``vista build-histories --full``).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ARRAY_COLUMNS = ("item_ids", "categories", "event_timestamps")
# the events an incremental build cut from the front of a history at max_history, oldest
# first (empty when none; null after a full build, which does not know them): a cached
# summarizer state subtracts them instead of re-reading the whole history
DROPPED_COLUMNS = tuple(f"dropped_{c}" for c in ARRAY_COLUMNS)
# a window of up to this many events is broadcast to the previous histories (a few
# hours' worth at any scale this runs on); a longer one is joined by a shuffle
BROADCAST_MAX_EVENTS = 5_000_000


def _sorted_events(events: DataFrame) -> DataFrame:
    """user_id -> events: array of (ts, item, category) structs, oldest first."""
    return events.groupBy("user_id").agg(
        F.sort_array(
            F.collect_list(
                F.struct(
                    F.unix_micros("event_timestamp").alias("ts"),
                    F.col("item_id").alias("item"),
                    F.col("category").alias("category"),
                )
            )
        ).alias("events")
    )


def _keep_last(column: str, max_history: int) -> F.Column:
    return F.when(
        F.size(column) > max_history, F.slice(column, -max_history, max_history)
    ).otherwise(F.col(column))


def _dropped(column: str, max_history: int) -> F.Column:
    over = F.size(column) - max_history
    return F.when(over > 0, F.slice(column, F.lit(1), over)).otherwise(
        F.array().cast("array<long>")
    )


def _snapshot_columns(as_of: dt.datetime) -> list[F.Column]:
    return [
        F.col("user_id").cast("long"),
        F.lit(as_of).cast("timestamp").alias("as_of"),
        F.size("item_ids").cast("long").alias("history_length"),
        *(F.col(c) for c in ARRAY_COLUMNS),
        F.col("updated"),
        *(F.col(c).cast("array<long>") for c in DROPPED_COLUMNS),
    ]


def build_user_histories(events: DataFrame, as_of: dt.datetime, max_history: int) -> DataFrame:
    """The most recent ``max_history`` events of each user strictly before ``as_of``.

    Returns user_id, as_of, history_length, item_ids, categories, event_timestamps (epoch
    microseconds), oldest first, and updated (always true in a full build). Events at
    exactly ``as_of`` belong to the next snapshot, so a summary stamped ``as_of`` only
    ever saw the past.
    """
    ordered = _sorted_events(events.where(F.col("event_timestamp") < F.lit(as_of)))
    capped = ordered.select("user_id", _keep_last("events", max_history).alias("events"))
    return capped.select(
        "user_id",
        F.col("events.item").cast("array<long>").alias("item_ids"),
        F.col("events.category").cast("array<long>").alias("categories"),
        F.col("events.ts").alias("event_timestamps"),
        F.lit(True).alias("updated"),
        *(F.lit(None).cast("array<long>").alias(c) for c in DROPPED_COLUMNS),
    ).select(_snapshot_columns(as_of))


def update_user_histories(
    previous: DataFrame,
    events: DataFrame,
    previous_as_of: dt.datetime,
    as_of: dt.datetime,
    max_history: int,
) -> DataFrame:
    """Snapshot at ``as_of`` from the one at ``previous_as_of`` and the events between.

    Equal to ``build_user_histories(events, as_of, ...)`` when every event older than
    ``previous_as_of`` was already in ``previous``.
    """
    if previous_as_of >= as_of:
        raise ValueError(f"previous snapshot {previous_as_of} is not before {as_of}")
    window = events.where(
        (F.col("event_timestamp") >= F.lit(previous_as_of))
        & (F.col("event_timestamp") < F.lit(as_of))
    )
    if "event_date" in events.columns:  # the events table's partitions: read only these
        days = (previous_as_of.date().isoformat(), as_of.date().isoformat())
        window = window.where(F.col("event_date").between(*days))
    new = _sorted_events(window).select(
        "user_id",
        F.col("events.item").cast("array<long>").alias("new_items"),
        F.col("events.category").cast("array<long>").alias("new_categories"),
        F.col("events.ts").alias("new_ts"),
    )
    prev = previous.select("user_id", *ARRAY_COLUMNS)
    # a short window's users are few next to the snapshot's: they travel to the histories
    # (a broadcast) instead of every history being shuffled to meet them (a full outer
    # join cannot broadcast); users new in the window are added after
    small = window.count() <= BROADCAST_MAX_EVENTS
    carried = prev.join(F.broadcast(new) if small else new, "user_id", "left")
    newcomers = new.join(prev.select("user_id"), "user_id", "left_anti")
    no_events = F.lit(None).cast("array<long>")
    joined = carried.unionByName(
        newcomers.select(
            "user_id",
            *(no_events.alias(c) for c in ARRAY_COLUMNS),
            "new_items",
            "new_categories",
            "new_ts",
        )
    )
    updated = F.col("new_items").isNotNull()

    def merged(old: str, fresh: str) -> F.Column:
        # every new event is later than every old one: concatenation keeps time order
        both = F.concat(F.coalesce(F.col(old), F.array().cast("array<long>")), F.col(fresh))
        return F.when(updated, both).otherwise(F.col(old))

    merged_rows = joined.select(
        "user_id",
        merged("item_ids", "new_items").alias("item_ids"),
        merged("categories", "new_categories").alias("categories"),
        merged("event_timestamps", "new_ts").alias("event_timestamps"),
        updated.alias("updated"),
    )
    capped = merged_rows.select(
        "user_id", *(_keep_last(c, max_history).alias(c) for c in ARRAY_COLUMNS), "updated",
        *(_dropped(c, max_history).alias(d) for c, d in zip(ARRAY_COLUMNS, DROPPED_COLUMNS,
                                                              strict=True)),
    )  # fmt: skip
    return capped.select(_snapshot_columns(as_of))


def history_checks(histories: DataFrame, as_of: dt.datetime) -> DataFrame:
    """One small row per user for the histories suite: lengths agree, events are oldest
    first and all before ``as_of`` (computed here so that long arrays stay in Spark)."""
    ts = F.col("event_timestamps")
    as_of_micros = int(as_of.timestamp() * 1_000_000)
    return histories.select(
        "user_id",
        "history_length",
        (
            (F.size("item_ids") == F.col("history_length"))
            & (F.size("categories") == F.col("history_length"))
            & (F.size(ts) == F.col("history_length"))
        ).alias("arrays_match_length"),
        (ts == F.array_sort(ts)).alias("time_ordered"),
        F.coalesce(F.array_max(ts) < F.lit(as_of_micros), F.lit(True)).alias("before_as_of"),
    )
