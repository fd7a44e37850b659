"""The ranker evaluation: every variant trained on one Feast training set with the same
settings and several seeds, scored on a later window, by history-length bucket.

Every model's scores on every evaluation row are kept (``predictions``: one column per
model and seed), and the comparisons come from them alone (``intervals``): a paired
bootstrap over users gives each model's AUC, each difference between models, the
headroom captured and the world's headroom a percentile interval, so every figure of
the report can be recomputed from the predictions file it writes.

Returns plain dicts (JSON-ready, plus the predictions frame); ``vista.report`` turns
them into the report.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vista import features
from vista.core.config import EvaluationConfig, VistaConfig
from vista.core.errors import SettingError
from vista.core.names import IMPRESSION_DATE
from vista.core.snapshot import Snapshot
from vista.state import current_summarizer, impression_windows, read_impressions

METRICS = ("auc", "gauc", "log_loss", "ne")
# the history-blind ranker: the floor of headroom captured (when it is evaluated)
BLIND = "blind"
# the generator's click probability (synthetic data only; NaN on real data): the ceiling
ORACLE = "oracle_prob"
# the oracle's click probability computed from nothing, the last 100 events, the last
# 2,048 and the whole history: the world's headroom, when the generator writes them all
WORLD = ("oracle_prob_blind", "oracle_prob_last100", "oracle_prob_last2048", ORACLE)
SCORE_PREFIX = "score__"
SCORE_COLUMN = re.compile(rf"^{SCORE_PREFIX}(?P<model>.+)__seed(?P<seed>\d+)$")


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


def score_column(model: str, seed: int) -> str:
    """The predictions column of one model's scores with one seed."""
    return f"{SCORE_PREFIX}{model}__seed{seed}"


