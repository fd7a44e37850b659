"""The DAG: integrity, a light dags folder, and real `airflow dags test` runs."""

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from devservers.ports import free_port
from tests.airflow_ui import stop_tree, wait_for_text
from vista import airflow_runner, orchestration, pipeline, state
from vista.core import lake, names
from vista.core.config import PROJECT_ROOT
from vista.core.snapshot import Snapshot

from .conftest import served_ranker_auc, tiny_config

HEAVY = ("torch", "pyspark", "feast", "great_expectations", "deltalake", "pandas")


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("dagbag"))
    os.environ.update({k: v for k, v in airflow_runner.airflow_environment(cfg).items()
                       if k.startswith("AIRFLOW")})  # fmt: skip
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(orchestration.CHAIN) <= set(dagbag.dags)


def test_each_dag_has_tags_retries_typed_params_and_docs(dagbag):
    for dag_id in orchestration.CHAIN:
        dag = dagbag.dags[dag_id]
        assert "vista" in dag.tags
        assert dag.doc_md
        for task in dag.tasks:
            assert task.retries >= 1, task.task_id
        assert set(dag.params.keys()) == set(orchestration.DAG_PARAMS[dag_id])
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.description, (dag_id, name)
            assert param.schema.get("type"), (dag_id, name)


def test_dags_chain_by_asset(dagbag):
    """Each DAG after the first is scheduled on the asset the one before produces."""
    produced = {}
    for dag_id in orchestration.CHAIN:
        for task in dagbag.dags[dag_id].tasks:
            for outlet in task.outlets:
                produced[outlet.uri] = dag_id
    uris = orchestration.ASSET_URIS
    assert produced == {uris["events"]: "vista_ingest", uris["histories"]: "vista_histories",
                        uris["summaries"]: "vista_summaries", uris["features"]: "vista_features"}  # fmt: skip
    for before, after in zip(orchestration.CHAIN, orchestration.CHAIN[1:], strict=False):
        schedule = dagbag.dags[after].schedule
        assert [a.uri for a in schedule] == [u for u, d in produced.items() if d == before]
    # the asset is only updated once the data-quality suite has passed
    validate = dagbag.dags["vista_ingest"].get_task("validate_events")
    assert [o.uri for o in validate.outlets] == [uris["events"]]
    order = [t.task_id for t in dagbag.dags["vista_histories"].topological_sort()]
    assert order == ["build_histories", "validate_histories", "build_raw_features"]


def test_as_of_comes_from_params_then_asset_event_then_logical_date(tmp_path, monkeypatch):
    import types

    monkeypatch.delenv("VISTA_PROFILE", raising=False)
    event = types.SimpleNamespace(extra={"as_of": "2026-07-30", "profile": "tiny"},
                                  timestamp=Snapshot.of("2026-07-30"))  # fmt: skip
    older = types.SimpleNamespace(extra={"as_of": "2026-07-01", "profile": "tiny"},
                                  timestamp=Snapshot.of("2026-07-01"))  # fmt: skip
    triggered = {"params": {}, "triggering_asset_events": {"events": [event, older]},
                 "logical_date": None}  # fmt: skip
    cfg, as_of = orchestration.run_config(triggered)
    assert (cfg.profile, as_of.date().isoformat()) == ("tiny", "2026-07-30")
    chosen = {**triggered, "params": {"as_of": "2026-07-15"}}
    assert orchestration.run_config(chosen)[1].date().isoformat() == "2026-07-15"
    manual = {"params": {"profile": "tiny"}, "logical_date": Snapshot.of("2026-07-20")}
    assert orchestration.run_config(manual)[1].date().isoformat() == "2026-07-20"


