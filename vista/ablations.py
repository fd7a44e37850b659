"""Ablations of the VISTA ranker: reconstruction loss on/off, K seed tokens, the memory
design's parts (and the full bidirectional summarizer it replaces), staleness.

Each arm runs in a state folder of its own (``<state>/ablations/<arm>``) that links the
main lake's events, impressions and histories, so its summarizer version, summaries
table and Feast registry never touch the main pipeline's. Per arm: train the summarizer
(or reuse the arm's), summarize the snapshot, apply Feast, then train and evaluate the
VISTA ranker with ``ranker.seeds`` seeds on the later window, by history-length bucket.

Staleness: refreshing every snapshot serves summaries from the last snapshot; refreshing
every 2nd (4th) snapshot serves summaries up to 1 (3) snapshot(s) older. The arm
``stale_<k>d`` summarizes the snapshot k days before ``as_of`` with the main summarizer,
so training and evaluation rows read summaries k days older (the worst case of that
cadence with daily snapshots).

Every arm's scores per seed on the evaluation rows are kept (``predictions.parquet``),
and each arm is compared with the baseline arm by the same paired bootstrap over users
as ``vista evaluate-and-report`` (``vista.evaluation.intervals``): "beats" and "trails" only where
the interval of the difference excludes zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from vista.core.config import SummarizerConfig, VistaConfig
from vista.core.snapshot import Snapshot

LINKED_TABLES = ("events", "impressions", "user_histories")
BASELINE = "baseline"
PREDICTIONS = "predictions.parquet"


def arms(cfg: VistaConfig) -> dict[str, dict[str, Any]]:
    """name -> {"summarizer": overrides, "stale_days": k}."""
    s = cfg.summarizer
    out: dict[str, dict[str, Any]] = {"baseline": {"summarizer": {}, "stale_days": 0}}
    flipped = 1.0 if s.recon_weight == 0 else 0.0
    out[f"recon_{'on' if flipped else 'off'}"] = {"summarizer": {"recon_weight": flipped},
                                                  "stale_days": 0}  # fmt: skip
    for k in (32, 64, 128):
        if k != s.n_seeds:
            out[f"k_{k}"] = {"summarizer": {"n_seeds": k}, "stale_days": 0}
    # the memory design's parts, each switched the other way (where the result is valid):
    # magnitudes kept or normalised away, the slot match, the item sketch, and training
    # on 8x longer histories than the baseline's
    if s.mode == "memory":
        flips = {
            "magnitude_rms" if s.magnitude != "rms" else "magnitude_log": {
                "magnitude": "rms" if s.magnitude != "rms" else "log"},
            f"slot_match_{'off' if s.slot_match else 'on'}": {
                "slot_match": not s.slot_match, **({"sketch_heads": 0} if s.slot_match else {})},
            f"sketch_{'off' if s.sketch_heads else 'on'}": {
                "sketch_heads": 0 if s.sketch_heads else 1},
            f"train_{s.train_max_events * 8 // 1024}k": {
                "train_max_events": s.train_max_events * 8},
            # the quality the refreshable design costs or gains: the paper's summarizer
            # (seeds and history attend together through the layers; no state to cache,
            # so every refresh re-reads the whole history)
            "bidirectional": {"mode": "bidirectional", "sketch_heads": 0, "slot_match": False,
                              "head_pooling": "softmax"},
        }  # fmt: skip
        for name, overrides in flips.items():
            if _valid(s, overrides):
                out[name] = {"summarizer": overrides, "stale_days": 0}
    for days in (1, 3):
        out[f"stale_{days}d"] = {"summarizer": {}, "stale_days": days}
    return out


def _valid(summarizer: SummarizerConfig, overrides: dict[str, Any]) -> bool:
    try:
        SummarizerConfig.model_validate({**summarizer.model_dump(), **overrides})
    except ValueError:
        return False
    return True


def arm_config(
    cfg: VistaConfig, name: str, overrides: dict[str, Any], link_histories: bool = True
) -> VistaConfig:
    """The arm's config: its own state and lake, linking the main lake's input tables
    (read only: an arm that needs other histories builds its own table)."""
    root = cfg.paths.state / "ablations" / name
    arm = cfg.model_copy(
        update={
            "paths": cfg.paths.model_copy(update={"state": root, "lake": root / "lake"}),
            "summarizer": cfg.summarizer.model_copy(update=overrides),
        }
    )
    (root / "lake").mkdir(parents=True, exist_ok=True)
    for table in LINKED_TABLES if link_histories else LINKED_TABLES[:2]:
        link = root / "lake" / table
        if not link.exists():
            os.symlink(cfg.paths.table(table), link, target_is_directory=True)
    return arm


def run_arm(cfg: VistaConfig, as_of: Snapshot, stale_days: int, progress: bool) -> dict:
    """Summarize, apply Feast, train and score the VISTA ranker with each seed; the
    result holds ``predictions`` (a frame: the rows and a score column per seed, under
    the model name ``arm``) beside the JSON-ready figures."""
    from models.evaluation import metrics_by_bucket
    from models.ranker import score, train_ranker
    from vista import features, pipeline, state
    from vista.evaluation import aggregate_runs, frozen_summarizer, predictions_frame, ranker_spec

    snapshot = Snapshot.of(as_of - dt.timedelta(days=stale_days))
    if stale_days:
        pipeline.build_histories(cfg, snapshot, full=True)
    model = pipeline.train_summarizer(cfg, as_of, progress=progress)
    summaries = pipeline.summarize(cfg, snapshot, full=True)
    store = features.apply_repo(cfg)
    train_days, eval_days = state.impression_windows(cfg, as_of)

    def frame(days):
        entity_df = state.read_impressions(cfg, days).drop(columns=["impression_date"])
        got = features.training_frame(store, entity_df, features.FEATURE_SERVICE)
        return got.sort_values("impression_id").reset_index(drop=True)

    train, test = frame(train_days), frame(eval_days)
    labels, users = test["label"].to_numpy(), test["user_id"].to_numpy()
    lengths = test["history_length"].fillna(0).to_numpy()
    spec = dataclasses.replace(ranker_spec(cfg, "vista"), recent_items=0)
    summarizer = frozen_summarizer(cfg)
    runs, scores = [], {}
    for offset in range(cfg.ranker.seeds):
        seed = cfg.ranker.seed + offset
        ranker, curve = train_ranker(train, cfg.ranker, spec, progress, seed=seed,
                                     summarizer=summarizer)  # fmt: skip
        scores[seed] = score(ranker, test)
        runs.append({"seed": seed,
                     "metrics": metrics_by_bucket(labels, scores[seed], users, lengths),
                     "curve": curve.to_dict()})  # fmt: skip
    return {
        "summarizer_version": model["summarizer_version"],
        "summarizer_seconds": model.get("seconds"),
        "snapshot": snapshot.date().isoformat(),
        "summaries_seconds": summaries["seconds"],
        "summary_bytes": summaries["stored_bytes"],
        "summary": aggregate_runs(runs),
        "runs": runs,
        "predictions": predictions_frame(test, lengths, {"arm": scores}),
    }


def arm_predictions(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One predictions frame for every arm: the rows, history lengths and oracle columns
    of the first arm (the baseline when it ran), and each arm's score columns renamed
    ``score__<arm>__seed<k>``, matched on impression_id. Every arm scores the same
    impressions; a stale arm's summaries are older, so buckets follow the first arm's
    history lengths and a user sits in one bucket for every arm (the pairing)."""
    from vista.evaluation import SCORE_PREFIX

    first = next(iter(frames.values()))
    keys = first[[c for c in first.columns if not str(c).startswith(SCORE_PREFIX)]]
    merged = keys
    own = f"{SCORE_PREFIX}arm__"  # run_arm's model name
    for name, frame in frames.items():
        columns = {c: c.replace(own, f"{SCORE_PREFIX}{name}__", 1)
                   for c in frame.columns if str(c).startswith(own)}  # fmt: skip
        scores = frame[["impression_id", *columns]].rename(columns=columns)
        merged = merged.merge(scores, on="impression_id", how="inner", validate="one_to_one")
    if len(merged) != len(keys):
        raise ValueError(f"arms scored different impressions ({len(merged)} of {len(keys)} shared)")
    return merged


