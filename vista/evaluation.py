"""The ranker evaluation: every variant trained on one Feast training set with the same
settings and several seeds, scored on a later window, by history-length bucket.

Returns plain dicts (JSON-ready); ``vista.report`` turns them into the report.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd

from vista.config import VistaConfig

METRICS = ("auc", "gauc", "log_loss", "ne")


def aggregate_runs(runs: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """bucket -> metric -> mean, std, n over the seeds' runs (NaNs skipped)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    buckets = {b for r in runs for b in r["metrics"]}
    for bucket in buckets:
        out[bucket] = {}
        for metric in (*METRICS, "rows", "users"):
            values = np.array(
                [r["metrics"][bucket][metric] for r in runs if bucket in r["metrics"]], float
            )
            finite = values[np.isfinite(values)]
            out[bucket][metric] = {
                "mean": float(finite.mean()) if len(finite) else float("nan"),
                "std": float(finite.std(ddof=1)) if len(finite) > 1 else 0.0,
                "n": len(finite),
            }
    return out


def evaluation_frames(cfg: VistaConfig, as_of: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) from Feast: every feature any variant reads, point-in-time."""
    from vista import features, pipeline

    train_days, eval_days = pipeline.impression_windows(cfg, as_of)
    store = features.feature_store(cfg)

    def frame(days: list[str]) -> pd.DataFrame:
        entity_df = pipeline.read_impressions(cfg, days).drop(columns=["impression_date"])
        got = features.training_frame(store, entity_df, features.EVALUATION_SERVICE)
        return got.sort_values("impression_id").reset_index(drop=True)

    return frame(train_days), frame(eval_days)


def ranker_spec(cfg: VistaConfig, variant: str):
    from models.ranker import RankerSpec, SummaryShape

    return RankerSpec(
        variant=variant,
        summary=SummaryShape(cfg.summarizer.n_seeds, cfg.summarizer.dim),
        vocab_size=cfg.summarizer.vocab_size,
        category_vocab_size=cfg.summarizer.category_vocab_size,
        recent_items=cfg.ranker.recent_items,
        full_attention_length=cfg.ranker.full_attention_length,
    )


def evaluate_rankers(
    cfg: VistaConfig,
    as_of: dt.datetime,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate each configured variant ``cfg.ranker.seeds`` times."""
    from models.evaluation import metrics_by_bucket
    from models.ranker import score, train_ranker
    from models.scoring_cost import scoring_cost

    train, test = evaluation_frames(cfg, as_of)
    if not len(test):
        raise ValueError(f"no evaluation impressions after as_of {as_of.date()}")
    labels = test["label"].to_numpy()
    users = test["user_id"].to_numpy()
    lengths = test["raw_history_length"].fillna(0).to_numpy()
    variants: dict[str, Any] = {}
    for variant in cfg.ranker.variants:
        spec = ranker_spec(cfg, variant)
        runs, first_model = [], None
        for offset in range(cfg.ranker.seeds):
            seed = cfg.ranker.seed + offset
            model, curve = train_ranker(train, cfg.ranker, spec, progress, seed=seed)
            started = time.perf_counter()
            probs = score(model, test)
            runs.append({
                "seed": seed,
                "metrics": metrics_by_bucket(labels, probs, users, lengths),
                "curve": curve.to_dict(),
                "train_seconds": float(sum(curve.epoch_seconds)),
                "seconds_per_epoch": float(np.mean(curve.epoch_seconds)),
                "score_seconds": time.perf_counter() - started,
            })  # fmt: skip
            if first_model is None:
                first_model = model
        variants[variant] = {
            "runs": runs,
            "summary": aggregate_runs(runs),
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in runs])),
            "scoring_cost": scoring_cost(first_model, tuple(cfg.ranker.cost_history_lengths)),
        }
    result: dict[str, Any] = {
        "as_of": as_of.date().isoformat(),
        "train_rows": len(train),
        "eval_rows": len(test),
        "seeds": cfg.ranker.seeds,
        "settings": cfg.ranker.model_dump(mode="json"),
        "summary_shape": [cfg.summarizer.n_seeds, cfg.summarizer.dim],
        "variants": variants,
    }
    oracle = test["oracle_prob"].to_numpy(dtype=float) if "oracle_prob" in test else None
    if oracle is not None and np.isfinite(oracle).all():
        result["oracle"] = metrics_by_bucket(labels, oracle, users, lengths)
    return result
