"""
### vista_summaries

The frozen VISTA summarizer (trained once per settings, or anew with
``retrain_summarizer``) turns every changed history into K summary tokens in a Spark
UDF; unchanged users keep their summary. The critical ``user_summaries`` suite and the
drift check against the previous snapshot (warns) run before the ``vista_summaries``
asset is updated. Scheduled on ``vista_histories``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from vista import orchestration as orc


@dag(
    schedule=[orc.asset("histories")],
    tags=["vista", "summaries", "pytorch", "spark"],
    doc_md=__doc__,
    **orc.dag_settings("vista_summaries"),
)
def vista_summaries():
    @task
    def train_summarizer(params=None) -> dict:
        retrain = bool(params.get("retrain_summarizer"))
        return orc.run_step("train_summarizer", progress=False, retrain=retrain)

    @task
    def summarize(_model: dict, params=None) -> dict:
        return orc.run_step("summarize", full=bool(params.get("full_rebuild")))

    @task(outlets=[orc.asset("summaries")])
    def validate_summaries(_summaries: dict) -> dict:
        result = orc.run_step("validate_summaries")
        orc.announce("summaries", {"summaries_suite_success": str(result["success"])})
        return result

    validate_summaries(summarize(train_summarizer()))


vista_summaries()