def run_ablations(
    cfg: VistaConfig, as_of: Snapshot, only: list[str] | None = None, progress: bool = True
) -> dict[str, Any]:
    results = {}
    for name, arm in arms(cfg).items():
        if only and name not in only:
            continue
        stale = arm["stale_days"] > 0
        arm_cfg = arm_config(cfg, name, arm["summarizer"], link_histories=not stale)
        baseline_models = cfg.paths.state / "ablations" / "baseline" / "models"
        if stale and baseline_models.exists() and not (arm_cfg.paths.state / "models").exists():
            # the same summarizer as the baseline arm: only the snapshot it reads differs
            shutil.copytree(baseline_models, arm_cfg.paths.state / "models")
        results[name] = {**arm, **run_arm(arm_cfg, as_of, arm["stale_days"], progress)}
    frames = {name: arm.pop("predictions") for name, arm in results.items()}
    out: dict[str, Any] = {"as_of": as_of.iso, "seeds": cfg.ranker.seeds,
                           "arms": results}  # fmt: skip
    if frames:
        from vista.evaluation import intervals

        out["predictions"] = arm_predictions(frames)
        out["intervals"] = intervals(out["predictions"], cfg.evaluation)
    return out


def _auc_cell(result: dict, name: str, bucket: str) -> str:
    """mean [low, high] (± seed std) of one arm in one bucket."""
    seeds = result["arms"][name]["summary"].get(bucket, {}).get("auc")
    cell = result.get("intervals", {}).get("buckets", {}).get(bucket, {}).get("auc", {}).get(name)
    if cell is None:
        return "n/a" if seeds is None else f"{seeds['mean']:.4f} ± {seeds['std']:.4f}"
    text = f"{cell['estimate']:.4f}"
    if math.isfinite(cell["low"]):
        text += f" [{cell['low']:.4f}, {cell['high']:.4f}]"
    return text + (f" (± {seeds['std']:.4f})" if seeds and seeds["n"] > 1 else "")


