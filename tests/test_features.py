"""Feast on the pipeline's real Delta tables: point-in-time joins and online reads."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vista import features, pipeline, state
from vista.core import lake, summary_codec


def test_registry_holds_entity_views_and_service(pipeline_run):
    cfg, _, steps = pipeline_run
    store = features.feature_store(cfg)
    version = steps["summarize"]["summarizer_version"]
    stored = store.get_feature_view(features.ENCODED_VIEW)
    assert {f.name for f in stored.features} >= {
        "summary_codes", "summary_scales", "summary_codec", "history_length", "summarizer_version"
    }  # fmt: skip
    # the source reads this summarizer version's own table
    assert stored.batch_source.path == str(state.summaries_path(cfg, version))
    assert stored.tags["summarizer_version"] == version
    assert stored.tags["codec"] == cfg.features.summary_codec == "int8"
    decoded = store.get_on_demand_feature_view(features.SUMMARY_VIEW)
    assert [f.name for f in decoded.features] == ["summary"]
    assert decoded.tags["n_tokens"] == str(cfg.summarizer.n_seeds)
    assert decoded.tags["token_dim"] == str(cfg.summarizer.dim)
    assert store.get_feature_service("ranker_v1").name == "ranker_v1"
    assert sorted(e.name for e in store.list_entities()) == ["category", "user"]
    evaluation = store.get_feature_service(features.EVALUATION_SERVICE)
    assert {p.name for p in evaluation.feature_view_projections} == {
        features.SUMMARY_VIEW, features.ENCODED_VIEW, "user_history_tail", "user_category_history"
    }  # fmt: skip


def test_point_in_time_join_never_sees_a_future_summary(pipeline_run):
    cfg, as_of, _ = pipeline_run
    k, d = cfg.summarizer.n_seeds, cfg.summarizer.dim
    path = state.summaries_path(cfg)
    first = lake.read_arrow(path, filters=[("as_of_date", "=", str(as_of.date()))])
    users = first.slice(0, 2)
    later = as_of + dt.timedelta(days=10)
    n = users.num_rows
    codes, scales = summary_codec.encode(np.full((n, k, d), 7.0, np.float32), "int8")
    marked = (
        users.set_column(users.schema.get_field_index("summary_codes"), "summary_codes",
                         pa.array(codes, users.schema.field("summary_codes").type))
        .set_column(users.schema.get_field_index("summary_scales"), "summary_scales",
                    pa.array(list(scales), users.schema.field("summary_scales").type))
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
        original = pipeline.read_summaries(cfg, as_of).set_index("user_id").summary[user]
        assert got.summary[0] is None
        np.testing.assert_array_equal(np.asarray(got.summary[1], np.float32), original)
        np.testing.assert_allclose(np.asarray(got.summary[2]), 7.0, rtol=1e-6)
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


@pytest.mark.integration
def test_plain_feast_cli_applies_the_same_repo(tmp_path):
    """`feast -c "$(vista feast-repo)" apply`, then `feature-views list`, on the tiny
    profile: the CLI reads the generated repo and registers what the SDK registers."""
    import os
    import subprocess
    import sys

    from typer.testing import CliRunner

    from tests.conftest import tiny_config
    from vista.cli import app

    cfg = tiny_config(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("VISTA_", "FEAST_"))},
           **{f"VISTA__PATHS__{k.upper()}": str(tmp_path / k) for k in ("state", "lake", "reports")},
           "VISTA_PROFILE": "tiny"}  # fmt: skip
    printed = CliRunner().invoke(app, ["feast-repo"], env=env)
    assert printed.exit_code == 0, printed.output
    repo = printed.output.strip()
    assert repo == str(cfg.paths.state / "feast")
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    applied = subprocess.run([feast, "-c", repo, "apply"], env=env, capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    assert applied.returncode == 0, applied.stderr[-2000:]
    listed = subprocess.run([feast, "-c", repo, "feature-views", "list"], env=env,
                            capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    assert features.ENCODED_VIEW in listed.stdout
    assert (cfg.paths.state / "feast" / "registry.db").exists()
    # the SDK opens the registry the CLI wrote and finds the same objects, configured alike
    store = features.feature_store(cfg)
    assert store.get_feature_service(features.FEATURE_SERVICE).name == "ranker_v1"
    wanted = {(type(o).__name__, o.name) for o in features.repo_objects(cfg)}
    assert features.stale_objects(store, features.repo_objects(cfg)) == []
    listed = {(type(o).__name__, o.name) for o in [*store.list_feature_views(),
              *store.list_on_demand_feature_views(), *store.list_feature_services()]}  # fmt: skip
    assert listed <= wanted
    view = store.get_feature_view(features.ENCODED_VIEW)
    assert view.batch_source.path == str(cfg.paths.lake / "user_summaries" / "none")
    assert view.ttl.days == cfg.features.ttl_days


def test_feast_configuration_comes_from_the_typed_config_not_the_environment(tmp_path):
    """The SDK's RepoConfig and the CLI's feature_store.yaml hold the same settings, and
    the repo's definitions take their values from the config, whatever the environment."""
    import os

    import yaml
    from feast.repo_config import load_repo_config

    from tests.conftest import tiny_config

    cfg = tiny_config(tmp_path, summarizer={"n_seeds": 4, "dim": 8}, features={"ttl_days": 3})
    decoys = {"VISTA_LAKE_DIR": "/nowhere", "VISTA_SUMMARY_TOKENS": "99",
              "VISTA_FEATURE_TTL_DAYS": "99", "FEAST_FS_YAML_FILE_PATH": "/nowhere.yaml"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in decoys}
    os.environ.update(decoys)
    try:
        config = features.repo_config(cfg)
        repo = features.write_feast_repo(cfg)
        loaded = load_repo_config(repo, repo / "feature_store.yaml")
        objects = {o.name: o for o in features.repo_objects(cfg)}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert config.registry.path == loaded.registry.path == str(repo / "registry.db")
    assert config.online_store.path == loaded.online_store.path == str(repo / "online_store.db")
    assert config.offline_store.type == loaded.offline_store.type == "duckdb"
    assert yaml.safe_load((repo / "feature_store.yaml").read_text())["project"] == "vista"
    encoded = objects[features.ENCODED_VIEW]
    assert encoded.ttl.days == 3
    assert encoded.tags["n_tokens"] == "4"
    assert encoded.tags["token_dim"] == "8"
    assert encoded.batch_source.path == str(cfg.paths.lake / "user_summaries" / "none")
    # fresh objects per call: two profiles in one process do not share them
    other = tiny_config(tmp_path / "b", features={"ttl_days": 9})
    assert {o.name: o for o in features.repo_objects(other)}[features.ENCODED_VIEW].ttl.days == 9
    assert encoded.ttl.days == 3


def test_apply_deletes_views_the_repo_no_longer_defines(tmp_path):
    """A view renamed in the repo must leave the registry, or materialize still reads it."""
    from feast import FeatureView, Field, FileSource
    from feast.types import Int64

    from tests.conftest import tiny_config

    cfg = tiny_config(tmp_path)
    store = features.apply_repo(cfg)
    entity = store.get_entity("user")
    old = FeatureView(name="user_summary_v0", entities=[entity],
                      schema=[Field(name="old_feature", dtype=Int64)],
                      source=FileSource(name="old_source", path=str(tmp_path / "gone"),
                                        timestamp_field="event_timestamp"))  # fmt: skip
    store.apply([old.batch_source, old])
    assert "user_summary_v0" in {v.name for v in store.list_feature_views()}
    store = features.apply_repo(cfg)
    assert "user_summary_v0" not in {v.name for v in store.list_feature_views()}
    assert "old_source" not in {s.name for s in store.list_data_sources()}
    assert features.ENCODED_VIEW in {v.name for v in store.list_feature_views()}