def model_scores(predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    """model -> (S, n) scores of its S seeds, from the predictions' score columns (in
    column order)."""
    seeds: dict[str, list[np.ndarray]] = {}
    for column in predictions.columns:
        match = SCORE_COLUMN.match(str(column))
        if match:
            seeds.setdefault(match["model"], []).append(predictions[column].to_numpy(float))
    return {model: np.vstack(rows) for model, rows in seeds.items()}


def oracle_columns(frame: pd.DataFrame) -> list[str]:
    """The oracle columns of ``frame`` that hold a probability for every row (none on
    real data, whose oracle is NaN)."""
    return [c for c in WORLD if c in frame and np.isfinite(frame[c].to_numpy(float)).all()]


def predictions_frame(
    test: pd.DataFrame, history_lengths: np.ndarray, scores: dict[str, dict[int, np.ndarray]]
) -> pd.DataFrame:
    """One row per evaluation impression: its keys, label, history length and bucket,
    the oracle columns present, and ``score__<model>__seed<k>`` per model and seed.

    scores: model -> seed -> (n,) scores in ``test``'s row order."""
    from models.evaluation import history_bucket

    frame = pd.DataFrame({
        "impression_id": test["impression_id"].to_numpy(),
        "user_id": test["user_id"].to_numpy(),
        "label": test["label"].to_numpy(),
        "history_length": np.asarray(history_lengths, dtype=np.int64),
        "bucket": history_bucket(history_lengths),
    })  # fmt: skip
    for column in WORLD:
        if column in test:
            frame[column] = test[column].to_numpy(float)
    score_frame = pd.DataFrame({score_column(model, seed): np.asarray(values, float)
                                for model, by_seed in scores.items()
                                for seed, values in by_seed.items()})  # fmt: skip
    return pd.concat([frame, score_frame], axis=1)


def comparison_scores(predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every model's seeds, plus each oracle column present in full: what is compared."""
    scores = model_scores(predictions)
    scores.update({c: predictions[c].to_numpy(float) for c in oracle_columns(predictions)})
    return scores


def comparison_ratios(models: list[str]) -> dict[str, tuple[str, str, str, str]]:
    """Ratios of AUC differences computed on each draw, named ``headroom:<model>`` and
    ``beyond_last2048``, where their models are all present:

    - headroom captured by a ranker: (AUC - AUC_blind) / (AUC_oracle - AUC_blind);
    - the share of the oracle's lift over blind that lies beyond the last 2,048 events:
      (AUC_whole - AUC_last2048) / (AUC_whole - AUC_blind), all four from the oracle."""
    out = {}
    if BLIND in models and ORACLE in models:
        for model in models:
            if model not in (BLIND, *WORLD):
                out[f"headroom:{model}"] = (model, BLIND, ORACLE, BLIND)
    if set(WORLD) <= set(models):
        out["beyond_last2048"] = (ORACLE, "oracle_prob_last2048", ORACLE, "oracle_prob_blind")
    return out


def intervals(predictions: pd.DataFrame, settings: EvaluationConfig) -> dict[str, Any]:
    """The paired bootstrap over users, overall and per history-length bucket, from the
    predictions alone: per bucket rows, users, auc[model], difference[a][b] (a minus b),
    headroom[model] and beyond_last2048 where they apply; each an estimate and interval."""
    from models.evaluation import paired_comparison_by_bucket

    scores = comparison_scores(predictions)
    buckets = paired_comparison_by_bucket(
        predictions["label"].to_numpy(), predictions["user_id"].to_numpy(),
        predictions["history_length"].to_numpy(), scores,
        resamples=settings.resamples, confidence=settings.confidence, seed=settings.seed,
        min_users=settings.min_users, ratios=comparison_ratios(list(scores)),
    )  # fmt: skip
    for cell in buckets.values():
        ratios = cell.pop("ratio")
        cell["headroom"] = {k.split(":", 1)[1]: v for k, v in ratios.items()
                            if k.startswith("headroom:")}  # fmt: skip
        if "beyond_last2048" in ratios:
            cell["beyond_last2048"] = ratios["beyond_last2048"]
    return {**settings.model_dump(mode="json"), "buckets": buckets}


def carry_entity_columns(got: pd.DataFrame, entity_df: pd.DataFrame) -> pd.DataFrame:
    """``got`` with every entity-frame column it lacks, joined back on impression_id
    (the historical join keeps them today; the oracle columns must not depend on it)."""
    missing = [c for c in entity_df.columns if c not in got.columns]
    if not missing:
        return got
    return got.merge(entity_df[["impression_id", *missing]], on="impression_id", how="left")


def evaluation_frames(cfg: VistaConfig, as_of: Snapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) from Feast: every feature any variant reads, point-in-time."""
    train_days, eval_days = impression_windows(cfg, as_of)
    store = features.feature_store(cfg)

    def frame(days: list[str]) -> pd.DataFrame:
        entity_df = read_impressions(cfg, days).drop(columns=[IMPRESSION_DATE])
        got = features.training_frame(store, entity_df, features.EVALUATION_SERVICE)
        got = carry_entity_columns(got, entity_df)
        return got.sort_values("impression_id").reset_index(drop=True)

    return frame(train_days), frame(eval_days)


def ranker_spec(cfg: VistaConfig, variant: str):
    from models.ranker import RankerSpec, SummaryShape

    return RankerSpec(
        variant=variant,
        summary=SummaryShape(
            cfg.summarizer.n_seeds,
            cfg.summarizer.dim,
            cfg.summarizer.n_heads,
            cfg.summarizer.sketch_heads,
        ),
        vocab_size=cfg.summarizer.vocab_size,
        category_vocab_size=cfg.summarizer.category_vocab_size,
        recent_items=cfg.ranker.recent_items,
        full_attention_length=cfg.ranker.full_attention_length,
        # VISTA reads the tokens the way the source model's head did when they were made
        pooling=cfg.summarizer.head_pooling if variant == "vista" else "",
        slot_match=cfg.summarizer.slot_match,
        sketch_energy=cfg.ranker.sketch_energy,
    )


def frozen_summarizer(cfg: VistaConfig):
    """The current frozen summarizer, whose embeddings every ranker may start from
    (``ranker.init_from_summarizer``); None when that is off."""
    if not cfg.ranker.init_from_summarizer:
        return None
    from models.summarizer import load_checkpoint

    return load_checkpoint(Path(current_summarizer(cfg)["path"]), cfg.summarizer)


def choose_pooling(train, cfg: VistaConfig, spec, progress: bool, summarizer=None):
    """Train the variant once per pooling it may use (first seed) and keep the one with
    the lowest validation loss (users held out of training): each model pools the way
    that is best for it, with the same budget. Returns (spec, model of the first seed,
    its curve, validation loss per pooling)."""
    import dataclasses

    from models.ranker import POOLING_CHOICES, train_ranker

    choices = POOLING_CHOICES[spec.variant] if cfg.ranker.choose_pooling else (spec.pooling,)
    trained = {}
    for pooling in dict.fromkeys((spec.pooling, *choices)):
        candidate = dataclasses.replace(spec, pooling=pooling)
        model, curve = train_ranker(train, cfg.ranker, candidate, progress, seed=cfg.ranker.seed,
                                    summarizer=summarizer)  # fmt: skip
        trained[pooling] = (min(curve.validation_loss), candidate, model, curve)
    best = min(trained, key=lambda p: trained[p][0])
    losses = {p: round(v[0], 6) for p, v in trained.items()}
    return trained[best][1], trained[best][2], trained[best][3], losses


def evaluate_rankers(
    cfg: VistaConfig,
    as_of: Snapshot,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate each configured variant ``cfg.ranker.seeds`` times; the result
    holds the per-seed metrics, the bootstrap ``intervals`` and ``predictions`` (a
    DataFrame: ``vista.report.write_report`` writes it beside the JSON)."""
    from models.evaluation import metrics_by_bucket
    from models.ranker import score, train_ranker
    from models.scoring_cost import scoring_cost

    train, test = evaluation_frames(cfg, as_of)
    if not len(test):
        raise SettingError(
            f"no evaluation impressions after as_of {as_of.date()}: pass an earlier --as-of "
            "(the default is the data's cutoff) or fewer ranker.eval_days"
        )
    labels = test["label"].to_numpy()
    users = test["user_id"].to_numpy()
    # no raw-history row at the snapshot: no event before it, the cold-start bucket
    lengths = test["raw_history_length"].fillna(0).to_numpy()
    variants: dict[str, Any] = {}
    scores: dict[str, dict[int, np.ndarray]] = {}
    summarizer = frozen_summarizer(cfg)
    for variant in cfg.ranker.variants:
        spec, model, curve, pooling_losses = choose_pooling(
            train, cfg, ranker_spec(cfg, variant), progress, summarizer
        )
        runs, first_model = [], None
        scores[variant] = {}
        for offset in range(cfg.ranker.seeds):
            seed = cfg.ranker.seed + offset
            if offset:
                model, curve = train_ranker(train, cfg.ranker, spec, progress, seed=seed,
                                            summarizer=summarizer)  # fmt: skip
            started = time.perf_counter()
            probs = score(model, test)
            scores[variant][seed] = probs
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
            "pooling": spec.pooling,
            "validation_loss_by_pooling": pooling_losses,
            "runs": runs,
            "summary": aggregate_runs(runs),
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in runs])),
            "scoring_cost": scoring_cost(first_model, tuple(cfg.ranker.cost_history_lengths)),
        }
    result: dict[str, Any] = {
        "as_of": as_of.iso,
        "train_rows": len(train),
        "eval_rows": len(test),
        "seeds": cfg.ranker.seeds,
        "settings": cfg.ranker.model_dump(mode="json"),
        "summary_shape": [cfg.summarizer.n_seeds, cfg.summarizer.dim],
        "variants": variants,
    }
    if ORACLE in oracle_columns(test):
        result["oracle"] = metrics_by_bucket(labels, test[ORACLE].to_numpy(float), users, lengths)
    predictions = predictions_frame(test, lengths, scores)
    started = time.perf_counter()
    result["intervals"] = intervals(predictions, cfg.evaluation)
    result["intervals"]["seconds"] = round(time.perf_counter() - started, 2)
    result["predictions"] = predictions
    return result
