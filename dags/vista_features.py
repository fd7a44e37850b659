"""
### vista_features

``feast apply`` of the feature repo (the summaries of the current summarizer version,
the raw-history features, the services), then materialization into the online store up
to the end of the snapshot day, with a read-back check. Scheduled on
``vista_summaries``; updates ``vista_features``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from vista import orchestration as orc


@dag(
    schedule=[orc.asset("summaries")],
    tags=["vista", "features", "feast"],
    doc_md=__doc__,
    **orc.dag_settings("vista_features"),
)
def vista_features():
    @task(outlets=[orc.asset("features")])
    def publish_features() -> dict:
        result = orc.run_step("publish_features")
        orc.announce("features", result)
        return result

    publish_features()


vista_features()
