"""Feast's online store on Redis: chosen by configuration alone, served by a real
redis-server, and holding exactly the summaries of the Delta table and the SQLite store."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from devservers.redis_server import find_redis_server, free_port, local_redis_server
from vista import features, pipeline
from vista.core.config import PROJECT_ROOT, ConfigError, load_config

from .conftest import tiny_config


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port; yields Feast's connection string."""
    try:
        find_redis_server()
    except FileNotFoundError as exc:
        # .ci/run installs it, so a missing server is a broken set-up, not a reason to skip
        pytest.fail(str(exc), pytrace=False)
    with local_redis_server(tmp_path_factory.mktemp("redis")) as connection:
        yield connection


@pytest.fixture(scope="module")
def redis_deployment(pipeline_run, redis_server, tmp_path_factory):
    """The pipeline's summaries published a second time, to Redis: the same trained model
    and lake, with a registry and online store of its own. Returns (cfg, as_of)."""
    cfg, as_of, _ = pipeline_run
    root = tmp_path_factory.mktemp("redis_deployment")
    paths = {"state": str(root / "state"), "lake": str(cfg.paths.lake),
             "reports": str(root / "reports")}  # fmt: skip
    redis_cfg = tiny_config(root, paths=paths, features={
        "online_store": "redis", "redis_connection_string": redis_server})  # fmt: skip
    shutil.copytree(cfg.paths.state / "models", redis_cfg.paths.state / "models")
    published = pipeline.publish_features(redis_cfg, as_of)  # apply + materialize
    assert published["online_users_checked"] > 0
    return redis_cfg, as_of


def test_the_local_redis_server_listens_on_loopback_only(redis_server):
    from tests.sockets import LOOPBACK, addresses

    port = int(redis_server.rsplit(":", 1)[1])
    assert addresses(port)
    assert addresses(port) <= LOOPBACK


def written_yaml(cfg) -> dict:
    return yaml.safe_load((features.write_feast_repo(cfg) / "feature_store.yaml").read_text())


def test_sqlite_is_the_default_and_the_redis_profile_selects_redis():
    local = load_config("local", environ={})
    assert local.features.online_store == "sqlite"
    redis = load_config("redis", environ={})
    assert redis.features.online_store == "redis"
    assert redis.features.redis_connection_string == "localhost:6379"
    assert redis.summarizer == local.summarizer  # laid over local.yaml, nothing else moves


def test_environment_selects_a_managed_redis():
    env = {"VISTA__FEATURES__ONLINE_STORE": "redis",
           "VISTA__FEATURES__REDIS_CONNECTION_STRING": "10.0.0.5:6380,db=2,ssl=true"}  # fmt: skip
    cfg = load_config("local", environ=env)
    assert cfg.features.online_store == "redis"
    assert cfg.features.redis_connection_string == "10.0.0.5:6380,db=2,ssl=true"


def test_a_literal_redis_password_is_not_printed_but_is_used(tmp_path):
    literal = "cache:6380,ssl=true,password=hunter2"
    cfg = tiny_config(tmp_path, features={"online_store": "redis",
                                          "redis_connection_string": literal})  # fmt: skip
    assert "hunter2" not in str(cfg.to_dict())
    shown = cfg.to_dict()["features"]["redis_connection_string"]
    assert shown == "cache:6380,ssl=true,password=***"
    assert written_yaml(cfg)["online_store"]["connection_string"].endswith("password=hunter2")
    placeholder = "cache:6380,password=${REDIS_PASSWORD}"
    cfg = tiny_config(tmp_path, features={"redis_connection_string": placeholder})
    assert cfg.to_dict()["features"]["redis_connection_string"] == placeholder


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("online_store", "memcached"),
        ("redis_connection_string", "redis://cache:6379/0"),  # a URL, not Feast's form
        ("redis_connection_string", "cache"),  # no port
        ("redis_type", "redis_sentinel"),
    ],
)
def test_bad_online_store_settings_are_named(field, value):
    with pytest.raises(ConfigError, match=rf"features\.{field}"):
        load_config("redis", overrides={"features": {field: value}}, environ={})


def test_written_feature_store_yaml_follows_the_config(tmp_path):
    sqlite_cfg = tiny_config(tmp_path / "a")
    redis_cfg = tiny_config(tmp_path / "b", features={
        "online_store": "redis", "redis_connection_string": "127.0.0.1:7001,db=3",
        "redis_type": "redis_cluster"})  # fmt: skip
    base = features.feature_store_settings(sqlite_cfg)
    sqlite, redis = written_yaml(sqlite_cfg), written_yaml(redis_cfg)
    assert sqlite == base  # the CLI's file holds what the SDK's RepoConfig is built from
    assert sqlite["online_store"] == {
        "type": "sqlite", "path": str(sqlite_cfg.paths.state / "feast" / "online_store.db")
    }  # fmt: skip
    assert redis["online_store"] == {
        "type": "redis", "redis_type": "redis_cluster", "connection_string": "127.0.0.1:7001,db=3"
    }  # fmt: skip
    assert {k: v for k, v in redis.items() if k not in ("online_store", "registry")} == {
        k: v for k, v in base.items() if k not in ("online_store", "registry")
    }


