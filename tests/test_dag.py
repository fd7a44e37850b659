"""The DAG: integrity, a light dags folder, and real `airflow dags test` runs."""

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from spark_jobs import lake
from vista import airflow_runner, pipeline
from vista.config import PROJECT_ROOT

from .conftest import tiny_config

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
    assert "vista_pipeline" in dagbag.dags


def test_dag_has_tags_retries_params_and_docs(dagbag):
    dag = dagbag.dags["vista_pipeline"]
    assert {"vista", "features"} <= set(dag.tags)
    assert dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
    knobs = {"profile", "as_of", "regenerate", "full_rebuild", "retrain_summarizer", "evaluate"}
    assert knobs <= set(dag.params.keys())
    for name in dag.params:
        assert dag.params.get_param(name).description, name
    order = [t.task_id for t in dag.topological_sort()]
    assert order.index("build_histories") < order.index("summarize")
    assert order.index("validate_summaries") < order.index("publish_features")
    assert order.index("build_raw_features") < order.index("publish_features")
    assert order.index("train_and_evaluate_ranker") < order.index("evaluate_and_report")
    assert order[-1] == "write_report"


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


@pytest.mark.slow
def test_dag_runs_end_to_end_on_tiny_data(tmp_path):
    cfg = tiny_config(tmp_path)
    as_of = pipeline.default_as_of(cfg)
    result = _dag_test(cfg, as_of, "--evaluate")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranker AUC" in result.stdout
    summary = json.loads((cfg.paths.reports / "latest" / "summary.json").read_text())
    assert summary["as_of"] == as_of
    head = summary["headline"]
    assert 0 < head["ranker_auc"] < 1
    assert head["oracle_auc"] > 0.5
    assert head["summarizer_version"].startswith("s-")
    for table in (pipeline.EVENTS, pipeline.HISTORIES):
        assert lake.read_arrow(cfg.paths.table(table)).num_rows > 0
    assert pipeline.summarizer_versions(cfg) == [head["summarizer_version"]]
    assert lake.read_arrow(pipeline.summaries_path(cfg)).num_rows > 0
    docs = cfg.paths.reports / as_of / "data_docs" / "index.html"
    assert docs.exists()
    assert "user_summaries" in docs.read_text()
    assert set(head["evaluation_auc"]) == {"vista", "din_last100", "sim_category",
                                           "full_attention", "oracle"}  # fmt: skip
    assert "## AUC by history length" in (cfg.paths.reports / as_of / "report.md").read_text()


@pytest.mark.slow
def test_failing_critical_suite_stops_the_dag_and_commits_nothing_downstream(tmp_path):
    cfg = tiny_config(tmp_path)
    pipeline.generate_data(cfg)
    events = cfg.paths.table(pipeline.EVENTS)
    bad = lake.read_arrow(events).slice(0, 2)
    bad = bad.set_column(0, "user_id", pa.array([-7, -7], pa.int64()))
    lake.write_arrow(events, bad, ["event_date"], mode="append")
    events_version = lake.table_version(events)
    result = _dag_test(cfg, pipeline.default_as_of(cfg))
    assert result.returncode != 0
    assert "critical suite 'events' failed" in result.stderr
    assert "column 'user_id'" in result.stderr
    assert lake.table_version(events) == events_version
    assert not lake.table_exists(cfg.paths.table(pipeline.HISTORIES))
    assert pipeline.summarizer_versions(cfg) == []
