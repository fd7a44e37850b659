"""Feast on the pipeline's real Delta tables: point-in-time joins and online reads."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from spark_jobs import lake
from vista import features, pipeline


def test_registry_holds_entity_view_and_service(pipeline_run):
    cfg, _, _ = pipeline_run
    store = features.feature_store(cfg)
    view = store.get_feature_view("user_summary_v1")
    assert {f.name for f in view.features} >= {"summary", "history_length", "summarizer_version"}
    assert view.tags["n_tokens"] == str(cfg.summarizer.n_seeds)
    assert view.tags["token_dim"] == str(cfg.summarizer.dim)
    assert store.get_feature_service("ranker_v1").name == "ranker_v1"
    assert [e.name for e in store.list_entities()] == ["user"]


def test_point_in_time_join_never_sees_a_future_summary(pipeline_run):
    cfg, as_of, _ = pipeline_run
    path = cfg.paths.table(pipeline.SUMMARIES)
    first = lake.read_arrow(path, filters=[("as_of_date", "=", str(as_of.date()))])
    users = first.slice(0, 2)
    later = as_of + dt.timedelta(days=10)
    n = users.num_rows
    marked = (
        users.set_column(users.schema.get_field_index("summary"), "summary",
                         pa.array([np.full(len(users["summary"][0]), 7.0, np.float32)] * n,
                                  users.schema.field("summary").type))
        .set_column(users.schema.get_field_index("event_timestamp"), "event_timestamp",
                    pa.array([later] * n, users.schema.field("event_timestamp").type))
        .set_column(users.schema.get_field_index("as_of_date"), "as_of_date",
                    pa.array([str(later.date())] * n))
    )  # fmt: skip
    lake.write_arrow(path, marked, ["as_of_date"], mode="append")
    try:
        user = int(users["user_id"][0].as_py())
        entity = pd.DataFrame(
            {
                "user_id": [user, user, user],
                "event_timestamp": [
                    as_of - dt.timedelta(hours=1),  # before any summary
                    later - dt.timedelta(hours=1),  # sees the as_of snapshot
                    later + dt.timedelta(hours=1),  # sees the later one
                ],
            }
        )
        got = features.training_frame(features.feature_store(cfg), entity)
        got = got.sort_values("event_timestamp").reset_index(drop=True)
        original = first.filter(pc.equal(first["user_id"], user))["summary"][0].as_py()
        assert got.summary[0] is None
        np.testing.assert_array_equal(np.asarray(got.summary[1], np.float32), original)
        assert np.all(np.asarray(got.summary[2]) == 7.0)
    finally:
        lake.write_arrow(
            path, first.slice(0, 0), ["as_of_date"], replace_where=f"as_of_date = '{later.date()}'"
        )


def test_online_store_serves_the_latest_summary_exactly(pipeline_run):
    cfg, as_of, _ = pipeline_run
    summaries = pipeline.read_summaries(cfg, as_of).sort_values("user_id").head(5)
    store = features.feature_store(cfg)
    online = features.online_summaries(store, summaries.user_id.tolist())
    for i, row in enumerate(summaries.itertuples()):
        np.testing.assert_array_equal(np.asarray(online["summary"][i], np.float32), row.summary)
        assert online["history_length"][i] == row.history_length
        assert online["summarizer_version"][i] == row.summarizer_version
    unknown = features.online_summaries(store, [10**9])
    assert unknown["summary"] == [None]


def test_plain_feast_cli_applies_the_same_repo(tmp_path):
    """`feast apply` on feature_repo/ works with the variables `vista env` prints."""
    import os
    import subprocess
    import sys

    from tests.conftest import tiny_config

    cfg = tiny_config(tmp_path)
    env = {**os.environ, **features.feast_environment(cfg)}
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    repo = str(features.FEATURE_REPO)
    applied = subprocess.run([feast, "-c", repo, "apply"], env=env, capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    assert applied.returncode == 0, applied.stderr[-2000:]
    listed = subprocess.run([feast, "-c", repo, "feature-services", "list"], env=env,
                            capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    assert "ranker_v1" in listed.stdout
    assert (cfg.paths.state / "feast" / "registry.db").exists()
