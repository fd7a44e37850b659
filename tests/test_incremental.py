"""Refresh: a later snapshot recomputes only users with new events, and a new
summarizer version re-summarizes everyone."""

import datetime as dt

import numpy as np
import pyarrow.compute as pc

from vista import pipeline, state
from vista.core import lake
from vista.core.snapshot import Snapshot

from .conftest import tiny_config


def test_refresh_recomputes_only_changed_users(tmp_path, spark):
    cfg = tiny_config(tmp_path)
    pipeline.ingest_events(cfg)
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    earlier = Snapshot.of(as_of - dt.timedelta(days=5))

    first = pipeline.build_histories(cfg, earlier)
    assert first["mode"] == "full"
    pipeline.train_summarizer(cfg, earlier, progress=False)
    assert not list((state.checkpoint_dir(cfg) / "training").glob("*.pt"))  # run finished
    s1 = pipeline.summarize(cfg, earlier)
    assert s1["carried_over_users"] == 0

    second = pipeline.build_histories(cfg, as_of)
    assert second["mode"] == f"incremental from {earlier.date()}"
    assert 0 < second["updated_users"] < second["users"]
    s2 = pipeline.summarize(cfg, as_of)
    assert s2["carried_over_from"] == str(earlier.date())
    # long histories come from their cached states (tests/test_summary_states.py); of
    # the others, the unchanged are carried over and only the updated summarized
    hist = pipeline.read_histories(cfg, as_of)
    long = hist.history_length >= cfg.snapshots.state_min_events
    assert s2["from_states_users"] == long.sum() > 0
    assert s2["carried_over_users"] == (~long & ~hist.updated).sum()
    assert s2["summarized_users"] == (~long & hist.updated).sum() > 0

    old = pipeline.read_summaries(cfg, earlier).set_index("user_id")
    new = pipeline.read_summaries(cfg, as_of).set_index("user_id")
    hist = pipeline.read_histories(cfg, as_of).set_index("user_id")
    assert (new.event_timestamp == Snapshot.of(as_of)).all()  # refresh time
    for user in hist.index[~hist.updated][:5]:
        np.testing.assert_array_equal(new.summary[user], old.summary[user])
    # rerunning the same date changes nothing: nothing is even committed
    again = pipeline.summarize(cfg, as_of)
    assert again["unchanged"]
    assert again["table_version"] == s2["table_version"]
    rerun = pipeline.read_summaries(cfg, as_of).set_index("user_id").sort_index()
    np.testing.assert_array_equal(np.stack(rerun.summary), np.stack(new.sort_index().summary))

    # a new summarizer version: every user summarized again, under the new version
    retrained = cfg.model_copy(
        update={"summarizer": cfg.summarizer.model_copy(update={"seed": 11})}
    )
    reused = pipeline.train_summarizer(cfg, earlier, progress=False)
    assert reused["reused"] is True  # frozen across refreshes
    pipeline.train_summarizer(retrained, earlier, progress=False)
    s3 = pipeline.summarize(retrained, as_of)
    assert s3["carried_over_users"] == 0
    assert s3["states"]["how"]["new"] == s3["from_states_users"]
    old_version, new_version = s2["summarizer_version"], s3["summarizer_version"]
    assert new_version != old_version
    # kept apart: the new version has a table of its own, the old one is untouched
    new_table = state.summaries_path(retrained)
    assert new_table != state.summaries_path(cfg, old_version)
    assert pc.unique(lake.read_arrow(new_table)["summarizer_version"]).to_pylist() == [new_version]
    kept = pipeline.read_summaries(cfg, as_of, version=old_version).set_index("user_id")
    assert set(kept.summarizer_version) == {old_version}
    np.testing.assert_array_equal(np.stack(kept.sort_index().summary),
                                  np.stack(new.sort_index().summary))  # fmt: skip
    assert state.summarizer_versions(cfg) == [old_version, new_version]
