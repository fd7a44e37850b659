"""Stage 6, ranking: ranker_v1 (the VISTA ranker on the summary tokens alone) trained on
the Feast training set of the training days, checked first by the critical
training-set suite, evaluated on the later days, saved with the summarizer version it
read and pointed to by ``<state>/models/ranker/current.json`` for serving.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd

from vista import features
from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.errors import SettingError
from vista.core.names import (
    HISTORIES,
    IMPRESSION_DATE,
)
from vista.core.snapshot import Snapshot
from vista.evaluation import choose_pooling, frozen_summarizer, ranker_spec
from vista.state import (
    current_summarizer,
    impression_windows,
    ranker_dir,
    read_impressions,
    report_dir,
    write_json,
)


def training_set(cfg: VistaConfig, days: list[str], as_of: Snapshot | None = None) -> pd.DataFrame:
    """Impressions of ``days`` joined point-in-time with their summaries via Feast; with
    ``as_of``, cold-start rows are marked (``mark_cold_start``)."""
    store = features.feature_store(cfg)
    entity_df = read_impressions(cfg, days).drop(columns=[IMPRESSION_DATE])
    frame = features.training_frame(store, entity_df)
    if as_of is not None:
        frame = mark_cold_start(frame, snapshot_users(cfg, as_of))
    return frame.sort_values("impression_id").reset_index(drop=True)


def snapshot_users(cfg: VistaConfig, as_of: Snapshot) -> np.ndarray:
    """Users with at least one event before ``as_of`` (the histories snapshot's rows)."""
    table = lake.read_arrow(cfg.paths.table(HISTORIES), filters=as_of.partition_filter(),
                            columns=["user_id"])  # fmt: skip
    return table.column("user_id").to_numpy()


def mark_cold_start(frame: pd.DataFrame, users_with_history: np.ndarray) -> pd.DataFrame:
    """``cold_start``: the user had no event before the snapshot, so no summary joined.

    Their history_length is 0 (known: nothing to summarize), not the join's null, and
    their summary stays null: the ranker scores them as serving scores a user the online
    store does not know (zeros plus a no-summary flag), so training and serving agree. An
    empty-history summary row would instead give them an input that unknown users never
    get at serving time. A null history_length left on a user *with* a history means the
    join found no summary in time (features.ttl_days), which the coverage check counts."""
    cold = ~frame["user_id"].isin(users_with_history) & frame["history_length"].isna()
    lengths = frame["history_length"].where(~cold, 0)
    return frame.assign(cold_start=cold.to_numpy(), history_length=lengths)


def validate_training_set(
    cfg: VistaConfig, as_of: Snapshot, train: pd.DataFrame, test: pd.DataFrame
) -> dict[str, Any]:
    """The critical training-set suite on the Feast frames, before any training. A
    coverage below features.min_summary_coverage fails with a first line that says what
    was found and the value this data needs."""
    from validation.checkpoints import DataQualityError, run_suite
    from validation.suites import summary_coverage_problem, training_frame, training_set_suite

    frame = pd.concat([train.assign(split="train"), test.assign(split="eval")],
                      ignore_index=True)  # fmt: skip
    checked = training_frame(frame)
    width, minimum = cfg.summarizer.n_seeds * cfg.summarizer.dim, cfg.features.min_summary_coverage
    with_history = int(checked["summary_joined"].notna().sum())
    suite = training_set_suite(width, minimum, check_coverage=with_history > 0)
    try:
        outcome = run_suite(suite, checked, report_dir(cfg, as_of)).to_dict()
    except DataQualityError as exc:
        problem = summary_coverage_problem(checked, minimum, as_of, cfg.features.ttl_days)
        if problem is None:
            raise
        raise DataQualityError(f"{problem}\n{exc}") from None
    cold = int(len(checked) - with_history)
    return {**outcome, "cold_start_rows": cold, "rows_with_history": with_history}


def ttl_problem(cfg: VistaConfig, as_of: Snapshot, days: list[str], rows: int) -> str:
    """One line: no impression of a user with a history found a summary in time."""
    needed = (dt.date.fromisoformat(days[-1]) - as_of.date()).days + 1
    return (
        f"none of the {rows} evaluation impressions ({days[0]} .. {days[-1]}) of users with a "
        f"history has a summary from as_of {as_of.iso}: features.ttl_days="
        f"{cfg.features.ttl_days} is shorter than their distance from the snapshot; this data "
        f"needs features.ttl_days >= {needed} (or an as_of just before the impressions)"
    )


def train_and_evaluate_ranker(
    cfg: VistaConfig, as_of: Snapshot, progress: bool = True
) -> dict[str, Any]:
    """ranker_v1 (the VISTA ranker on the summary tokens alone), trained on the training
    days and evaluated on the later ``eval_days``; ``vista evaluate-and-report`` compares
    baselines.

    Reads ``training_set`` frames, one row per impression: its columns (impression_id,
    user_id, item_id, category, event_timestamp, label, the oracle's probabilities) and
    ranker_v1's features (``summary``: K*D float32 token-major, or None; history_length,
    is_empty_history, summarizer_version), plus ``cold_start``. Writes the artifact and
    ``current.json`` under ``<state>/models/ranker/`` (``save_ranker_artifact``)."""
    from models.evaluation import ranking_metrics
    from models.ranker import score

    train_days, eval_days = impression_windows(cfg, as_of)
    train, test = training_set(cfg, train_days, as_of), training_set(cfg, eval_days, as_of)
    quality = validate_training_set(cfg, as_of, train, test)
    # cold-start users have no summary to find; everyone else should have found one
    with_history = test[~test["cold_start"]]
    if len(with_history) and with_history["summary"].isna().all():
        raise SettingError(ttl_problem(cfg, as_of, eval_days, len(with_history)))
    started = time.perf_counter()
    # ranker_v1's feature service holds the summaries only, no raw items; it picks its
    # pooling as the report's VISTA does (lowest validation loss, first seed), so that
    # with recent_items 0 the served model is the report's first VISTA seed
    spec = dataclasses.replace(ranker_spec(cfg, "vista"), recent_items=0)
    spec, model, curve, pooling_losses = choose_pooling(train, cfg, spec, progress,
                                                        frozen_summarizer(cfg))  # fmt: skip
    train_seconds = time.perf_counter() - started
    coverage = float(test["summary"].notna().mean())
    labels, users = test["label"].to_numpy(), test["user_id"].to_numpy()
    metrics = {"ranker_v1": ranking_metrics(labels, score(model, test), users)}
    oracle = test["oracle_prob"].to_numpy(dtype=float)
    if np.isfinite(oracle).all():  # synthetic data knows the true click probability
        metrics["oracle"] = ranking_metrics(labels, oracle, users)
    artifact = save_ranker_artifact(cfg, as_of, model, metrics["ranker_v1"])
    return {
        "artifact": artifact,
        "train_days": train_days,
        "eval_days": eval_days,
        "training_set_quality": quality,
        "train_rows": len(train),
        "eval_rows": len(test),
        "summary_coverage": coverage,
        "eval_cold_start_rows": int(test["cold_start"].sum()),
        "pooling": spec.pooling,
        "validation_loss_by_pooling": pooling_losses,
        "training_curve": curve.to_dict(),
        "train_seconds": round(train_seconds, 2),
        "metrics": metrics,
    }


def save_ranker_artifact(
    cfg: VistaConfig, as_of: Snapshot, model, metrics: dict[str, Any]
) -> dict[str, Any]:
    """Save ranker_v1 with the summarizer version it read, and point serving at it.

    The version travels with the weights so that serving can refuse summaries of
    another summarizer (their tokens mean something else to this ranker)."""
    from models.ranker import save_ranker

    version = current_summarizer(cfg)["version"]
    path = ranker_dir(cfg) / f"ranker_v1-{version}-{as_of.iso}.pt"
    pointer = {
        "name": "ranker_v1",
        "path": str(path),
        "summarizer_version": version,
        "as_of": as_of.iso,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
    }
    save_ranker(model, cfg.ranker, path, pointer)
    write_json(ranker_dir(cfg) / "current.json", pointer)
    return pointer
