"""Raw-history features for the baseline rankers, from a histories snapshot.

- ``user_history_tail``: each user's last ``length`` events (oldest first) and their
  history length. DIN reads the last 100 of it, full attention all of it.
- ``user_category_histories``: per (user, category) the user's items of that category,
  most recent first, top ``length``: SIM's hard search, precomputed so that at serving
  time it is one lookup by the candidate's category.

Both are stamped with the snapshot's ``as_of`` (the Feast event timestamp), like the
summaries, so a training row sees raw features and summaries of the same snapshot.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vista.core.names import CATEGORY_HISTORIES, HISTORY_TAIL


def _last(column: str, length: int) -> F.Column:
    return F.when(F.size(column) > length, F.slice(column, -length, length)).otherwise(
        F.col(column)
    )


def history_tails(histories: DataFrame, as_of: dt.datetime, length: int) -> DataFrame:
    """user_id, event_timestamp, raw_history_length, tail_item_ids, tail_categories."""
    return histories.select(
        F.col("user_id").cast("long"),
        F.lit(as_of).cast("timestamp").alias("event_timestamp"),
        F.col("history_length").cast("long").alias("raw_history_length"),
        _last("item_ids", length).alias("tail_item_ids"),
        _last("categories", length).alias("tail_categories"),
        F.current_timestamp().alias("created_timestamp"),
    )


def category_histories(histories: DataFrame, as_of: dt.datetime, length: int) -> DataFrame:
    """user_id, category, event_timestamp, category_item_ids (most recent first, <= length)."""
    events = histories.select(
        "user_id", F.posexplode(F.arrays_zip("item_ids", "categories")).alias("pos", "event")
    )
    grouped = events.groupBy("user_id", F.col("event.categories").alias("category")).agg(
        F.sort_array(
            F.collect_list(F.struct(F.col("pos"), F.col("event.item_ids").alias("item"))),
            asc=False,
        ).alias("events")
    )
    return grouped.select(
        F.col("user_id").cast("long"),
        F.col("category").cast("long"),
        F.lit(as_of).cast("timestamp").alias("event_timestamp"),
        F.slice("events.item", 1, length).cast("array<long>").alias("category_item_ids"),
        F.current_timestamp().alias("created_timestamp"),
    )


def raw_feature_checks(tails: DataFrame, categories: DataFrame, tail_length: int,
                       per_category: int) -> DataFrame:  # fmt: skip
    """One small row per stored row of both tables, for the raw-features suite."""
    tail_rows = tails.select(
        F.lit(HISTORY_TAIL).alias("table"),
        F.col("user_id").cast("string").alias("row_key"),
        F.size("tail_item_ids").alias("list_length"),
        (
            (F.size("tail_item_ids") <= tail_length)
            & (F.size("tail_item_ids") == F.size("tail_categories"))
            & (F.size("tail_item_ids") == F.least("raw_history_length", F.lit(tail_length)))
        ).alias("within_limit"),
    )
    category_rows = categories.select(
        F.lit(CATEGORY_HISTORIES).alias("table"),
        F.concat_ws(":", "user_id", "category").alias("row_key"),
        F.size("category_item_ids").alias("list_length"),
        (F.size("category_item_ids") <= per_category).alias("within_limit"),
    )
    return tail_rows.unionByName(category_rows)
