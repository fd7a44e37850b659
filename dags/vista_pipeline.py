"""
### vista_pipeline

Lifelong histories to ranker, for one snapshot date (``as_of``, the run's logical date
unless the ``as_of`` param says otherwise):

events -> histories -> (raw features, summarizer -> summaries) -> Feast features
       -> ranker_v1 -> evaluation against the baselines -> report

Each task is one call into ``vista.pipeline`` (the same call the CLI and the tests
make), reads and writes only its date's partition, and commits each Delta table
once, so a rerun for the same date changes nothing. A failing critical data-quality
suite fails its task at once (no retry) with the failed expectations in the log.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

DEFAULT_ARGS = {
    "owner": "vista",
    "retries": 1,
    "retry_delay": dt.timedelta(seconds=30),
}


def _config(params: dict):
    from vista.config import load_config

    return load_config(params.get("profile") or None)


def _as_of(params: dict, logical_date, cfg):
    from vista import pipeline

    chosen = params.get("as_of") or logical_date or pipeline.default_as_of(cfg)
    return pipeline.as_of_datetime(chosen)


def _run(step: str, params: dict, logical_date, **kwargs):
    """Call ``vista.pipeline.<step>(cfg, as_of)``; data-quality failures are final."""
    from airflow.exceptions import AirflowFailException

    from validation.checkpoints import DataQualityError
    from vista import pipeline

    cfg = _config(params)
    try:
        return getattr(pipeline, step)(cfg, _as_of(params, logical_date, cfg), **kwargs)
    except DataQualityError as exc:
        raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="vista_pipeline",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["vista", "lifelong-history", "features"],
    doc_md=__doc__,
    params={
        "profile": Param(
            None,
            type=["null", "string"],
            description="configuration profile, a file conf/<name>.yaml; "
            "default: $VISTA_PROFILE, else local",
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="snapshot date (YYYY-MM-DD); default: the run's logical date",
        ),
        "regenerate": Param(
            False, type="boolean", description="rewrite the synthetic data even if present"
        ),
        "retrain_summarizer": Param(
            False,
            type="boolean",
            description="train a new summarizer even if one with these settings exists "
            "(a new version re-summarizes every user)",
        ),
        "evaluate": Param(
            False,
            type="boolean",
            description="train the raw-history baselines beside VISTA and write the "
            "evaluation report (reports/<as_of>/report.md)",
        ),
        "full_rebuild": Param(
            False,
            type="boolean",
            description="rebuild histories and summaries from scratch instead of "
            "incrementally from the previous snapshot (e.g. after late events)",
        ),
    },
)
def vista_pipeline():
    @task
    def generate_data(params=None) -> dict:
        from vista import pipeline

        return pipeline.generate_data(_config(params), force=bool(params.get("regenerate")))

    @task
    def validate_events(_data: dict, params=None, logical_date=None) -> dict:
        return _run("validate_events", params, logical_date)

    @task
    def build_histories(_dq: dict, params=None, logical_date=None) -> dict:
        return _run("build_histories", params, logical_date, full=bool(params.get("full_rebuild")))

    @task
    def build_raw_features(_histories: dict, params=None, logical_date=None) -> dict:
        return _run("build_raw_features", params, logical_date)

    @task
    def train_summarizer(_histories: dict, params=None, logical_date=None) -> dict:
        retrain = bool(params.get("retrain_summarizer"))
        return _run("train_summarizer", params, logical_date, progress=False, retrain=retrain)

    @task
    def summarize(_model: dict, params=None, logical_date=None) -> dict:
        return _run("summarize", params, logical_date, full=bool(params.get("full_rebuild")))

    @task
    def validate_summaries(_summaries: dict, params=None, logical_date=None) -> dict:
        return _run("validate_summaries", params, logical_date)

    @task
    def publish_features(_dq: dict, _raw: dict, params=None, logical_date=None) -> dict:
        return _run("publish_features", params, logical_date)

    @task
    def train_and_evaluate_ranker(_features: dict, params=None, logical_date=None) -> dict:
        return _run("train_and_evaluate_ranker", params, logical_date, progress=False)

    @task
    def evaluate_and_report(_ranker: dict, params=None, logical_date=None) -> dict:
        if not params.get("evaluate"):
            return {"skipped": True}
        return _run("evaluate_and_report", params, logical_date, progress=False)

    @task
    def write_report(steps: dict, params=None, logical_date=None) -> str:
        import json

        from vista import pipeline

        cfg = _config(params)
        path = pipeline.write_summary(cfg, _as_of(params, logical_date, cfg), steps)
        print(pipeline.format_summary(json.loads(path.read_text())))
        return str(path)

    data = generate_data()
    events_dq = validate_events(data)
    histories = build_histories(events_dq)
    raw = build_raw_features(histories)
    model = train_summarizer(histories)
    summaries = summarize(model)
    summaries_dq = validate_summaries(summaries)
    features = publish_features(summaries_dq, raw)
    ranker = train_and_evaluate_ranker(features)
    evaluation = evaluate_and_report(ranker)
    write_report(
        {
            "data": data,
            "events_quality": events_dq,
            "histories": histories,
            "raw_features": raw,
            "summarizer": model,
            "summaries": summaries,
            "summaries_quality": summaries_dq,
            "features": features,
            "ranker": ranker,
            "evaluation": evaluation,
        }
    )


vista_pipeline()