@pytest.mark.slow
def test_plain_feast_cli_reads_the_profile_store_and_a_password_from_the_environment(tmp_path):
    """`feast -c "$(vista feast-repo)" ...` sees the Redis store, and a password given as
    ${VAR} comes from the environment, never from a file."""
    cfg = tiny_config(tmp_path, features={
        "online_store": "redis",
        "redis_connection_string": "127.0.0.1:7001,password=${VISTA_TEST_REDIS_PASSWORD}"})  # fmt: skip
    env = {**os.environ, "VISTA_TEST_REDIS_PASSWORD": "s3cret"}
    repo = features.write_feast_repo(cfg)
    assert "s3cret" not in (repo / "feature_store.yaml").read_text()
    feast = os.path.join(os.path.dirname(sys.executable), "feast")
    shown = subprocess.run([feast, "-c", str(repo), "configuration"], env=env,
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    online = yaml.safe_load(shown.stdout)["online_store"]
    assert online["type"] == "redis"
    assert online["connection_string"] == "127.0.0.1:7001,password=s3cret"


def test_redis_server_is_found_or_reported_with_the_fix(tmp_path):
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_redis_server({"PATH": str(tmp_path)}, fallbacks=()) == str(fake)
    elsewhere = {"PATH": "/nonexistent", "VISTA_REDIS_SERVER": str(fake)}
    assert find_redis_server(elsewhere, fallbacks=()) == str(fake)
    with pytest.raises(FileNotFoundError, match="make redis"):
        find_redis_server({"PATH": str(tmp_path / "empty")}, fallbacks=())


@pytest.mark.slow
def test_redis_serves_every_user_exactly_as_the_lake_and_sqlite(pipeline_run, redis_deployment):
    sqlite_cfg, _, _ = pipeline_run
    cfg, as_of = redis_deployment
    summaries = pipeline.read_summaries(cfg, as_of).sort_values("user_id")
    users = summaries.user_id.tolist()
    store = features.feature_store(cfg)
    assert store.config.online_store.type == "redis"
    online = features.online_summaries(store, users)
    width = cfg.summarizer.n_seeds * cfg.summarizer.dim
    for i, row in enumerate(summaries.itertuples()):
        served = np.asarray(online["summary"][i], np.float32)
        assert served.shape == (width,)
        np.testing.assert_array_equal(served, row.summary)
        assert online["history_length"][i] == row.history_length
        assert online["summarizer_version"][i] == row.summarizer_version
    from_sqlite = features.online_summaries(features.feature_store(sqlite_cfg), users)
    assert from_sqlite["summary"] == online["summary"]
    assert from_sqlite["history_length"] == online["history_length"]


@pytest.mark.slow
def test_the_rows_live_in_redis_not_in_a_sqlite_file(redis_deployment, redis_server):
    from redis import Redis

    cfg, as_of = redis_deployment
    host, port = redis_server.split(":")
    n_users = len(pipeline.read_summaries(cfg, as_of))
    with Redis(host=host, port=int(port)) as client:
        assert client.dbsize() >= n_users  # one hash per user key (plus (user, category) keys)
    assert not (cfg.paths.state / "feast" / "online_store.db").exists()


@pytest.mark.slow
def test_unknown_user_is_none_and_an_unreachable_redis_fails_loudly(redis_deployment):
    cfg, _ = redis_deployment
    unknown = features.online_summaries(features.feature_store(cfg), [10**9])
    assert unknown["summary"] == [None]
    assert unknown["history_length"] == [None]
    assert unknown["summarizer_version"] == [None]
    # nothing listens there: serving must raise, not answer "no summary" for everyone
    dead = cfg.model_copy(update={"features": cfg.features.model_copy(
        update={"redis_connection_string": f"127.0.0.1:{free_port()}"})})  # fmt: skip
    from redis.exceptions import ConnectionError as RedisConnectionError

    with pytest.raises(RedisConnectionError):
        features.online_summaries(features.feature_store(dead), [1])


@pytest.mark.slow
def test_online_store_benchmark_runs_and_checks_both_stores(tmp_path):
    import importlib.util

    path = PROJECT_ROOT / "bench" / "online_store_bench.py"
    spec = importlib.util.spec_from_file_location("online_store_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "online_store.json"
    result = bench.main(
        ["--users", "40", "--reads", "5", "--batch", "8", "--batches", "3", "--warmup", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert result["serves_every_user_exactly"] == {"sqlite": True, "redis": True}
    assert set(result["latency"]["1 user, decoded"]) == {"sqlite", "redis"}
    assert result["latency"]["8 users, decoded"]["redis"]["requests"] == 3
    assert json.loads(out.read_text())["users"] == 40
