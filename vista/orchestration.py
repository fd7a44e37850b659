"""What the DAG files share: assets, params, default args and the task wrapper.

Import-light on purpose: the DAG processor imports every DAG file often, so this
module imports only the standard library at top level; Airflow's SDK and the
pipeline are imported inside the functions that a DAG definition or a running task
calls.

The DAGs form a chain by data asset, each scheduled on the asset the one before
produces (Airflow 3 asset-aware scheduling):

    vista_ingest     -> asset vista_events      (events, impressions, quarantine)
    vista_histories  -> asset vista_histories   (user_histories, raw-history features)
    vista_summaries  -> asset vista_summaries   (user_summaries/<summarizer version>)
    vista_features   -> asset vista_features    (Feast registry + online store)
    vista_ranker     (training set check, ranker_v1, optional evaluation, run summary)

Each task has the name of the step it runs (``vista.pipeline.STEPS``), which is also
the name of its ``vista`` command (with dashes) and its key in the run summary.

The snapshot date (``as_of``) travels in each asset event's ``extra``; an asset-
triggered run has no logical date of its own.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

ASSET_URIS = {
    "events": "vista://lake/events",
    "histories": "vista://lake/user_histories",
    "summaries": "vista://lake/user_summaries",
    "features": "vista://feast/user_summary",
}
CHAIN = ["vista_ingest", "vista_histories", "vista_summaries", "vista_features", "vista_ranker"]

DEFAULT_ARGS = {
    "owner": "vista",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=10),
}

# name -> (default, JSON-schema type, description); every knob a run takes
PARAM_SPECS: dict[str, tuple[Any, Any, str]] = {
    "profile": (None, ["null", "string"],
                "configuration profile: a name in conf/ or a .yaml file's path; default: "
                "$VISTA_PROFILE, else the profile of the asset event that triggered the run, "
                "else local"),
    "as_of": (None, ["null", "string"],
              "snapshot, a whole hour UTC (YYYY-MM-DD for midnight, or YYYY-MM-DDTHH); "
              "default: the triggering asset event's as_of, else the run's logical date "
              "floored to snapshots.every_hours, else the data's cutoff"),
    "regenerate": (False, "boolean",
                   "synthetic profiles: rewrite the data even if present; sources: ingest "
                   "every file again from scratch (tables are replaced)"),
    "full_rebuild": (False, "boolean",
                     "rebuild histories (or summaries) from scratch instead of incrementally "
                     "from the previous snapshot, e.g. after late events"),
    "retrain_summarizer": (False, "boolean",
                           "train a new summarizer even if one with these settings exists "
                           "(a new version re-summarizes every user)"),
    "evaluate": (False, "boolean",
                 "train the raw-history baselines beside VISTA and write the evaluation "
                 "report (reports/<as_of>/report.md)"),
}  # fmt: skip
DAG_PARAMS = {
    "vista_ingest": ["profile", "as_of", "regenerate", "full_rebuild"],
    "vista_histories": ["profile", "as_of", "full_rebuild"],
    "vista_summaries": ["profile", "as_of", "full_rebuild", "retrain_summarizer"],
    "vista_features": ["profile", "as_of"],
    "vista_ranker": ["profile", "as_of", "evaluate"],
}


def asset(name: str):
    from airflow.sdk import Asset

    return Asset(name=f"vista_{name}", uri=ASSET_URIS[name], group="vista")


def params(dag_id: str) -> dict:
    from airflow.sdk import Param

    out = {}
    for name in DAG_PARAMS[dag_id]:
        default, kind, description = PARAM_SPECS[name]
        out[name] = Param(default, type=kind, description=description)
    return out


def dag_settings(dag_id: str) -> dict:
    """What every DAG of the chain shares: id, start, no catchup, retries, its params."""
    return {
        "dag_id": dag_id,
        # Airflow pauses a DAG when it first registers it unless told otherwise, and the
        # first registration is wherever the DAG is first seen (`airflow dags test` in
        # `make run`, a DAG processor, a Helm deployment): a paused DAG leaves a run
        # triggered upstream queued for good, so the asset chain would stop there
        "is_paused_upon_creation": False,
        "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "catchup": False,
        "default_args": DEFAULT_ARGS,
        "params": params(dag_id),
    }


def ingest_schedule() -> str | None:
    """The ingest DAG's schedule: $VISTA_INGEST_SCHEDULE (a cron or preset; 'none' for
    manual runs only), else the profile's cadence (``snapshots.every_hours``) when
    ``snapshots.scheduled``, else manual runs only (the fixed-in-time synthetic profiles)."""
    value = os.environ.get("VISTA_INGEST_SCHEDULE")
    if value is None:
        from vista.core.config import load_config

        snapshots = load_config(os.environ.get("VISTA_PROFILE") or None).snapshots
        return snapshots.cron if snapshots.scheduled else None
    value = value.strip()
    return None if value.lower() in ("", "none", "null") else value


def _triggering_extra(context) -> dict:
    events = context.get("triggering_asset_events") or {}
    latest: tuple[Any, dict] | None = None
    for asset_events in events.values():
        for event in asset_events:
            stamp = getattr(event, "timestamp", None)
            if latest is None or (stamp is not None and stamp >= latest[0]):
                latest = (stamp, dict(event.extra or {}))
    return latest[1] if latest else {}


def run_config(context):
    """(config, as_of) of a running task, from its params, its triggering asset event
    and its logical date, in that order."""
    from vista import pipeline
    from vista.core.config import load_config
    from vista.core.snapshot import Snapshot

    params, extra = context.get("params") or {}, _triggering_extra(context)
    cfg = load_config(params.get("profile") or os.environ.get("VISTA_PROFILE")
                      or extra.get("profile") or None)  # fmt: skip
    chosen = (params.get("as_of") or extra.get("as_of") or context.get("logical_date")
              or pipeline.default_as_of(cfg))  # fmt: skip
    # a manual trigger's logical date is the moment it was made: the snapshot is the
    # last one of the cadence before it
    return cfg, Snapshot.of(chosen, cfg.snapshots.every_hours)


def run_step(step: str, **kwargs) -> dict:
    """Call ``vista.pipeline.STEPS[step](cfg, as_of, **kwargs)`` in a running task and record
    its result under reports/<as_of>/steps/. Failures that a retry cannot fix (a critical
    data-quality suite, an unreadable source file) fail the task at once."""
    from airflow.exceptions import AirflowFailException
    from airflow.sdk import get_current_context

    from sources.ingest import SourceError
    from validation.checkpoints import DataQualityError
    from vista import pipeline
    from vista.core.errors import SettingError

    context = get_current_context()
    cfg, as_of = run_config(context)
    try:
        if step == "ingest_events":  # the chain's first task: a bad snapshot stops here
            full = bool((context.get("params") or {}).get("full_rebuild"))
            pipeline.check_snapshot(cfg, as_of, full=full)
        result = pipeline.STEPS[step](cfg, as_of, **kwargs)
    except (DataQualityError, SourceError, SettingError) as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    pipeline.record_step(cfg, as_of, step, result)
    return result


def announce(name: str, result: dict | None = None) -> None:
    """Attach the snapshot date (and a few figures) to the asset event this task emits."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    cfg, as_of = run_config(context)
    figures = {k: v for k, v in (result or {}).items() if isinstance(v, int | float | str)}
    context["outlet_events"][asset(name)].extra = {
        "as_of": as_of.iso,
        "profile": cfg.profile_ref,
        **{k: figures[k] for k in sorted(figures)[:12]},
    }
