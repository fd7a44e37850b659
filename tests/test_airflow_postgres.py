"""Airflow on PostgreSQL with the LocalExecutor (conf/airflow-postgres.yaml): the profile,
its URL and the Helm values. The real thing (a PostgreSQL from Debian's binaries, `airflow
db migrate` against it, a scheduler with the LocalExecutor running the whole chain from
one trigger, its metadata read back from PostgreSQL) is tests/test_browser.py's run."""

from __future__ import annotations

import pytest
import yaml

from devservers.postgres_local import Server
from tests.airflow_ui import profile_url
from tests.conftest import tiny_config
from vista import airflow_runner
from vista.core.config import PROJECT_ROOT, ConfigError, load_config


def test_profile_points_airflow_at_postgres_with_the_local_executor(tmp_path):
    cfg = load_config("airflow-postgres", environ={})
    env = airflow_runner.airflow_environment(cfg)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    # the embedded default is untouched: SQLite in the state folder
    local = tiny_config(tmp_path)
    assert airflow_runner.airflow_environment(local)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"sqlite:///{local.paths.state / 'airflow' / 'airflow.db'}"
    )


def test_the_url_comes_from_the_environment_and_its_password_is_never_printed():
    secret = "postgresql+psycopg2://airflow:s3cret@db.internal:5432/airflow"
    cfg = load_config("airflow-postgres", environ={"VISTA__AIRFLOW__SQL_ALCHEMY_CONN": secret})
    assert airflow_runner.airflow_environment(cfg)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == secret
    dumped = cfg.to_dict()["airflow"]["sql_alchemy_conn"]
    assert "s3cret" not in dumped
    assert dumped == "postgresql+psycopg2://airflow:***@db.internal:5432/airflow"
    # Airflow refuses the postgres:// scheme at start-up; the config says so up front
    with pytest.raises(ConfigError, match=r"airflow\.sql_alchemy_conn"):
        load_config("tiny", overrides={"airflow": {"sql_alchemy_conn": "postgres://a@b/c"}},
                    environ={})  # fmt: skip


def test_a_local_server_is_only_started_for_a_loopback_url(tmp_path):
    assert Server.for_url(profile_url(5999), tmp_path).port == 5999
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        Server.for_url("postgresql+psycopg2://a:b@db.internal:5432/airflow", tmp_path)
    with pytest.raises(ValueError, match="password"):
        Server.for_url("postgresql+psycopg2://a@127.0.0.1:5432/airflow", tmp_path)


def test_helm_values_run_what_the_profile_runs():
    """infra/helm/airflow: the chart's settings mirror the profile's airflow section, and
    the variables it gives the tasks are ones the platform's configuration accepts."""
    from importlib.metadata import version

    helm = PROJECT_ROOT / "infra" / "helm" / "airflow"
    values = yaml.safe_load((helm / "values.yaml").read_text())
    profile = load_config("airflow-postgres", environ={}).airflow
    assert values["executor"] == profile.executor
    assert values["config"]["core"]["parallelism"] == profile.parallelism
    assert values["data"]["metadataSecretName"]
    assert not values["postgresql"]["enabled"]  # metadata in an external PostgreSQL
    # the image is the Airflow the lock pins
    assert values["airflowVersion"] == version("apache-airflow")
    dockerfile = (helm / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{version('apache-airflow')}-python3.11" in dockerfile
    env = {item["name"]: str(item["value"]) for item in values["env"]}
    cfg = load_config(env["VISTA_PROFILE"], environ=env)  # unknown names fail here
    (mount,) = [m["mountPath"] for m in values["scheduler"]["extraVolumeMounts"]]
    for folder in (cfg.paths.state, cfg.paths.lake, cfg.paths.reports):
        assert folder.is_relative_to(mount), folder  # on the volume the tasks' pod holds
    # the baked image: the repository copied to /opt/vista, its DAGs in dags/
    assert " . /opt/vista\n" in dockerfile
    assert values["config"]["core"]["dags_folder"] == "/opt/vista/dags"
    # git-sync: the DAGs are the checkout's dags/, the packages they import its root
    gitsync = yaml.safe_load((helm / "values-gitsync.yaml").read_text())
    checkout = "/opt/airflow/dags/repo"
    assert (
        gitsync["config"]["core"]["dags_folder"]
        == f"{checkout}/{gitsync['dags']['gitSync']['subPath']}"
    )
    extra = {item["name"]: item["value"] for item in yaml.safe_load(gitsync["extraEnv"])}
    assert extra["PYTHONPATH"] == checkout
    assert (PROJECT_ROOT / gitsync["dags"]["gitSync"]["subPath"]) == airflow_runner.DAGS_FOLDER
