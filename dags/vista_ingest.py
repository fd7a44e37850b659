"""
### vista_ingest

Events into the lake for one snapshot (``as_of``, a whole hour UTC): the synthetic generator, or the
profile's source files (CSV, Parquet, JSON lines or a Delta table through a column
mapping; bad rows go to the ``quarantine`` table with their reason). The critical
``events`` suite must pass before the ``vista_events`` asset is updated, which
schedules ``vista_histories``.

Schedule: every ``snapshots.every_hours`` hours when the profile sets
``snapshots.scheduled`` (conf/hourly.yaml: every 2 hours, as the paper refreshes);
``$VISTA_INGEST_SCHEDULE`` (a cron or preset, or ``none``) overrides it; manual runs
only by default. A snapshot in the future, off the cadence or older than the last one
fails this DAG's first task before any work.
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
