"""
### vista_ingest

Events into the lake for one snapshot date (``as_of``): the synthetic generator, or the
profile's source files (CSV, Parquet, JSON lines or a Delta table through a column
mapping; bad rows go to the ``quarantine`` table with their reason). The critical
``events`` suite must pass before the ``vista_events`` asset is updated, which
schedules ``vista_histories``.

Schedule: ``$VISTA_INGEST_SCHEDULE`` (e.g. ``@daily``; manual runs only by default).
Backfill: ``vista backfill --start ... --end ...`` on one machine, or
``airflow backfill create --dag-id vista_ingest --from-date ... --to-date ...``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from vista import orchestration as orc


@dag(
    schedule=orc.ingest_schedule(),
    tags=["vista", "ingest", "data-quality"],
    doc_md=__doc__,
    **orc.dag_settings("vista_ingest"),
)
def vista_ingest():
    @task
    def ingest_events(params=None) -> dict:
        return orc.run_step("ingest_events", force=bool(params.get("regenerate")))

    @task(outlets=[orc.asset("events")])
    def validate_events(_ingested: dict) -> dict:
        result = orc.run_step("validate_events")
        orc.announce("events", {"events_suite_success": str(result["success"])})
        return result

    validate_events(ingest_events())


vista_ingest()