def baseline_differences(result: dict, bucket: str) -> dict[str, tuple[dict, str]]:
    """arm -> (arm minus baseline, the verdict of its interval) in ``bucket``."""
    from models.evaluation import verdict

    cell = result.get("intervals", {}).get("buckets", {}).get(bucket, {}).get("difference", {})
    return {name: (cell[name][BASELINE], verdict(cell[name][BASELINE]["low"],
                                                 cell[name][BASELINE]["high"]))
            for name in result["arms"] if name != BASELINE and BASELINE in cell.get(name, {})}  # fmt: skip


def render_ablations(result: dict) -> str:
    from models.evaluation import BUCKET_LABELS

    buckets = ["all"] + [b for b in BUCKET_LABELS
                         if any(b in a["summary"] for a in result["arms"].values())]  # fmt: skip
    settings = result.get("intervals", {})
    confidence = settings.get("confidence", 0.95)
    lines = [
        f"# VISTA ablations (as_of {result['as_of']}, {result['seeds']} seed(s) per arm)",
        "",
        f"AUC of the VISTA ranker by history-length bucket: mean over seeds [{confidence:.0%} "
        "CI of a paired bootstrap over users] (± seed std). A bucket with fewer than "
        f"{settings.get('min_users', '?')} users has no interval.",
        "",
        "| arm | summarizer change | summaries from | " + " | ".join(buckets) + " |",
        "|---|---|---|" + "---|" * len(buckets),
    ]
    for name, arm in result["arms"].items():
        cells = [_auc_cell(result, name, b) for b in buckets]
        change = ", ".join(f"{k}={v}" for k, v in arm["summarizer"].items()) or "-"
        lines.append(f"| {name} | {change} | {arm['snapshot']} | " + " | ".join(cells) + " |")
    by_bucket = {b: baseline_differences(result, b) for b in buckets}
    arms = [n for n in result["arms"] if any(n in by_bucket[b] for b in buckets)]
    if arms:
        lines += [
            "",
            f"## Each arm minus the baseline: AUC difference [{confidence:.0%} CI]",
            "",
            'Paired over users: "beats" when the interval lies above zero, "trails" '
            "when below, else no significant difference.",
            "",
            "| arm minus baseline | " + " | ".join(buckets) + " |",
            "|---|" + "---|" * len(buckets),
        ]
        for name in arms:
            cells = []
            for b in buckets:
                gap, word = by_bucket[b].get(name, (None, "n/a"))
                if gap is None or not math.isfinite(gap["estimate"]):
                    cells.append("n/a")
                elif math.isfinite(gap["low"]):
                    cells.append(f"{gap['estimate']:+.4f} [{gap['low']:+.4f}, "
                                 f"{gap['high']:+.4f}] {word}")  # fmt: skip
                else:
                    cells.append(f"{gap['estimate']:+.4f} {word}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_ablations(folder: Path, result: dict) -> dict[str, str]:
    """ablations.md, ablations.json and (when kept) the arms' predictions.parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    from vista.provenance import provenance

    measured = {k: v for k, v in result.items() if k != "predictions"}
    measured.setdefault("provenance", provenance())
    files = {"ablations": str(folder / "ablations.md"), "json": str(folder / "ablations.json")}
    if result.get("predictions") is not None:
        # beside the report's own predictions.parquet, so a name of its own
        path = folder / f"ablations_{PREDICTIONS}"
        result["predictions"].to_parquet(path, index=False)
        files["predictions"] = str(path)
    (folder / "ablations.json").write_text(json.dumps(measured, indent=2, default=float))
    (folder / "ablations.md").write_text(render_ablations(measured))
    return files
