"""The synthetic world's headroom table: does a profile's world need lifelong memory?

For every impression the generator records the oracle's click probability computed from
nothing (the candidate alone), from the last 100 events, from the last 2,048 and from the
whole history. Their AUCs against the drawn labels, per history-length bucket, say how
much a model could gain from each span of history; "beyond 2,048" is the share of the
oracle's lift over history-blind that only events older than the last 2,048 carry.
Issue 10's bar for the `lifelong` regime: at least 20% for users above 10k events.

    .venv/bin/python bench/world_headroom.py --profile lifelong

Prints the table and writes docs/results/world_headroom-<profile>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

from models.evaluation import BUCKET_LABELS, history_bucket
from sources.synthetic import build_lifelong_world, build_world, generate
from vista.core.config import load_config
from vista.provenance import RESULTS_DIR, provenance

SOURCES = {
    "blind": "oracle_prob_blind",
    "last 100": "oracle_prob_last100",
    "last 2,048": "oracle_prob_last2048",
    "whole history": "oracle_prob",
}


def headroom_rows(labels: np.ndarray, probs: dict[str, np.ndarray], buckets: np.ndarray) -> list:
    rows = []
    for bucket in ("all", *BUCKET_LABELS):
        rows_in = np.ones(len(labels), bool) if bucket == "all" else buckets == bucket
        y = labels[rows_in]
        if not rows_in.any() or len(np.unique(y)) < 2:
            continue
        auc = {name: float(roc_auc_score(y, p[rows_in])) for name, p in probs.items()}
        lift = auc["whole history"] - auc["blind"]
        beyond = (auc["whole history"] - auc["last 2,048"]) / lift if lift > 0 else float("nan")
        rows.append({"bucket": bucket, "rows": int(rows_in.sum()), "auc": auc,
                     "lift_beyond_2048": beyond})  # fmt: skip
    return rows


def render(profile: str, rows: list, meta: dict) -> str:
    names = list(SOURCES)
    lines = [f"Oracle AUC by the history it reads (profile `{profile}`, regime "
             f"`{meta['regime']}`, {meta['impressions']:,} impressions)", "",
             "| history length | rows | " + " | ".join(names) + " | lift beyond 2,048 |",
             "|---|---|" + "---|" * len(names) + "---|"]  # fmt: skip
    for r in rows:
        cells = " | ".join(f"{r['auc'][n]:.4f}" for n in names)
        lines.append(f"| {r['bucket']} | {r['rows']:,} | {cells} | {r['lift_beyond_2048']:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="lifelong")
    args = parser.parse_args()
    cfg = load_config(args.profile).generator
    started = time.perf_counter()
    impressions, events = [], 0
    for ev, imp in generate(cfg):
        impressions.append(imp)
        events += ev.num_rows
    imp = pa.concat_tables(impressions)
    world = build_lifelong_world(cfg) if cfg.regime == "lifelong" else build_world(cfg)
    lengths = world.history_length[imp.column("user_id").to_numpy()]
    probs = {name: imp.column(col).to_numpy() for name, col in SOURCES.items()}
    rows = headroom_rows(imp.column("label").to_numpy(), probs, history_bucket(lengths))
    meta = {"regime": cfg.regime, "impressions": imp.num_rows, "events": events,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    table = render(args.profile, rows, meta)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {"profile": args.profile, "generator": cfg.model_dump(mode="json"), **meta,
               "rows": rows, **provenance()}  # fmt: skip
    (RESULTS_DIR / f"world_headroom-{args.profile}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS_DIR / f"world_headroom-{args.profile}.md").write_text(table)


if __name__ == "__main__":
    main()
