"""The data engineer's and the service owner's paths walked in a real browser (Debian's
Chromium, tests/browser.py), from the commands the README gives, on the tiny profile with
Airflow's metadata in PostgreSQL (conf/airflow-postgres.yaml: a real PostgreSQL from
Debian's binaries, the LocalExecutor):

- `vista airflow-ui` migrates the database, generates and prints the admin password, and
  its DAG processor registers the five DAGs unpaused;
- in the Airflow UI: sign in with that password, trigger vista_ingest from its trigger
  form with an `as_of`, and the scheduler runs the other four DAGs by asset, on a fresh
  lake, to success; what it did is in PostgreSQL, read back without Airflow, and Airflow
  made no SQLite database;
- in `vista serve`'s /docs: "Try it out" scores its example request, a known user;
- all the while, every socket that PostgreSQL and the two process trees listen on is on
  loopback.

This is the suite's one run of the chain under a real scheduler. `airflow dags test` of
the chain, the backfill and the paused-DAG notice are tests/test_dag.py's.
Screenshots of each page land in the run's report folder (reports/<as_of>/screenshots)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

import psutil
import pytest

from devservers.ports import free_port
from devservers.postgres_local import local_postgres
from tests.airflow_ui import (
    call,
    metadata,
    profile_url,
    stop_tree,
    wait_for_dags,
    wait_for_text,
    wait_for_token,
)
from tests.browser import chromium, chromium_path, screenshot
from tests.conftest import served_ranker_auc, tiny_config
from tests.sockets import LOOPBACK, addresses, listening
from vista import airflow_runner, pipeline, serving
from vista.orchestration import CHAIN

BIN = Path(sys.executable).parent


def wait_for_chain(api, base: str, ingest_run: str, watch) -> dict[str, dict]:
    """The trigger's vista_ingest run and the four asset-triggered runs after it, once all
    five succeeded (fails at the first failed one); ``watch`` is called on every poll."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        watch()
        found = {
            "vista_ingest": api.get(f"{base}/api/v2/dags/vista_ingest/dagRuns/{ingest_run}").json()
        }
        for dag_id in CHAIN[1:]:
            listed = api.get(f"{base}/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]
            assert len(listed) <= 1, (dag_id, listed)  # the trigger's, and no other
            if listed:
                assert listed[0]["run_type"] == "asset_triggered", listed
                found[dag_id] = listed[0]
        states = {d: r["state"] for d, r in found.items()}
        assert "failed" not in states.values(), states
        if len(found) == len(CHAIN) and set(states.values()) == {"success"}:
            return found
        time.sleep(5)
    raise AssertionError(f"the chain did not finish in 900 s: {states}")


def wait_for_http(url: str, process: subprocess.Popen, log: Path, seconds: int = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            call(url)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@pytest.mark.slow
def test_a_data_engineer_and_a_service_owner_walk_their_pages_in_a_browser(tmp_path):
    chromium_path()  # skips before the set-up when there is no browser
    cfg = tiny_config(tmp_path)
    as_of = pipeline.default_as_of(cfg)
    shots = cfg.paths.reports / as_of / "screenshots"
    url = profile_url(free_port())
    env = {**os.environ, "VISTA__AIRFLOW__SQL_ALCHEMY_CONN": url,
           "VISTA__AIRFLOW__EXECUTOR": "LocalExecutor",
           **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
              for k in ("state", "lake", "reports")}}  # fmt: skip
    env.pop(airflow_runner.PASSWORD_ENV, None)  # a new user's start: a generated password
    # not under tmp_path: as root the server runs as the `postgres` account, which may not
    # enter pytest's private (0700) temp root
    folder = Path(tempfile.mkdtemp(prefix="vista-pg-"))

    ui_port, serve_port = free_port(), free_port()
    base, docs = f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{serve_port}"
    ui_log, serve_log = tmp_path / "airflow-ui.log", tmp_path / "serve.log"
    processes: list[subprocess.Popen] = []
    sockets: set[tuple[str, str, int]] = set()

    def watch() -> None:
        for process in processes:
            sockets.update(listening(process.pid))

    try:
        with local_postgres(url, folder) as server:
            assert addresses(server.port)
            assert addresses(server.port) <= LOOPBACK
            # `vista airflow-ui` migrates the database first, then starts Airflow
            with ui_log.open("w") as out:
                ui = subprocess.Popen(
                    [str(BIN / "vista"), "airflow-ui", "--profile", "tiny", "--port",
                     str(ui_port)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            processes.append(ui)
            password = wait_for_text(ui_log, r"user: admin  password: (\S+)", ui, 300).group(1)
            token = wait_for_token(base, ui, password)
            assert wait_for_dags(base, token) == dict.fromkeys(CHAIN, False)  # all unpaused

            outside: list[str] = []
            with chromium() as browser:
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                context.on("request", lambda r: None if r.url.startswith(
                    (base, docs, "data:", "blob:")) else outside.append(r.url))  # fmt: skip
                # make test runs this beside other heavy tests on two cores: the UI's pages
                # (the asset graph most) can take longer than Playwright's 30 s default
                context.set_default_timeout(180_000)
                page = context.new_page()

                # the data engineer: sign in, trigger vista_ingest with an as_of from its form
                page.goto(f"{base}/")
                page.get_by_label("Username").fill("admin")
                page.get_by_label("Password").fill(password)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(lambda url: "/auth/login" not in url)
                page.goto(f"{base}/dags/vista_ingest")
                page.get_by_test_id("trigger-dag-button").click()
                page.locator("#element_as_of").fill(as_of)
                with page.expect_response(lambda r: r.request.method == "POST"
                                          and r.url.endswith("/dags/vista_ingest/dagRuns")) as sent:  # fmt: skip
                    page.get_by_test_id("trigger-dag-submit").click()
                assert sent.value.status == 200, sent.value.text()
                triggered = sent.value.json()
                assert (triggered["triggered_by"], triggered["conf"]["as_of"]) == ("ui", as_of)

                # ... and watch the five runs through the API, signed in as the browser is
                runs = wait_for_chain(page.request, base, triggered["dag_run_id"], watch)
                page.goto(f"{base}/dags")
                names = page.get_by_test_id("dag-id")
                names.nth(len(CHAIN) - 1).wait_for()
                assert sorted(names.all_inner_texts()) == sorted(CHAIN)
                page.set_viewport_size({"width": 1400, "height": 1000})  # all five cards
                screenshot(page, shots, "airflow-dag-list.png")

                # the finished chain as one graph: the ranker's run with every DAG dependency
                page.goto(f"{base}/dags/vista_ranker/runs/{runs['vista_ranker']['dag_run_id']}")
                page.get_by_role("button", name=re.compile("Show Graph")).click()
                page.get_by_role("button", name="Options").click()
                page.get_by_role("combobox").filter(has_text="Only tasks").click()
                page.get_by_role("option", name="All Dag Dependencies").click()
                page.keyboard.press("Escape")
                page.get_by_role("button", name="Collapse Details Panel").click()
                for dag_id in CHAIN:
                    page.get_by_test_id(f"rf__node-dag:{dag_id}").wait_for()
                nodes = {n.get_attribute("data-id"): n.inner_text().split("\n")
                         for n in page.locator(".react-flow__node").all()}  # fmt: skip
                assets = sorted(text[0] for key, text in nodes.items() if key.startswith("asset:"))
                assert assets == ["vista_events", "vista_features", "vista_histories",
                                  "vista_summaries"]  # fmt: skip
                # the ranker's run, drawn in it: its three tasks, each marked success
                tasks = {key: text for key, text in nodes.items() if ":" not in key}
                assert len(tasks) == 3, nodes
                assert all(text[-1].strip() == "success" for text in tasks.values()), tasks
                # wide and low: the chain is one row of nine nodes and the ranker's box
                page.set_viewport_size({"width": 1600, "height": 520})
                page.get_by_role("button", name="Fit View").click()
                page.wait_for_timeout(1000)  # the fit is animated
                screenshot(page, shots, "airflow-asset-graph.png")
                page.set_viewport_size({"width": 1400, "height": 900})

                # the service owner: `vista serve` on what the chain left; the synthetic
                # snapshot is dated: served today, each summary would be past the profile's
                # ttl and answered cold-start; this ttl covers the days since the snapshot
                ttl = (dt.date.today() - dt.date.fromisoformat(as_of)).days + 30
                with serve_log.open("w") as out:
                    service = subprocess.Popen(
                        [str(BIN / "vista"), "serve", "--profile", "tiny", "--port",
                         str(serve_port)],
                        env={**env, "VISTA__FEATURES__TTL_DAYS": str(ttl)}, stdout=out,
                        stderr=subprocess.STDOUT, start_new_session=True,
                    )  # fmt: skip
                processes.append(service)
                wait_for_http(f"{docs}/health", service, serve_log)
                watch()
                # /docs' "Try it out" on its example, a known user
                page.goto(f"{docs}/docs")
                block = page.locator(".opblock-post")
                block.locator(".opblock-summary").click()
                block.get_by_role("button", name="Try it out").click()
                body = json.loads(block.locator("textarea.body-param__text").input_value())
                assert body == serving.SCORE_EXAMPLE
                block.get_by_role("button", name="Execute").click()
                answer = block.locator(".live-responses-table tbody tr.response")
                assert answer.locator(".response-col_status").inner_text().strip() == "200"
                shown = json.loads(
                    answer.locator(".response-col_description pre").first.inner_text())  # fmt: skip
                assert (shown["user_id"], shown["summary_status"]) == (1, "fresh")
                assert shown["history_length"] > 0
                assert shown == call(f"{docs}/score", body=body, method="POST")
                screenshot(block, shots, "service-docs-try-it-out.png")
            assert outside == []  # the UI and /docs asked no other host for anything

            watch()
            ports = {port for _, _, port in sockets}
            assert {ui_port, serve_port} <= ports, sockets
            assert {s for s in sockets if s[1] not in LOOPBACK} == set()

            stop_tree(ui)  # before reading: the scheduler writes no more
            # what the scheduler did is in PostgreSQL, read without Airflow in between
            dag_runs = metadata(server, "SELECT dag_id, run_type, state FROM dag_run")
            assert sorted(dag_runs) == sorted(
                [("vista_ingest", "manual", "success")]
                + [(d, "asset_triggered", "success") for d in CHAIN[1:]]
            )
            done = metadata(server, "SELECT count(*) FROM task_instance WHERE state = 'success'")
            assert done[0][0] >= len(CHAIN)
        # Airflow 3 keeps no executor name in the database (job.executor_class stays
        # empty); the scheduler names the one it loaded
        assert re.search(r"Loaded executor: \S*LocalExecutor", ui_log.read_text())
        assert not list((cfg.paths.state / "airflow").rglob("*.db")), "a SQLite database"

        # what the chain left: this date's summary, its AUC the served ranker's
        summary = json.loads((cfg.paths.reports / as_of / "run.json").read_text())
        assert summary["as_of"] == as_of  # the date travelled in the asset events
        served = served_ranker_auc(cfg, as_of)
        assert summary["headline"]["ranker_auc"] == pytest.approx(served, abs=1e-9)
    finally:
        for process in processes:
            try:
                stop_tree(process)
            except (psutil.Error, urllib.error.URLError, subprocess.TimeoutExpired):
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)
