"""
### vista_histories

Each user's whole history (up to ``histories.max_history`` events) as of the snapshot
date, incrementally from the previous snapshot unless ``full_rebuild``; then the
critical ``user_histories`` suite, and the baselines' raw-history features. Scheduled
on the ``vista_events`` asset; updates ``vista_histories``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from vista import orchestration as orc


@dag(
    schedule=[orc.asset("events")],
    tags=["vista", "histories", "spark"],
    doc_md=__doc__,
    **orc.dag_settings("vista_histories"),
)
def vista_histories():
    @task
    def build_histories(params=None) -> dict:
        return orc.run_step("build_histories", full=bool(params.get("full_rebuild")))

    @task
    def validate_histories(_histories: dict) -> dict:
        return orc.run_step("validate_histories")

    @task(outlets=[orc.asset("histories")])
    def build_raw_features(_dq: dict) -> dict:
        result = orc.run_step("build_raw_features")
        orc.announce("histories", result)
        return result

    build_raw_features(validate_histories(build_histories()))


vista_histories()
