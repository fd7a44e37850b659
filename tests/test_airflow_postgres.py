"""Airflow on PostgreSQL with the LocalExecutor (conf/airflow-postgres.yaml): a real
PostgreSQL from Debian's binaries, `airflow db migrate` against it, and a real scheduler
running the whole DAG chain from one trigger, its metadata read back from PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from devservers.ports import free_port
from devservers.postgres_local import Server, local_postgres
from tests.airflow_ui import PASSWORD, stop_tree, trigger_chain_and_wait
from tests.conftest import tiny_config
from tests.sockets import LOOPBACK, addresses
from vista import airflow_runner, orchestration, pipeline
from vista.core.config import PROJECT_ROOT, ConfigError, load_config


def profile_url(port: int) -> str:
    """The profile's own URL (user, password, database), on a port free for this test."""
    from sqlalchemy.engine import make_url

    url = make_url(load_config("airflow-postgres", environ={}).airflow.sql_alchemy_conn)
    return url.set(port=port).render_as_string(hide_password=False)


def metadata(server: Server, query: str) -> list[tuple]:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user,
                                  password=server.password, dbname=server.database)  # fmt: skip
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()
    finally:
        connection.close()


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        stop_tree(process)


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


@pytest.mark.slow
def test_local_executor_on_postgres_runs_the_chain_and_keeps_its_metadata_there(tmp_path):
    cfg = tiny_config(tmp_path)
    as_of = pipeline.default_as_of(cfg)
    url, port = profile_url(free_port()), free_port()
    # not under tmp_path: as root the server runs as the `postgres` account, which may not
    # enter pytest's private (0700) temp root
    folder = Path(tempfile.mkdtemp(prefix="vista-pg-"))
    env = {**os.environ, "VISTA_AIRFLOW_ADMIN_PASSWORD": PASSWORD,
           "VISTA__AIRFLOW__SQL_ALCHEMY_CONN": url, "VISTA__AIRFLOW__EXECUTOR": "LocalExecutor",
           **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
              for k in ("state", "lake", "reports")}}  # fmt: skip
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "standalone.log").open("w")
    process = None
    try:
        with local_postgres(url, folder) as server:
            assert addresses(server.port)
            assert addresses(server.port) <= LOOPBACK
            # `vista airflow-ui` migrates the database first, then starts Airflow
            process = subprocess.Popen(
                [vista, "airflow-ui", "--profile", "tiny", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            trigger_chain_and_wait(base, process, as_of)
            stop(process)  # before reading: the scheduler writes no more

            # what the scheduler did is in PostgreSQL, read without Airflow in between
            dag_runs = metadata(server, "SELECT dag_id, run_type, state FROM dag_run")
            assert sorted(dag_runs) == sorted(
                [("vista_ingest", "manual", "success")]
                + [(d, "asset_triggered", "success") for d in orchestration.CHAIN[1:]]
            )
            done = metadata(server, "SELECT count(*) FROM task_instance WHERE state = 'success'")
            assert done[0][0] >= len(orchestration.CHAIN)
        # Airflow 3 keeps no executor name in the database (job.executor_class stays
        # empty); the scheduler names the one it loaded
        assert re.search(
            r"Loaded executor: \S*LocalExecutor", (tmp_path / "standalone.log").read_text()
        )
        home = cfg.paths.state / "airflow"
        assert not list(home.rglob("*.db")), "Airflow made a SQLite database after all"
        assert (cfg.paths.reports / as_of / "run.json").exists()
    finally:
        stop(process)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
