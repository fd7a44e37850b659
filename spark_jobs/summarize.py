"""Histories -> summary tokens, with the frozen PyTorch summarizer inside a Spark
``mapInPandas`` UDF.

Each Python worker loads the model once (cached by path) and sets torch's thread
count to the cores Spark gives the task. Within a partition, rows arrive sorted by
history length and are cut into batches of similar length with a bounded number of
padded events, so one million-event user does not pad a batch of short ones.
Tokens are stored compactly (``vista.core.summary_codec``: int8 with a per-token scale by
default) and decoded by whoever reads them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

ENCODED_COLUMNS = ("summary_codes", "summary_scales", "summary_codec")
MAX_PADDED_EVENTS = 262_144  # per forward pass: bounds memory with chunk_size

SUMMARY_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.LongType(), False),
        T.StructField("event_timestamp", T.TimestampType(), False),
        T.StructField("summarizer_version", T.StringType(), False),
        T.StructField("history_length", T.LongType(), False),
        T.StructField("is_empty_history", T.BooleanType(), False),
        T.StructField("summary_codes", T.BinaryType(), False),
        T.StructField("summary_scales", T.ArrayType(T.FloatType(), False), False),
        T.StructField("summary_codec", T.StringType(), False),
    ]
)

_MODELS: dict[str, object] = {}


def worker_model(checkpoint: str):
    """The frozen summarizer, loaded once per Python worker."""
    if checkpoint not in _MODELS:
        import torch
        from pyspark import TaskContext

        from models.summarizer import load_checkpoint

        context = TaskContext.get()
        cores = context.cpus() if context is not None else os.cpu_count() or 1
        torch.set_num_threads(max(1, int(cores)))
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        _MODELS[checkpoint] = load_checkpoint(Path(checkpoint)).to(device)
    return _MODELS[checkpoint]


def length_batches(lengths: np.ndarray, max_padded: int) -> list[np.ndarray]:
    """Indices grouped so that (rows x longest row) stays under ``max_padded``."""
    order = np.argsort(lengths, kind="stable")
    batches, current, longest = [], [], 0
    for i in order:
        n = max(int(lengths[i]), 1)
        if current and max(longest, n) * (len(current) + 1) > max_padded:
            batches.append(np.array(current))
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(np.array(current))
    return batches


def summary_tokens(
    frame: pd.DataFrame, model, as_of: dt.datetime, max_padded: int = MAX_PADDED_EVENTS
) -> np.ndarray:
    """Histories (item_ids, categories, event_timestamps, history_length columns) ->
    (users, K, D) float32 summary tokens, in length-grouped batches."""
    import torch

    from models.summarizer import encode_histories

    as_of_us = int(as_of.timestamp() * 1_000_000)
    device = next(model.parameters()).device
    lengths = frame["history_length"].to_numpy()
    out = np.zeros((len(frame), model.cfg.n_seeds, model.cfg.dim), dtype=np.float32)
    columns = [frame[c].to_numpy() for c in ("item_ids", "categories", "event_timestamps")]
    with torch.inference_mode():
        for idx in length_batches(lengths, max_padded):
            history = encode_histories(
                *([np.asarray(col[i]) for i in idx] for col in columns), as_of_us, model.cfg
            )
            out[idx] = model(history.to(device)).float().cpu().numpy()
    return out


def summarize_pandas(
    frame: pd.DataFrame, model, as_of: dt.datetime, version: str, max_padded: int, codec: str
) -> pd.DataFrame:
    """One pandas batch of histories -> one row of encoded summary tokens per user."""
    from vista.core.summary_codec import encode

    lengths = frame["history_length"].to_numpy()
    codes, scales = encode(summary_tokens(frame, model, as_of, max_padded), codec)
    return pd.DataFrame(
        {
            "user_id": frame["user_id"].astype("int64"),
            "event_timestamp": pd.Timestamp(as_of),
            "summarizer_version": version,
            "history_length": lengths.astype("int64"),
            "is_empty_history": lengths == 0,
            "summary_codes": codes,
            "summary_scales": list(scales),
            "summary_codec": codec,
        }
    )


def summarize_histories(
    histories: DataFrame,
    checkpoint: Path,
    version: str,
    as_of: dt.datetime,
    codec: str = "int8",
    max_padded: int = MAX_PADDED_EVENTS,
) -> DataFrame:
    """Spark transform: user_histories rows -> user_summaries rows."""
    path = str(checkpoint)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = worker_model(path)
        for frame in batches:
            if len(frame):
                yield summarize_pandas(frame, model, as_of, version, max_padded, codec)

    return (
        histories.select("user_id", "history_length", "item_ids", "categories", "event_timestamps")
        .sortWithinPartitions("history_length")
        .mapInPandas(run, SUMMARY_SCHEMA)
        .withColumn("created_timestamp", F.current_timestamp())
    )


def carry_over_summaries(
    histories: DataFrame, previous: DataFrame, version: str, as_of: dt.datetime, codec: str
) -> DataFrame:
    """Previous summaries of users whose history did not change, made by ``version`` and
    stored with ``codec``, restamped ``as_of`` (the refresh time is the Feast event
    timestamp). They keep the created_timestamp of the run that computed them."""
    unchanged = histories.where(~F.col("updated")).select("user_id", "history_length")
    same_model = previous.where(
        (F.col("summarizer_version") == F.lit(version)) & (F.col("summary_codec") == F.lit(codec))
    ).select("user_id", "summarizer_version", "is_empty_history", *ENCODED_COLUMNS,
             "created_timestamp")  # fmt: skip
    # the unchanged users' ids travel to the summaries (a broadcast): the K x D bytes of
    # every summary are read once and written once, never shuffled
    return same_model.join(F.broadcast(unchanged), "user_id", "inner").select(
        "user_id",
        F.lit(as_of).cast("timestamp").alias("event_timestamp"),
        "summarizer_version",
        "history_length",
        "is_empty_history",
        *ENCODED_COLUMNS,
        "created_timestamp",
    )


def without_users(frame: DataFrame, users: DataFrame) -> DataFrame:
    """Rows of ``frame`` whose user_id is not among ``users``' (their ids broadcast: the
    ids are few bytes a user, the rows of ``frame`` may hold whole histories)."""
    return frame.join(F.broadcast(users.select("user_id")), "user_id", "left_anti")
