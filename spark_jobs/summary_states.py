"""Cached summarizer states: a memory-mode refresh that reads only the new events.

A memory-mode summary is a function of one additive state per head, a (decayed) sum over
events (``models.summarizer.MemorySummarizer``). For each user with at least
``snapshots.state_min_events`` events the state is stored per snapshot (``user_summary_states``,
one table per summarizer version, fp32 bytes with a SHA-256 checksum); the next snapshot
advances it by each head's decay and folds in only the events after it, so a user with
1,000,000 events and 10 new ones costs 10 events, not a million.

Which rows may be refreshed is decided in Spark, before any array reaches Python
(``refresh_plan``): a previous state is reused only when its checksum holds and the
history still starts with exactly the events it folded, less those an incremental build
cut from its front at ``histories.max_history`` (the history says which: their fold is
subtracted, as the state is a sum). Otherwise (a corrupted row, a history rebuilt with
late events, or cut by a full build that does not know what it cut) the whole history is
folded again, and the run summary counts why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.histories import ARRAY_COLUMNS, DROPPED_COLUMNS
from spark_jobs.summarize import (
    MAX_PADDED_EVENTS,
    SUMMARY_SCHEMA,
    length_batches,
    worker_model,
)

# why a state was computed the way it was (the run summary counts each)
NEW, REFRESHED, ADVANCED = "new", "refreshed", "advanced"
REBUILT_CORRUPT, REBUILT_HISTORY = "rebuilt_corrupt", "rebuilt_history_changed"
REASONS = (NEW, REFRESHED, ADVANCED, REBUILT_CORRUPT, REBUILT_HISTORY)

STATE_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.LongType(), False),
        T.StructField("state_as_of", T.TimestampType(), False),
        T.StructField("summarizer_version", T.StringType(), False),
        T.StructField("events_folded", T.LongType(), False),
        T.StructField("events_read", T.LongType(), False),
        T.StructField("how", T.StringType(), False),
        T.StructField("state", T.BinaryType(), False),
    ]
)


def checksum() -> Column:
    """SHA-256 over what a state row claims (user, version, instant, events) and its
    bytes: a flipped byte or a row copied to another user fails it."""
    claims = F.concat_ws("|", F.col("summarizer_version"), F.col("user_id").cast("string"),
                         F.unix_micros("state_as_of").cast("string"),
                         F.col("events_folded").cast("string"))  # fmt: skip
    return F.sha2(F.concat(F.encode(claims, "UTF-8"), F.col("state")), 256)


def refresh_plan(
    histories: DataFrame, previous: DataFrame | None, version: str, broadcast: bool = True
) -> DataFrame:
    """Per user: ``how`` its state is made, and the events the UDF must fold (the new
    ones after a reusable state, else the whole history) and subtract (the ones the
    history dropped at ``histories.max_history`` since that state), with the previous
    state.

    ``histories``: user_id, history_length, the event arrays and the dropped ones
    (``spark_jobs.histories.DROPPED_COLUMNS``); ``previous``: the state rows of an
    earlier snapshot (any), or None. ``broadcast``: send the previous states' plan
    columns (about 40 bytes a user) to the histories instead of shuffling both; off
    where the states outnumber what an executor holds."""
    empty = F.array().cast("array<long>")
    # histories written before the table named its cuts: unknown (null), as a full build's
    unknown = F.lit(None).cast("array<long>")
    dropped_columns = [F.col(c) if c in histories.columns else unknown.alias(c)
                       for c in DROPPED_COLUMNS]  # fmt: skip
    rows = histories.select("user_id", "history_length", *ARRAY_COLUMNS, *dropped_columns)
    if previous is None:
        return rows.select(
            "user_id", "history_length", F.lit(NEW).alias("how"), *ARRAY_COLUMNS,
            *(empty.alias(c) for c in DROPPED_COLUMNS),
            F.lit(None).cast("binary").alias("prev_state"),
            F.lit(None).cast("long").alias("prev_as_of_us"),
        )  # fmt: skip
    # what the plan needs of each previous state, without its bytes: small enough to
    # travel to the histories (a broadcast), so no history is shuffled; the bytes join
    # the sliced rows (new events only) afterwards
    prev = previous.select(
        "user_id",
        *(F.col(c).alias(f"prev_{c}") for c in ("state_as_of", "events_folded")),
        F.lit(True).alias("has_state"),
        F.coalesce((F.col("summarizer_version") == F.lit(version))
                   & (F.col("state_checksum") == checksum()), F.lit(False)).alias("state_intact"),
    )  # fmt: skip
    joined = rows.join(F.broadcast(prev) if broadcast else prev, "user_id", "left")
    n, instant = F.col("history_length"), F.unix_micros("prev_state_as_of")
    ts, dropped_ts = F.col("event_timestamps"), F.col("dropped_event_timestamps")
    # a full build does not know what it dropped (null): a capped history then fails the
    # boundary below and is folded anew
    n_dropped = F.when(dropped_ts.isNull(), F.lit(0)).otherwise(F.size(dropped_ts)).cast("long")
    kept = F.col("prev_events_folded") - n_dropped  # folded events still in the history
    # 1-based: the last kept folded event, and the first one after it (try_: null, not an
    # error, out of range; a null anywhere means "not shown to be the same history")
    at = lambda i: F.try_element_at(ts, i.cast("int"))  # noqa: E731
    starts_with_folded = F.coalesce(
        (kept >= 0)
        & (kept <= n)
        & ((kept == 0) | (at(F.greatest(kept, F.lit(1))) < instant))
        & ((kept == n) | (at(kept + 1) >= instant))
        & ((n_dropped == 0) | (F.array_max(dropped_ts) < instant)),
        F.lit(False),
    )
    how = (
        F.when(F.col("has_state").isNull(), F.lit(NEW))
        .when(~F.col("state_intact"), F.lit(REBUILT_CORRUPT))
        .when(~starts_with_folded, F.lit(REBUILT_HISTORY))
        .when((kept == n) & (n_dropped == 0), F.lit(ADVANCED))
        .otherwise(F.lit(REFRESHED))
    )  # fmt: skip
    planned = joined.withColumn("how", how).withColumn("kept", kept)
    reuse = F.col("how").isin(REFRESHED, ADVANCED)
    kept = F.col("kept")

    def events(column: str) -> Column:
        new = F.slice(column, (kept + 1).cast("int"), (n - kept).cast("int"))
        return F.when(~reuse, F.col(column)).when(kept == n, empty).otherwise(new).alias(column)

    def dropped(column: str) -> Column:
        return F.when(reuse, F.coalesce(F.col(column), empty)).otherwise(empty).alias(column)

    sliced = planned.select(
        "user_id", "history_length", "how", *(events(c) for c in ARRAY_COLUMNS),
        *(dropped(c) for c in DROPPED_COLUMNS),
        F.when(reuse, instant).alias("prev_as_of_us"),
    )  # fmt: skip
    states = previous.select("user_id", F.col("state").alias("prev_state"))
    with_state = sliced.join(states, "user_id", "left")
    return with_state.withColumn(
        "prev_state", F.when(F.col("how").isin(REFRESHED, ADVANCED), F.col("prev_state"))
    )


def state_bytes_to_tensor(blobs: list[bytes], shape: tuple[int, ...]):
    import torch

    flat = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), *shape)
    return torch.from_numpy(flat.copy())


def refreshed_states(frame: pd.DataFrame, model, as_of: dt.datetime, max_padded: int) -> np.ndarray:
    """One pandas batch of ``refresh_plan`` rows -> (rows, H, rows_per_head, hd) float32
    states at ``as_of``: a reused state advanced to ``as_of`` plus its new events, or
    the whole history's."""
    import torch

    from models.summarizer import MICROS_PER_DAY, encode_histories

    as_of_us = int(as_of.timestamp() * 1_000_000)
    cfg = model.cfg
    shape = (cfg.n_heads, model.state_rows, model.head_dim)
    device = next(model.parameters()).device
    out = np.zeros((len(frame), *shape), dtype=np.float32)
    columns = [frame[c].to_numpy() for c in ARRAY_COLUMNS]
    lengths = np.array([len(x) for x in columns[0]])
    with torch.inference_mode():
        for idx in length_batches(lengths, max_padded):
            history = encode_histories(
                *([np.asarray(col[i]) for i in idx] for col in columns), as_of_us, cfg
            )
            out[idx] = model.state(history.to(device)).float().cpu().numpy()
        # events cut from the front of a capped history since its state: out of the sum
        dropped = [frame[c].to_numpy() for c in DROPPED_COLUMNS]
        n_dropped = np.array([len(x) for x in dropped[0]])
        for idx in length_batches(n_dropped, max_padded):
            idx = idx[n_dropped[idx] > 0]
            if len(idx):
                gone = encode_histories(
                    *([np.asarray(col[i]) for i in idx] for col in dropped), as_of_us, cfg
                )
                out[idx] -= model.state(gone.to(device)).float().cpu().numpy()
        reused = np.flatnonzero(frame["prev_state"].notna().to_numpy())
        if len(reused):
            prev = state_bytes_to_tensor(list(frame["prev_state"].to_numpy()[reused]), shape)
            days = (as_of_us - frame["prev_as_of_us"].to_numpy()[reused]) / MICROS_PER_DAY
            advanced = model.advance(prev.to(device), torch.as_tensor(days, dtype=torch.float32))
            out[reused] += advanced.float().cpu().numpy()
    return out


