"""Ablations of the VISTA ranker: reconstruction loss on/off, K seed tokens, staleness.

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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

from vista.config import VistaConfig

LINKED_TABLES = ("events", "impressions", "user_histories")


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
    for days in (1, 3):
        out[f"stale_{days}d"] = {"summarizer": {}, "stale_days": days}
    return out


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


def run_arm(cfg: VistaConfig, as_of: dt.datetime, stale_days: int, progress: bool) -> dict:
    from models.evaluation import metrics_by_bucket
    from models.ranker import score, train_ranker
    from vista import features, pipeline
    from vista.evaluation import aggregate_runs, ranker_spec

    snapshot = as_of - dt.timedelta(days=stale_days)
    if stale_days:
        pipeline.build_histories(cfg, snapshot, full=True)
    model = pipeline.train_summarizer(cfg, as_of, progress=progress)
    summaries = pipeline.summarize(cfg, snapshot, full=True)
    store = features.apply_repo(cfg)
    train_days, eval_days = pipeline.impression_windows(cfg, as_of)

    def frame(days):
        entity_df = pipeline.read_impressions(cfg, days).drop(columns=["impression_date"])
        got = features.training_frame(store, entity_df, features.FEATURE_SERVICE)
        return got.sort_values("impression_id").reset_index(drop=True)

    train, test = frame(train_days), frame(eval_days)
    labels, users = test["label"].to_numpy(), test["user_id"].to_numpy()
    lengths = test["history_length"].fillna(0).to_numpy()
    spec = dataclasses.replace(ranker_spec(cfg, "vista"), recent_items=0)
    runs = []
    for offset in range(cfg.ranker.seeds):
        ranker, curve = train_ranker(train, cfg.ranker, spec, progress,
                                     seed=cfg.ranker.seed + offset)  # fmt: skip
        runs.append({"seed": cfg.ranker.seed + offset,
                     "metrics": metrics_by_bucket(labels, score(ranker, test), users, lengths),
                     "curve": curve.to_dict()})  # fmt: skip
    return {
        "summarizer_version": model["summarizer_version"],
        "summarizer_seconds": model.get("seconds"),
        "snapshot": snapshot.date().isoformat(),
        "summaries_seconds": summaries["seconds"],
        "summary_bytes": summaries["stored_bytes"],
        "summary": aggregate_runs(runs),
        "runs": runs,
    }


def run_ablations(
    cfg: VistaConfig, as_of: dt.datetime, only: list[str] | None = None, progress: bool = True
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
    return {"as_of": as_of.date().isoformat(), "seeds": cfg.ranker.seeds, "arms": results}


def render_ablations(result: dict) -> str:
    from models.evaluation import BUCKET_LABELS

    buckets = ["all"] + [b for b in BUCKET_LABELS
                         if any(b in a["summary"] for a in result["arms"].values())]  # fmt: skip
    lines = [
        f"# VISTA ablations (as_of {result['as_of']}, {result['seeds']} seed(s) per arm)",
        "",
        "AUC of the VISTA ranker (mean ± std over seeds) by history-length bucket.",
        "",
        "| arm | summarizer change | summaries from | " + " | ".join(buckets) + " |",
        "|---|---|---|" + "---|" * len(buckets),
    ]
    for name, arm in result["arms"].items():
        cells = []
        for b in buckets:
            cell = arm["summary"].get(b, {}).get("auc")
            cells.append("n/a" if cell is None else f"{cell['mean']:.4f} ± {cell['std']:.4f}")
        change = ", ".join(f"{k}={v}" for k, v in arm["summarizer"].items()) or "-"
        lines.append(f"| {name} | {change} | {arm['snapshot']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_ablations(folder: Path, result: dict) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ablations.json").write_text(json.dumps(result, indent=2, default=float))
    (folder / "ablations.md").write_text(render_ablations(result))
    return {"ablations": str(folder / "ablations.md"), "json": str(folder / "ablations.json")}
