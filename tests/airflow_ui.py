"""Driving a real Airflow that `vista airflow-ui` started (scheduler, DAG processor,
triggerer, API server): the REST calls, its log, its metadata in PostgreSQL, and stopping
the process tree. Used by tests/test_browser.py (the chain on PostgreSQL, from the UI),
tests/test_dag.py and tests/test_airflow_postgres.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from vista import orchestration


def call(url: str, token: str | None = None, body: dict | None = None, method: str = "GET"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_token(base: str, process: subprocess.Popen, password: str, seconds: int = 240) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "vista airflow-ui exited"
        try:
            got = call(f"{base}/auth/token", body={"username": "admin", "password": password},
                       method="POST")  # fmt: skip
            return got["access_token"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(3)
    raise AssertionError(f"the API server did not answer within {seconds} s")


def wait_for_text(path: Path, pattern: str, process: subprocess.Popen, seconds: int = 120):
    """The first match of ``pattern`` in the log ``process`` writes to ``path``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := re.search(pattern, path.read_text()):
            return found
        assert process.poll() is None, path.read_text()[-3000:]
        time.sleep(1)
    raise AssertionError(f"no {pattern!r} in {path} after {seconds} s")


def wait_for_dags(base: str, token: str, seconds: int = 180) -> dict[str, bool]:
    """dag_id -> is_paused of the chain's DAGs, once the DAG processor registered all five."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        listed = {d["dag_id"]: d["is_paused"]
                  for d in call(f"{base}/api/v2/dags?limit=100", token)["dags"]}  # fmt: skip
        if set(orchestration.CHAIN) <= set(listed):
            return listed
        time.sleep(3)
    raise AssertionError(f"the DAGs were not registered within {seconds} s: {listed}")


def profile_url(port: int) -> str:
    """conf/airflow-postgres.yaml's metadata URL (user, password, database), on ``port``."""
    from sqlalchemy.engine import make_url

    from vista.core.config import load_config

    url = make_url(load_config("airflow-postgres", environ={}).airflow.sql_alchemy_conn)
    return url.set(port=port).render_as_string(hide_password=False)


def metadata(server, query: str) -> list[tuple]:
    """``query``'s rows from a local PostgreSQL (devservers.postgres_local.Server), read
    without Airflow in between."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user,
                                  password=server.password, dbname=server.database)  # fmt: skip
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()
    finally:
        connection.close()


def stop_tree(process: subprocess.Popen) -> None:
    """Standalone's components start sessions of their own: stop every descendant."""
    import psutil

    tree = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        _, alive = psutil.wait_procs([p for p in map(_process, tree) if p], timeout=20)
        if not alive:
            break
    process.wait(timeout=30)


def _process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None