def refresh_states(
    plan: DataFrame, checkpoint: Path, version: str, as_of: dt.datetime,
    max_padded: int = MAX_PADDED_EVENTS,
) -> DataFrame:  # fmt: skip
    """Spark transform: ``refresh_plan`` rows -> state rows at ``as_of`` with checksums."""
    path = str(checkpoint)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = worker_model(path)
        for frame in batches:
            if not len(frame):
                continue
            states = refreshed_states(frame, model, as_of, max_padded)
            yield pd.DataFrame({
                "user_id": frame["user_id"].astype("int64"),
                "state_as_of": pd.Timestamp(as_of),
                "summarizer_version": version,
                "events_folded": frame["history_length"].astype("int64"),
                "events_read": (frame["item_ids"].map(len)
                                + frame["dropped_item_ids"].map(len)).astype("int64"),
                "how": frame["how"],
                "state": [row.astype("<f4").tobytes() for row in states],
            })  # fmt: skip

    return (
        plan.sortWithinPartitions(F.size("item_ids"))
        .mapInPandas(run, STATE_SCHEMA)
        .withColumn("state_checksum", checksum())
        .withColumn("created_timestamp", F.current_timestamp())
    )


def summaries_from_states(
    states: DataFrame, checkpoint: Path, as_of: dt.datetime, codec: str
) -> DataFrame:
    """Spark transform: state rows -> user_summaries rows (the summary tokens of each
    state; no history is read)."""
    path = str(checkpoint)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        from vista.core.summary_codec import encode

        model = worker_model(path)
        shape = (model.cfg.n_heads, model.state_rows, model.head_dim)
        for frame in batches:
            if not len(frame):
                continue
            state = state_bytes_to_tensor(list(frame["state"]), shape)
            n_events = torch.as_tensor(frame["events_folded"].to_numpy())
            with torch.inference_mode():
                tokens = model.tokens(state, n_events).float().numpy()
            codes, scales = encode(tokens, codec)
            yield pd.DataFrame({
                "user_id": frame["user_id"].astype("int64"),
                "event_timestamp": pd.Timestamp(as_of),
                "summarizer_version": frame["summarizer_version"],
                "history_length": frame["events_folded"].astype("int64"),
                "is_empty_history": frame["events_folded"].to_numpy() == 0,
                "summary_codes": codes,
                "summary_scales": list(scales),
                "summary_codec": codec,
            })  # fmt: skip

    columns = ("user_id", "summarizer_version", "events_folded", "state")
    return (
        states.select(*columns)
        .mapInPandas(run, SUMMARY_SCHEMA)
        .withColumn("created_timestamp", F.current_timestamp())
    )


def state_checks(states: DataFrame) -> DataFrame:
    """Per state row, the scalars the ``user_summary_states`` suite checks (computed
    in Spark: the states of a whole snapshot need not fit in pandas)."""
    return states.select(
        "user_id",
        "how",
        "events_folded",
        F.length("state").alias("state_bytes"),
        (F.col("state_checksum") == checksum()).alias("checksum_ok"),
        (F.col("events_read") <= F.col("events_folded")).alias("read_within_folded"),
    )
