"""A real Airflow (`vista airflow-ui`: `airflow standalone`, scheduler + API server):
one triggered vista_ingest run sets off the other four DAGs through their assets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import served_ranker_auc, tiny_config
from vista import orchestration, pipeline
from vista.ports import free_port

PASSWORD = "a-test-password"


def call(url: str, token: str | None = None, body: dict | None = None, method: str = "GET"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_token(base: str, process: subprocess.Popen, seconds: int = 240) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "airflow standalone exited"
        try:
            got = call(f"{base}/auth/token", body={"username": "admin", "password": PASSWORD},
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


@pytest.mark.slow
def test_scheduler_runs_the_whole_chain_by_asset_from_one_trigger(tmp_path):
    cfg = tiny_config(tmp_path)
    as_of = pipeline.default_as_of(cfg)
    port = free_port()
    env = {**os.environ, "VISTA_AIRFLOW_ADMIN_PASSWORD": PASSWORD,
           **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
              for k in ("state", "lake", "reports")}}  # fmt: skip
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    log = (tmp_path / "standalone.log").open("w")
    process = subprocess.Popen(
        [vista, "airflow-ui", "--profile", "tiny", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        token = trigger_chain_and_wait(base, process, as_of)
        for dag_id in orchestration.CHAIN[1:]:
            (run,) = runs(base, token, dag_id)
            assert run["run_type"] == "asset_triggered", dag_id
            assert run["state"] == "success", dag_id
        summary = json.loads((cfg.paths.reports / as_of / "summary.json").read_text())
        assert summary["as_of"] == as_of  # the date travelled in the asset events
        # the recorded AUC is the served ranker's, recomputed here from its artifact
        served = served_ranker_auc(cfg, as_of)
        assert summary["headline"]["ranker_auc"] == pytest.approx(served, abs=1e-9)
    finally:
        stop_tree(process)
        log.close()


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
