"""Cached memory-mode states (issue 14): a snapshot refreshes each long history's state
with its new events only, equal to a fold of the whole history; a corrupted row, a
history that changed under a state and a new summarizer version are folded anew."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from models.summarizer import encode_histories, load_checkpoint
from spark_jobs.summary_states import (
    ADVANCED,
    NEW,
    REBUILT_CORRUPT,
    REBUILT_HISTORY,
    REFRESHED,
    refresh_plan,
)
from validation.checkpoints import DataQualityError
from vista import pipeline, state
from vista.core import lake
from vista.core.names import PARTITION_COL
from vista.core.snapshot import Snapshot

from .conftest import tiny_config

MIN_EVENTS = 30
MAX_HISTORY = 300


def states_at(cfg, as_of: Snapshot) -> pd.DataFrame:
    rows = lake.read_arrow(state.states_path(cfg), filters=as_of.partition_filter()).to_pandas()
    return rows.set_index("user_id").sort_index()


def whole_history_states(cfg, as_of: Snapshot, users) -> np.ndarray:
    """The states of these users folded from their whole histories, in one process."""
    model = load_checkpoint(state.current_summarizer(cfg)["path"])
    hist = pipeline.read_histories(cfg, as_of).set_index("user_id").loc[list(users)]
    batch = encode_histories(list(hist.item_ids), list(hist.categories),
                             list(hist.event_timestamps), as_of.micros, model.cfg)  # fmt: skip
    with torch.inference_mode():
        return model.state(batch).numpy()


def as_states(frame: pd.DataFrame, model_cfg) -> np.ndarray:
    flat = np.stack([np.frombuffer(b, dtype="<f4") for b in frame.state])
    return flat.reshape(len(frame), model_cfg.n_heads, -1, model_cfg.dim // model_cfg.n_heads)


@pytest.fixture(scope="module")
def two_snapshots(tmp_path_factory, spark):
    cfg = tiny_config(
        tmp_path_factory.mktemp("states"),
        snapshots={"state_min_events": MIN_EVENTS},
        features={"summary_codec": "float32"},
        # the longest histories are cut at each snapshot: their states subtract what the
        # cut drops instead of folding the whole history again
        histories={"max_history": MAX_HISTORY},
    )
    pipeline.ingest_events(cfg)
    later = Snapshot.of(pipeline.default_as_of(cfg))
    earlier = Snapshot.of(later - dt.timedelta(days=1))
    pipeline.build_histories(cfg, earlier)
    pipeline.train_summarizer(cfg, earlier, progress=False)
    first = pipeline.summarize(cfg, earlier)
    pipeline.build_histories(cfg, later)
    second = pipeline.summarize(cfg, later)
    return cfg, earlier, later, first, second


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_a_refresh_from_cached_states_equals_the_whole_history(two_snapshots):
    cfg, earlier, later, first, second = two_snapshots
    model_cfg = load_checkpoint(state.current_summarizer(cfg)["path"]).cfg
    hist = pipeline.read_histories(cfg, later).set_index("user_id")
    long_users = hist.index[hist.history_length >= MIN_EVENTS]
    assert first["states"]["users"] > 0
    assert first["states"]["how"][NEW] == first["states"]["users"]
    got = second["states"]
    assert got["users"] == len(long_users)
    assert got["previous_snapshot"] == earlier.iso
    # users already long at the earlier snapshot are refreshed (new events) or advanced
    # (none); only users who crossed the threshold are folded from their whole history
    assert got["how"][REFRESHED] > 0
    assert got["how"][ADVANCED] > 0
    before = pipeline.read_histories(cfg, earlier).set_index("user_id").history_length
    was_long = before.reindex(long_users).fillna(0) >= MIN_EVENTS
    assert got["how"][NEW] == int((~was_long).sum())
    assert got["how"][REBUILT_CORRUPT] == got["how"][REBUILT_HISTORY] == 0
    assert got["events_read"] < got["events"] / 5  # the cost is the new events'
    capped = hist.index[hist.dropped_item_ids.map(len) > 0]
    assert len(capped) > 0  # ...and those the cap dropped
    rows = states_at(cfg, later)
    assert set(rows.how) <= {NEW, REFRESHED, ADVANCED}
    want = whole_history_states(cfg, later, rows.index)
    assert relative_error(as_states(rows, model_cfg), want) < 1e-5
    # the summaries of long histories are the tokens of those states; short ones are
    # summarized from their history or carried over as before
    summaries = pipeline.read_summaries(cfg, later).set_index("user_id")
    assert second["from_states_users"] == len(rows)
    assert second["users"] == len(hist)
    model = load_checkpoint(state.current_summarizer(cfg)["path"])
    with torch.inference_mode():
        tokens = model.tokens(torch.from_numpy(want), torch.tensor(rows.events_folded.values))
    stored = np.stack(summaries.loc[rows.index].summary).reshape(tokens.shape)
    assert relative_error(stored, tokens.numpy()) < 1e-5
    assert (summaries.loc[rows.index].history_length == hist.loc[rows.index].history_length).all()


def test_a_rerun_commits_nothing(two_snapshots):
    cfg, _, later, _, second = two_snapshots
    again = pipeline.summarize(cfg, later)
    assert again["unchanged"]
    assert again["states"]["unchanged"]
    assert again["states"]["table_version"] == second["states"]["table_version"]


def test_a_corrupted_state_is_rebuilt_from_the_history(two_snapshots):
    """One flipped byte in a cached state: the next snapshot folds that user's whole
    history instead of reusing it, and the run summary counts it."""
    cfg, _, later, _, _ = two_snapshots
    path = state.states_path(cfg)
    table = lake.read_arrow(path, filters=later.partition_filter())
    blobs = table.column("state").to_pylist()
    victim = 0
    flipped = bytearray(blobs[victim])
    flipped[5] ^= 0x40
    blobs[victim] = bytes(flipped)
    corrupted = table.set_column(table.schema.get_field_index("state"), "state",
                                 pa.array(blobs, type=pa.binary()))  # fmt: skip
    lake.write_arrow(path, corrupted, partition_by=[PARTITION_COL],
                     replace_where=f"{PARTITION_COL} = '{later.iso}'")  # fmt: skip
    user = table.column("user_id")[victim].as_py()
    # the data-quality report flags it (the states suite is critical)...
    with pytest.raises(DataQualityError, match="checksum_ok"):
        pipeline.validate_summaries(cfg, later)

    # ...and the next snapshot does not reuse it
    next_day = Snapshot.of(later + dt.timedelta(days=1))
    pipeline.build_histories(cfg, next_day)
    redone = pipeline.summarize(cfg, next_day)["states"]
    assert redone["how"][REBUILT_CORRUPT] == 1
    assert redone["how"][ADVANCED] + redone["how"][REFRESHED] == redone["users"] - 1
    rows = states_at(cfg, next_day)
    assert rows.loc[user, "how"] == REBUILT_CORRUPT
    model_cfg = load_checkpoint(state.current_summarizer(cfg)["path"]).cfg
    want = whole_history_states(cfg, next_day, rows.index)
    assert relative_error(as_states(rows, model_cfg), want) < 1e-5
    assert pipeline.validate_summaries(cfg, next_day)["states"]["success"]


def test_a_new_summarizer_version_folds_every_history_anew(two_snapshots):
    cfg, earlier, later, _, second = two_snapshots
    retrained = cfg.model_copy(update={"summarizer": cfg.summarizer.model_copy(update={"seed": 5})})
    pipeline.train_summarizer(retrained, earlier, progress=False)
    fresh = pipeline.refresh_states(retrained, later)
    assert fresh["previous_snapshot"] is None
    assert fresh["how"][NEW] == fresh["users"] == second["states"]["users"]
    versions = pc.unique(lake.read_arrow(state.states_path(retrained))["summarizer_version"])
    assert versions.to_pylist() == [state.current_summarizer(retrained)["version"]]


def test_the_plan_folds_a_history_anew_when_it_no_longer_starts_with_the_folded_events(spark):
    """A late event before the state's instant, or a history cut at max_history by a
    full build (which does not say what it cut), moves the boundary: the state is not
    reused. A cut by an incremental build names its events: they are subtracted."""
    from spark_jobs.summary_states import checksum

    instant = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    at = int(instant.timestamp() * 1e6)
    d = 86_400_000_000
    rows = {  # user: (item ids, timestamps, dropped item ids, dropped timestamps)
        1: ([1, 2, 3, 4], [at - 3 * d, at - 2 * d, at - d, at + 1], [], []),  # 3 folded + 1 new
        2: ([1, 9, 2, 3], [at - 3 * d, at - 2 * d, at - 2 * d, at - d], [], []),  # a late event
        3: ([2, 3, 4], [at - 2 * d, at - d, at + 1], None, None),  # cut by a full build
        4: ([1, 2, 3], [at - 3 * d, at - 2 * d, at - d], [], []),  # nothing new
        5: ([2, 3, 4], [at - 2 * d, at - d, at + 1], [1], [at - 3 * d]),  # cut incrementally
    }
    histories = spark.createDataFrame(
        pd.DataFrame(
            {
                "user_id": list(rows),
                "history_length": [len(r[0]) for r in rows.values()],
                "item_ids": [r[0] for r in rows.values()],
                "categories": [[0] * len(r[0]) for r in rows.values()],
                "event_timestamps": [r[1] for r in rows.values()],
                "dropped_item_ids": [r[2] for r in rows.values()],
                "dropped_categories": [
                    None if r[2] is None else [0] * len(r[2]) for r in rows.values()
                ],
                "dropped_event_timestamps": [r[3] for r in rows.values()],
            }
        ),
        "user_id long, history_length long, item_ids array<long>, categories array<long>, "
        "event_timestamps array<long>, dropped_item_ids array<long>, "
        "dropped_categories array<long>, dropped_event_timestamps array<long>",
    )
    previous = spark.createDataFrame(
        pd.DataFrame(
            {
                "user_id": list(rows),
                "state_as_of": [pd.Timestamp(instant)] * len(rows),
                "summarizer_version": ["s-x"] * len(rows),
                "events_folded": [3] * len(rows),
                "state": [b"\x00" * 8] * len(rows),
            }
        )
    ).withColumn("state_checksum", checksum())
    plan = refresh_plan(histories, previous, "s-x").toPandas().set_index("user_id")
    assert plan.how.to_dict() == {1: REFRESHED, 2: REBUILT_HISTORY, 3: REBUILT_HISTORY,
                                  4: ADVANCED, 5: REFRESHED}  # fmt: skip
    assert list(plan.loc[5, "item_ids"]) == [4]  # the new event, and the one to subtract
    assert list(plan.loc[5, "dropped_item_ids"]) == [1]
    assert list(plan.loc[1, "item_ids"]) == [4]  # only the new event is read
    assert list(plan.loc[4, "item_ids"]) == []
    assert list(plan.loc[2, "item_ids"]) == [1, 9, 2, 3]  # the whole history
    assert plan.loc[1, "prev_as_of_us"] == at
    assert plan.loc[2, "prev_state"] is None
    # histories written before the dropped columns existed (an older lake): a cut is
    # unknown, so the incrementally cut user is folded anew; the others are as before
    older = histories.drop("dropped_item_ids", "dropped_categories", "dropped_event_timestamps")
    plan_old = refresh_plan(older, previous, "s-x").toPandas().set_index("user_id")
    assert plan_old.how.to_dict() == {**plan.how.to_dict(), 5: REBUILT_HISTORY}
    # another version's row is never reused
    other = refresh_plan(histories, previous, "s-y").toPandas()
    assert set(other.how) == {REBUILT_CORRUPT}
