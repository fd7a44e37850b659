"""Driving a real Airflow that `vista airflow-ui` started (scheduler, DAG processor,
triggerer, API server): the REST calls, the chain's runs, and stopping the process tree.
Used by tests/test_browser.py (SQLite) and tests/test_airflow_postgres.py (PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from vista import orchestration

PASSWORD = "a-test-password"


def call(url: str, token: str | None = None, body: dict | None = None, method: str = "GET"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_token(
    base: str, process: subprocess.Popen, seconds: int = 240, password: str = PASSWORD
) -> str:
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


def runs(base: str, token: str, dag_id: str) -> list[dict]:
    return call(f"{base}/api/v2/dags/{dag_id}/dagRuns", token)["dag_runs"]


def trigger_chain_and_wait(base: str, process: subprocess.Popen, as_of: str) -> str:
    """Once the DAG processor has registered the five DAGs, trigger vista_ingest for
    ``as_of`` through the REST API and wait until the last DAG of the chain succeeded
    (fails at the first failed run); returns the API token."""
    token = wait_for_token(base, process)
    for _ in range(60):
        listed = {d["dag_id"] for d in call(f"{base}/api/v2/dags?limit=100", token)["dags"]}
        if set(orchestration.CHAIN) <= listed:
            break
        time.sleep(3)
    call(f"{base}/api/v2/dags/vista_ingest/dagRuns", token, method="POST",
         body={"logical_date": f"{as_of}T00:00:00Z", "conf": {"profile": "tiny"}})  # fmt: skip
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        last = runs(base, token, orchestration.CHAIN[-1])
        failed = [(d, r["state"]) for d in orchestration.CHAIN
                  for r in runs(base, token, d) if r["state"] == "failed"]  # fmt: skip
        assert not failed, failed
        if last and last[0]["state"] == "success":
            return token
        time.sleep(5)
    raise AssertionError(
        f"the chain did not finish in 900 s: {runs(base, token, orchestration.CHAIN[-1])}"
    )


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
