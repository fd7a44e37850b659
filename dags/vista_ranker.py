"""
### vista_ranker

The ranker on the Feast training set: the critical ``training_set`` suite (checked on
the retrieved frames before any training), ranker_v1
(the candidate attends to the cached summary tokens) trained and evaluated on the
later window, optionally every raw-history baseline and the evaluation report
(``evaluate``), and the run summary ``reports/<as_of>/run.json``. Scheduled on
``vista_features``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from vista import orchestration as orc


@dag(
    schedule=[orc.asset("features")],
    tags=["vista", "ranker", "evaluation"],
    doc_md=__doc__,
    **orc.dag_settings("vista_ranker"),
)
def vista_ranker():
    @task
    def train_and_evaluate_ranker() -> dict:
        return orc.run_step("train_and_evaluate_ranker", progress=False)

    @task
    def evaluate_and_report(_ranker: dict, params=None) -> dict:
        if not params.get("evaluate"):
            return {"skipped": True}
        return orc.run_step("evaluate_and_report", progress=False)

    @task
    def write_run_summary(_evaluation: dict) -> str:
        return orc.run_step("write_run_summary")["path"]

    write_run_summary(evaluate_and_report(train_and_evaluate_ranker()))


vista_ranker()
