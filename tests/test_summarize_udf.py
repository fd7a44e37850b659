import datetime as dt

import numpy as np
import pytest
import torch

from models.summarizer import VistaSummarizer, encode_histories, save_checkpoint
from spark_jobs.summarize import length_batches, summarize_histories
from vista.core.config import SummarizerConfig
from vista.core.summary_codec import decode

AS_OF = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def test_length_batches_bound_padding_and_cover_every_row():
    lengths = np.array([5, 1000, 3, 7, 900, 0, 6])
    batches = length_batches(lengths, max_padded=1024)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or max(lengths[b].max(), 1) * len(b) <= 1024
    # similar lengths share a batch: the two long histories are not padded with short ones
    assert any(set(b.tolist()) == {1, 4} or set(b.tolist()) <= {1, 4} for b in batches)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = SummarizerConfig(n_seeds=3, dim=8, n_layers=2, n_heads=2, vocab_size=50,
                           category_vocab_size=7, chunk_size=16)  # fmt: skip
    model = VistaSummarizer(cfg).eval()
    return model, save_checkpoint(model, tmp_path / "m.pt")


# error bounds of each stored form against the float32 model output
CODEC_TOLERANCE = {"float32": 1e-5, "bf16": 2**-8, "int8": 1 / 127}


@pytest.mark.parametrize("codec", ["float32", "int8"])
def test_spark_udf_equals_direct_model_call(spark, checkpoint, codec):
    model, path = checkpoint
    rng = np.random.default_rng(0)
    as_of_us = int(AS_OF.timestamp() * 1e6)
    rows = []
    for user, n in enumerate([0, 3, 40, 17]):
        ts = sorted(int(x) for x in rng.integers(as_of_us - 10**12, as_of_us, n))
        rows.append((user, n, rng.integers(0, 90, n).tolist(), rng.integers(0, 9, n).tolist(), ts))
    schema = ("user_id long, history_length long, item_ids array<long>, "
              "categories array<long>, event_timestamps array<long>")  # fmt: skip
    histories = spark.createDataFrame(rows, schema).repartition(2)
    out = summarize_histories(histories, path, model.version(), AS_OF, codec, max_padded=64)
    got = {r.user_id: r for r in out.collect()}
    k, d = model.cfg.n_seeds, model.cfg.dim
    assert set(got) == {0, 1, 2, 3}
    for user, n, items, cats, ts in rows:
        with torch.no_grad():
            want = model(encode_histories([np.array(items, dtype=np.int64)],
                                          [np.array(cats, dtype=np.int64)],
                                          [np.array(ts, dtype=np.int64)], as_of_us, model.cfg))  # fmt: skip
        row = got[user]
        assert row.summary_codec == codec
        summary = decode([row.summary_codes], [row.summary_scales], codec, k, d)[0]
        want = want[0].numpy()
        # per token: error relative to the token's largest value
        bound = CODEC_TOLERANCE[codec] * np.abs(want).max(axis=1, keepdims=True)
        assert (np.abs(summary.reshape(k, d) - want) <= bound + 1e-6).all()
        assert row.summarizer_version == model.version()
        assert row.history_length == n
        assert row.is_empty_history == (n == 0)
        assert np.isfinite(summary).all()


def test_arrow_batches_are_bounded_in_bytes_for_long_histories(spark):
    """Long histories must not pile up 64 to a batch: the byte cap splits them."""
    import pandas as pd
    from pyspark.sql import functions as F

    key = "spark.sql.execution.arrow.maxBytesPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, str(2**20))
    try:
        rows = (
            spark.range(40)
            .select(
                "id",
                F.array_repeat(F.col("id"), 50_000).alias("items"),  # ~400 KB a row
            )
            .coalesce(1)
        )

        def sizes(frames):
            for frame in frames:
                yield pd.DataFrame({"rows": [len(frame)]})

        counts = [r.rows for r in rows.mapInPandas(sizes, "rows long").collect()]
    finally:
        spark.conf.set(key, before)
    assert sum(counts) == 40
    assert max(counts) <= 3
