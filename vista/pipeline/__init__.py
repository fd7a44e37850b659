"""The pipeline's steps: each one call that the DAG, the CLI and the tests make alike.

    events -> histories -> summaries -> features -> ranker -> report

One module per stage: ``ingest`` (+ ``ingest_checks``), ``histories``, ``summaries``,
``publish`` (Feast), ``ranking``, ``report``; ``record`` keeps what each step returned
and gathers the run's record; ``partitions`` holds what they share. Every step reads and
writes the partition of its ``as_of`` date only, and writes each Delta table in one
commit, so a rerun for the same date changes nothing and a failed step leaves every
table at its last committed version.

``STEPS`` is the registry: the DAG tasks (``vista.orchestration.run_step``), the CLI
and the tests reach a step through it, by reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vista.pipeline.histories import (
    build_histories,
    build_raw_features,
    read_histories,
    validate_histories,
)
from vista.pipeline.ingest import ingest_events, ingest_files, ingest_source
from vista.pipeline.ingest_checks import validate_events
from vista.pipeline.partitions import check_snapshot, default_as_of
from vista.pipeline.publish import publish_features
from vista.pipeline.ranking import (
    mark_cold_start,
    train_and_evaluate_ranker,
    training_set,
    validate_training_set,
)
from vista.pipeline.record import (
    RUN_STEPS,
    RUN_SUMMARY_FILE,
    format_run_summary,
    read_run_summary,
    record_step,
    recorded_steps,
    write_run_summary,
)
from vista.pipeline.report import evaluate_and_report
from vista.pipeline.summaries import (
    read_summaries,
    refresh_states,
    summarize,
    train_summarizer,
    validate_summaries,
)

# every step by name, in run order (write_run_summary last: it gathers the others)
STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "ingest_events": ingest_events,
    "validate_events": validate_events,
    "build_histories": build_histories,
    "validate_histories": validate_histories,
    "build_raw_features": build_raw_features,
    "train_summarizer": train_summarizer,
    "summarize": summarize,
    "validate_summaries": validate_summaries,
    "publish_features": publish_features,
    "train_and_evaluate_ranker": train_and_evaluate_ranker,
    "evaluate_and_report": evaluate_and_report,
    "write_run_summary": write_run_summary,
}

__all__ = [
    "RUN_STEPS",
    "RUN_SUMMARY_FILE",
    "STEPS",
    "build_histories",
    "build_raw_features",
    "check_snapshot",
    "default_as_of",
    "evaluate_and_report",
    "format_run_summary",
    "ingest_events",
    "ingest_files",
    "ingest_source",
    "mark_cold_start",
    "publish_features",
    "read_histories",
    "read_run_summary",
    "read_summaries",
    "record_step",
    "recorded_steps",
    "refresh_states",
    "summarize",
    "train_and_evaluate_ranker",
    "train_summarizer",
    "training_set",
    "validate_events",
    "validate_histories",
    "validate_summaries",
    "validate_training_set",
    "write_run_summary",
]