def test_dag_files_import_no_heavy_modules():
    code = (
        "import sys, runpy, glob\n"
        f"[runpy.run_path(p) for p in glob.glob({str(PROJECT_ROOT / 'dags')!r} + '/*.py')]\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _dag_test(cfg, as_of: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
                            for k in ("state", "lake", "reports")}}  # fmt: skip
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    return subprocess.run(
        [vista, "dag-test", "--profile", "tiny", "--as-of", as_of, *flags],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def _vista(cfg, *args: str, timeout: int = 900, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
                            for k in ("state", "lake", "reports")}, **settings}  # fmt: skip
    env.pop(airflow_runner.PASSWORD_ENV, None)
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    return subprocess.run([vista, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def _metadata(cfg, query: str) -> list[tuple]:
    """The SQLite metadata database that `dags test` left, read without Airflow."""
    with sqlite3.connect(cfg.paths.state / "airflow" / "airflow.db") as db:
        return db.execute(query).fetchall()


def _registered(cfg) -> dict[str, bool]:
    """dag_id -> is_paused, as the metadata database holds them."""
    return {d: bool(p) for d, p in _metadata(cfg, "SELECT dag_id, is_paused FROM dag")}


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """`vista backfill` over the two 2-hourly snapshots up to the tiny data's cutoff
    (22:00 the day before, then midnight), on SQLite: the chain of five DAGs through
    `airflow dags test` with hourly logical dates, the first snapshot from scratch, the
    second incremental from it. What the tests check of it is read here, before
    test_dag_runs_end_to_end_on_tiny_data runs the last snapshot again on the same lake
    at the daily cadence (a lake moves between cadences without a migration)."""
    cfg = tiny_config(tmp_path_factory.mktemp("backfill"))
    last = Snapshot.of(pipeline.default_as_of(cfg))
    first = Snapshot.of(last - dt.timedelta(hours=2), 2).iso
    result = _vista(cfg, "backfill", "--profile", "tiny", "--start", first, "--end", last.iso,
                    timeout=1500, VISTA__SNAPSHOTS__EVERY_HOURS="2")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seen = {
        "stdout": result.stdout.splitlines(),
        "partitions": {p["as_of_date"] for p in lake.open_table(
            cfg.paths.table(names.HISTORIES)).partitions()},
        "later_histories": json.loads((cfg.paths.reports / last.iso / "steps" /
                                       "build_histories.json").read_text()),
        "summaries": [(cfg.paths.reports / d / "run.json").exists() for d in (first, last.iso)],
        "registered": _registered(cfg),
        "queued": _metadata(cfg, "SELECT target_dag_id FROM asset_dag_run_queue"),
    }  # fmt: skip
    return cfg, first, last.iso, seen


@pytest.mark.slow
def test_backfill_runs_the_chain_for_each_date_oldest_first(backfilled):
    _, first, last, seen = backfilled
    assert seen["stdout"] == [f"{first}: done", f"{last}: done"]
    assert seen["partitions"] == {first, last}
    assert seen["later_histories"]["mode"] == f"incremental from {first}"
    assert seen["summaries"] == [True, True]
    # `dags test` registered the five DAGs unpaused, and their runs' asset events queued
    # nothing that a scheduler would start again
    assert seen["registered"] == dict.fromkeys(orchestration.CHAIN, False)
    assert seen["queued"] == []


@pytest.mark.slow
def test_dag_runs_end_to_end_on_tiny_data(backfilled):
    """`vista dag-test --evaluate` (`make run`, with the evaluation) for the last date, on
    the lake the backfill left: every task of the five DAGs runs, the steps whose inputs
    did not change commit nothing, the ranker and the evaluation run in full."""
    cfg, _, as_of, _ = backfilled
    result = _vista(cfg, "dag-test", "--profile", "tiny", "--as-of", as_of, "--evaluate")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranker AUC" in result.stdout
    assert "paused in Airflow" not in result.stderr
    for dag_id in orchestration.CHAIN:
        assert f"running DAG {dag_id}" in result.stderr
    summary = json.loads((cfg.paths.reports / "latest" / "run.json").read_text())
    assert summary["as_of"] == as_of
    steps = summary["steps"]  # recorded by five DAG runs, gathered by the last
    for key in ("ingest_events", "validate_events", "validate_histories", "validate_summaries",
                "train_and_evaluate_ranker"):  # fmt: skip
        assert key in steps, key
    assert steps["validate_histories"]["success"]
    assert steps["train_and_evaluate_ranker"]["training_set_quality"]["success"]
    head = summary["headline"]
    # the headline is the served ranker's AUC, recomputed here from its artifact; and
    # ranker_v1 is the report's VISTA with the first seed (same frame, seed and spec):
    # the two code paths agree to the bit
    assert head["ranker_auc"] == pytest.approx(served_ranker_auc(cfg, as_of), abs=1e-9)
    evaluation = json.loads((cfg.paths.reports / as_of / "evaluation.json").read_text())
    first_seed = evaluation["variants"]["vista"]["runs"][0]["metrics"]["all"]["auc"]
    # ranker_v1 chooses its pooling as the report's VISTA does (lowest validation loss)
    vista_pooling = evaluation["variants"]["vista"]["pooling"]
    assert steps["train_and_evaluate_ranker"]["pooling"] == vista_pooling
    assert head["ranker_auc"] == pytest.approx(first_seed, abs=1e-9)
    assert head["oracle_auc"] > 0.5
    assert head["summarizer_version"].startswith("s-")
    for table in (names.EVENTS, names.HISTORIES):
        assert lake.read_arrow(cfg.paths.table(table)).num_rows > 0
    assert state.summarizer_versions(cfg) == [head["summarizer_version"]]
    assert lake.read_arrow(state.summaries_path(cfg)).num_rows > 0
    docs = cfg.paths.reports / as_of / "data_docs" / "index.html"
    assert docs.exists()
    assert "user_summaries" in docs.read_text()
    assert set(head["evaluation_auc"]) == {"blind", "vista", "din_last100", "sim_category",
                                           "full_attention", "oracle"}  # fmt: skip
    assert "## AUC by history length" in (cfg.paths.reports / as_of / "report.md").read_text()
    assert _registered(cfg) == dict.fromkeys(orchestration.CHAIN, False)


@pytest.mark.slow
def test_a_dag_paused_by_hand_is_named_at_the_ui_start_with_the_command_that_unpauses_it(
    backfilled,
):
    cfg, *_ = backfilled
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    env = {**os.environ, **airflow_runner.airflow_environment(cfg)}
    subprocess.run([airflow, "dags", "pause", "vista_ranker"], env=env, capture_output=True,
                   timeout=300, check=True)  # fmt: skip
    assert _registered(cfg)["vista_ranker"] is True

    log = cfg.paths.state / "airflow-ui.log"
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    ui_env = {**os.environ, **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
                               for k in ("state", "lake", "reports")}}  # fmt: skip
    with log.open("w") as out:
        ui = subprocess.Popen([vista, "airflow-ui", "--profile", "tiny", "--port", str(free_port())],
                              env=ui_env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        notice = wait_for_text(log, r"paused in Airflow: .*", ui).group(0)
    finally:
        stop_tree(ui)  # the notice comes before Airflow's components start
    assert notice.startswith("paused in Airflow: vista_ranker: ")
    command = notice.rsplit("unpause: ", 1)[1]
    assert command == "vista unpause --profile tiny"
    done = _vista(cfg, *command.split()[1:], timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unpaused: vista_ranker"
    assert _registered(cfg) == dict.fromkeys(orchestration.CHAIN, False)


def test_ui_admin_password_comes_from_the_environment_or_is_generated_once(tmp_path):
    cfg = tiny_config(tmp_path)
    given, origin = airflow_runner.admin_password(cfg, {airflow_runner.PASSWORD_ENV: "from-env"})
    assert (given, origin) == ("from-env", "$VISTA_AIRFLOW_ADMIN_PASSWORD")
    stored = airflow_runner.passwords_file(cfg)
    assert json.loads(stored.read_text()) == {"admin": "from-env"}
    assert stored.stat().st_mode & 0o077 == 0  # readable by its owner only

    other = tiny_config(tmp_path / "other")
    first, origin = airflow_runner.admin_password(other, {})
    assert origin.startswith("generated now")
    assert len(first) >= 16
    again, origin = airflow_runner.admin_password(other, {})
    assert (again, origin.split(",")[0]) == (first, "generated earlier")
    third = tiny_config(tmp_path / "third")
    assert airflow_runner.admin_password(third, {})[0] != first  # random, never fixed

    env = airflow_runner.standalone_environment(other, 8080)
    assert env["AIRFLOW__API__PORT"] == "8080"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        airflow_runner.passwords_file(other))  # fmt: skip


def test_backfill_rejects_an_end_before_its_start():
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    result = subprocess.run(
        [vista, "backfill", "--profile", "tiny", "--start", "2026-07-31", "--end", "2026-07-30"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--end 2026-07-30 is before --start 2026-07-31" in result.stderr


def test_the_chain_runner_sends_each_dags_output_to_its_own_log(tmp_path):
    """Everything a DAG writes (Python, the C level, child processes such as Spark's JVM)
    lands in that DAG's log; the process's own output is back afterwards."""
    log = tmp_path / "logs" / "vista_ingest.log"
    code = (
        "import os, subprocess, sys\n"
        "from vista.airflow_chain import output_to\n"
        f"with output_to(__import__('pathlib').Path({str(log)!r})):\n"
        "    print('from python')\n"
        "    os.write(1, b'from the file descriptor\\n')\n"
        "    subprocess.run([sys.executable, '-c', 'import sys; print(\"from a child\", file=sys.stderr)'])\n"
        "print('after')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.dirname(__file__)))  # fmt: skip
    assert log.read_text().splitlines() == [
        "from python",
        "from the file descriptor",
        "from a child",
    ]
    assert done.stdout == "after\n"
