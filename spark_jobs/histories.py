"""Per-user histories as of a cutoff: events -> one time-sorted row per user."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

HISTORIES_TABLE = "user_histories"
PARTITION_COL = "as_of_date"


def build_user_histories(events: DataFrame, as_of: dt.datetime, max_history: int) -> DataFrame:
    """The most recent ``max_history`` events of each user strictly before ``as_of``.

    Returns user_id, as_of, history_length, item_ids, categories, event_timestamps (epoch
    microseconds), oldest first. Events at exactly ``as_of`` belong to the next
    snapshot, so a summary stamped ``as_of`` only ever saw the past.
    """
    before_cutoff = events.where(F.col("event_timestamp") < F.lit(as_of))
    ordered = before_cutoff.groupBy("user_id").agg(
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
    capped = ordered.select(
        "user_id",
        F.when(F.size("events") > max_history, F.slice("events", -max_history, max_history))
        .otherwise(F.col("events"))
        .alias("events"),
    )
    return capped.select(
        F.col("user_id").cast("long"),
        F.lit(as_of).cast("timestamp").alias("as_of"),
        F.size("events").cast("long").alias("history_length"),
        F.col("events.item").cast("array<long>").alias("item_ids"),
        F.col("events.category").cast("array<long>").alias("categories"),
        F.col("events.ts").alias("event_timestamps"),
    )
