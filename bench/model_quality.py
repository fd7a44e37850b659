"""Model quality on a generated world, without Spark, Delta or Feast: the fast loop in
which each summarizer or ranker change is justified by an ablation.

The same code the pipeline runs (sources.synthetic, models.train_summarizer,
spark_jobs.summarize.summary_tokens, the int8 summary codec, models.ranker) on the
same split (the last impression day evaluates), with histories and raw-history features
built in memory. Each arm trains a summarizer (if it has a VISTA variant) and its
rankers; scores are kept per row, so every arm and every variant is compared with the
paired bootstrap over users that the report uses.

    .venv/bin/python bench/model_quality.py --profile lifelong --name summary-design \\
        --arm 'bidirectional={"summarizer": {"mode": "bidirectional"}}' \\
        --arm 'memory={"summarizer": {"mode": "memory"}}' \\
        --baselines blind,din_last100,sim_category,full_attention

Prints AUC by history-length bucket with 95% intervals and writes
docs/results/model_quality-<name>.{json,md} and the per-row scores beside them
(.parquet). Arms are JSON overrides of the profile's `summarizer` and `ranker` sections
(`variants` picks the rankers of an arm; `pooling` a dict variant -> pooling).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from models.evaluation import BUCKET_LABELS, normalized_entropy, paired_comparison_by_bucket
from models.ranker import score, train_ranker
from models.train_summarizer import train_summarizer
from sources.loaders import load_events, split_source
from sources.synthetic import ORACLE_COLUMNS, generate
from spark_jobs.summarize import summary_tokens
from vista.core.config import VistaConfig, load_config
from vista.core.summary_codec import decode_frame, encode
from vista.evaluation import ranker_spec
from vista.provenance import RESULTS_DIR, provenance

SIM_LENGTH = 100


def histories_of(users: np.ndarray, items: np.ndarray, cats: np.ndarray,
                 ts: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """Events sorted by (user, time) -> one row per user with time-ordered arrays."""
    bounds = np.r_[0, np.flatnonzero(np.diff(users)) + 1, len(users)]
    cut = list(itertools.pairwise(bounds))
    histories = pd.DataFrame({
        "user_id": users[bounds[:-1]],
        "item_ids": [items[a:b] for a, b in cut],
        "categories": [cats[a:b] for a, b in cut],
        "event_timestamps": [ts[a:b] for a, b in cut],
    })  # fmt: skip
    histories["history_length"] = histories["item_ids"].map(len)
    return histories


def world(cfg: VistaConfig) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(histories: one row per user, time-ordered arrays; impressions; the snapshot in
    epoch microseconds) of the profile's generated world."""
    events, impressions = [], []
    for ev, imp in generate(cfg.generator):
        events.append(ev.select(["user_id", "item_id", "category", "event_timestamp"]))
        impressions.append(imp)
    ev = pa.concat_tables(events)
    histories = histories_of(ev.column("user_id").to_numpy(), ev.column("item_id").to_numpy(),
                             ev.column("category").to_numpy(),
                             ev.column("event_timestamp").cast(pa.int64()).to_numpy())  # fmt: skip
    as_of_us = int(cfg.generator.cutoff.timestamp() * 1e6)
    return histories, pa.concat_tables(impressions).to_pandas(), as_of_us


def source_world(cfg: VistaConfig) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The same from the profile's events file (``source``), split as the pipeline splits
    it (global cutoff or per user); every impression reads the history before the
    snapshot, as the summaries made at that snapshot do."""
    split = split_source(load_events(cfg.source), cfg.source)
    as_of = pd.Timestamp(split.as_of, tz="UTC")
    events = split.events[split.events.event_timestamp < as_of]
    events = events.sort_values(["user_id", "event_timestamp"], kind="stable")
    ts = events.event_timestamp.dt.tz_convert("UTC").dt.tz_localize(None)
    histories = histories_of(events.user_id.to_numpy(np.int64), events.item_id.to_numpy(np.int64),
                             events.category.fillna(-1).to_numpy(np.int64),
                             ts.to_numpy("datetime64[us]").astype(np.int64))  # fmt: skip
    return histories, split.impressions, int(as_of.timestamp() * 1e6)


def ranker_frame(impressions: pd.DataFrame, histories: pd.DataFrame, tail: int,
                 summaries: dict | None) -> pd.DataFrame:  # fmt: skip
    """The columns the Feast evaluation service gives every variant."""
    h = histories.set_index("user_id")
    empty = np.zeros(0, np.int64)
    # SIM's index: per (user, category), the most recent items of it first
    sim = {}
    for user, items, cats in zip(histories.user_id, histories.item_ids, histories.categories,
                                 strict=True):  # fmt: skip
        order = np.lexsort((-np.arange(len(cats)), cats))
        bounds = np.r_[0, np.flatnonzero(np.diff(cats[order])) + 1, len(order)]
        for a, b in itertools.pairwise(bounds):
            sim[(user, cats[order[a]])] = items[order[a : min(b, a + SIM_LENGTH)]]
    frame = impressions.copy()
    known = frame.user_id.isin(h.index)
    frame["tail_item_ids"] = [h.item_ids[u][-tail:] if k else empty
                              for u, k in zip(frame.user_id, known, strict=True)]  # fmt: skip
    frame["tail_categories"] = [h.categories[u][-tail:] if k else empty
                                for u, k in zip(frame.user_id, known, strict=True)]  # fmt: skip
    frame["category_item_ids"] = [sim.get((u, c), empty)
                                  for u, c in zip(frame.user_id, frame.category, strict=True)]  # fmt: skip
    frame["raw_history_length"] = [int(h.history_length[u]) if k else 0
                                   for u, k in zip(frame.user_id, known, strict=True)]  # fmt: skip
    frame["summary"] = [None if summaries is None else summaries.get(u) for u in frame.user_id]
    return frame.reset_index(drop=True)


def arm_config(base: VistaConfig, overrides: dict) -> VistaConfig:
    data = base.model_dump(mode="json")
    for section in ("summarizer", "ranker"):
        data[section] = {**data[section], **overrides.get(section, {})}
    return VistaConfig.model_validate(data)


_SUMMARIES: dict[str, tuple] = {}


def summarize(cfg: VistaConfig, histories, train_imp, as_of_us: int) -> tuple:
    """(summarizer, {user: decoded summary}, training seconds) of the arm's summarizer
    settings; arms that differ only in their rankers share one (its seconds counted once)."""
    key = json.dumps(cfg.summarizer.model_dump(mode="json"), sort_keys=True)
    if key in _SUMMARIES:
        summarizer, summaries = _SUMMARIES[key]
        return summarizer, summaries, 0.0
    started = time.perf_counter()
    summarizer, _ = train_summarizer(histories, train_imp, as_of_us, cfg.summarizer,
                                     progress=False)  # fmt: skip
    seconds = time.perf_counter() - started
    as_of = dt.datetime.fromtimestamp(as_of_us / 1e6, tz=dt.UTC)
    tokens = summary_tokens(histories, summarizer, as_of)
    codes, scales = encode(tokens, cfg.features.summary_codec)
    stored = pd.DataFrame({"summary_codes": codes, "summary_scales": list(scales),
                           "summary_codec": cfg.features.summary_codec})  # fmt: skip
    decoded = decode_frame(stored, cfg.summarizer.n_seeds, cfg.summarizer.dim)
    summaries = dict(zip(histories.user_id, list(decoded), strict=True))
    _SUMMARIES[key] = (summarizer, summaries)
    return summarizer, summaries, seconds


def run_arm(cfg: VistaConfig, histories, train_imp, test_imp, pooling: dict, seeds: int,
            as_of_us: int) -> tuple[dict, dict]:  # fmt: skip
    """Train the arm's summarizer (if it ranks with VISTA) and rankers; per-variant
    (S, n) scores on the evaluation rows and timings."""
    summarizer, summaries, timing = None, None, {}
    if "vista" in cfg.ranker.variants:
        summarizer, summaries, timing["summarizer_seconds"] = summarize(
            cfg, histories, train_imp, as_of_us
        )
    tail = max(cfg.ranker.full_attention_length, cfg.ranker.recent_items, SIM_LENGTH)
    train = ranker_frame(train_imp, histories, tail, summaries)
    test = ranker_frame(test_imp, histories, tail, summaries)
    scores = {}
    for variant in cfg.ranker.variants:
        spec = ranker_spec(cfg, variant)
        if variant in pooling:
            spec = dataclasses.replace(spec, pooling=pooling[variant])
        started = time.perf_counter()
        scores[variant] = np.stack([
            score(train_ranker(train, cfg.ranker, spec, False, seed=cfg.ranker.seed + s,
                               summarizer=summarizer)[0], test)
            for s in range(seeds)
        ])  # fmt: skip
        timing[f"{variant}_seconds"] = time.perf_counter() - started
    return scores, timing


def render(name: str, comparison: dict, arms: dict, meta: dict) -> str:
    models = list(comparison["all"]["auc"])
    buckets = [b for b in ("all", *BUCKET_LABELS) if b in comparison]
    lines = [f"# Model quality: {name}", "",
             f"Profile `{meta['profile']}`, {meta['eval_rows']:,} evaluation rows, "
             f"{meta['seeds']} seed(s); AUC [95% interval, paired bootstrap over users].", "",
             "| model | " + " | ".join(buckets) + " |", "|---|" + "---|" * len(buckets)]  # fmt: skip

    def cell(c):
        return f"{c['estimate']:.4f} [{c['low']:.4f}, {c['high']:.4f}]"

    for m in models:
        lines.append(f"| {m} | " + " | ".join(cell(comparison[b]["auc"][m]) for b in buckets)
                     + " |")  # fmt: skip
    lines.append("| rows | " + " | ".join(f"{comparison[b]['rows']:,}" for b in buckets) + " |")
    if meta.get("normalized_entropy"):
        lines += ["", "Normalized entropy, all users, first seed (below 1: better than the base "
                  "rate): " + ", ".join(f"{m} {v:.3f}" for m, v in meta["normalized_entropy"].items())
                  + "."]  # fmt: skip
    reference = meta.get("reference")
    if reference in models:
        lines += ["", f"Differences, {reference} minus each model:", "",
                  "| model | " + " | ".join(buckets) + " |", "|---|" + "---|" * len(buckets)]  # fmt: skip
        for m in models:
            if m != reference:
                cells = [cell(comparison[b]["difference"][reference][m]) for b in buckets]
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Arms:", ""] + [f"- `{a}`: `{json.dumps(o)}`" for a, o in arms.items()]
    return "\n".join(lines) + "\n"


def entropies(predictions: pd.DataFrame) -> dict[str, float]:
    """Each model's normalized entropy on all rows, from its first seed's scores."""
    first = [c for c in predictions.columns if c.startswith("score__") and c.endswith("seed0")]
    return {c.split("__")[1]: normalized_entropy(predictions.label.to_numpy(),
                                                 predictions[c].to_numpy())
            for c in first}  # fmt: skip


def rerender(out: Path) -> None:
    """The table again from the figures in ``out``.json (an oracle that is constant, as
    the NaN oracle of real data scored 0.5 before it was left out, is dropped)."""
    payload = json.loads(out.with_suffix(".json").read_text())
    comparison = payload["comparison"]
    constant = {m for m, c in comparison["all"]["auc"].items()
                if m in ORACLE_COLUMNS and c["low"] == c["high"] == 0.5}  # fmt: skip
    for cell in comparison.values():
        for key in ("auc", "difference"):
            cell[key] = {m: v for m, v in cell.get(key, {}).items() if m not in constant}
        for v in cell.get("difference", {}).values():
            for m in constant:
                v.pop(m, None)
    payload["comparison"] = comparison
    if out.with_suffix(".parquet").exists():
        payload["normalized_entropy"] = entropies(pd.read_parquet(out.with_suffix(".parquet")))
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=float))
    out.with_suffix(".md").write_text(render(payload["name"], comparison, payload["arms"], payload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="lifelong")
    parser.add_argument("--name", required=True)
    parser.add_argument("--arm", action="append", default=[], help="name=JSON overrides")
    parser.add_argument("--baselines", default="", help="raw-history variants, comma-separated")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--reference", default="", help="model the differences are taken from")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--rerender",
        action="store_true",
        help="rewrite the .md of --name from its committed .json, no training",
    )
    args = parser.parse_args()
    if args.rerender:
        rerender(RESULTS_DIR / f"model_quality-{args.name}")
        return
    torch.manual_seed(0)
    base = load_config(args.profile)
    arms = {name: json.loads(text) for name, text in (a.split("=", 1) for a in args.arm)}
    if args.baselines:
        arms["baselines"] = {"ranker": {"variants": args.baselines.split(",")}}
    started = time.perf_counter()
    histories, impressions, as_of_us = (source_world if base.source else world)(base)
    days = sorted(impressions.impression_date.unique())
    eval_days = days[-base.ranker.eval_days :]
    train_imp = impressions[~impressions.impression_date.isin(eval_days)]
    test_imp = impressions[impressions.impression_date.isin(eval_days)].reset_index(drop=True)
    scores, timings = {}, {}
    for arm, overrides in arms.items():
        cfg = arm_config(base, overrides)
        got, timings[arm] = run_arm(cfg, histories, train_imp, test_imp,
                                    overrides.get("pooling", {}), args.seeds, as_of_us)  # fmt: skip
        for variant, s in got.items():
            scores[variant if arm == "baselines" else f"{arm}/{variant}"] = s
        print(arm, {k: round(v, 1) for k, v in timings[arm].items()}, flush=True)
    lengths = test_imp.user_id.map(histories.set_index("user_id").history_length).fillna(0)
    # real data has no oracle (the loaders write NaN there)
    oracle = {c: test_imp[c].to_numpy()[None, :] for c in ORACLE_COLUMNS
              if c in test_imp and test_imp[c].notna().all()}  # fmt: skip
    comparison = paired_comparison_by_bucket(
        test_imp.label.to_numpy(), test_imp.user_id.to_numpy(), lengths.to_numpy(),
        {**scores, **oracle}, resamples=args.resamples, confidence=0.95, seed=0, min_users=20,
    )  # fmt: skip
    meta = {"profile": args.profile, "eval_rows": len(test_imp), "seeds": args.seeds,
            "reference": args.reference, "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    predictions = test_imp[["impression_id", "user_id", "label"]].assign(history_length=lengths)
    for model, s in scores.items():
        for seed, row in enumerate(s):
            predictions[f"score__{model}__seed{seed}"] = row.astype(np.float32)
    meta["normalized_entropy"] = entropies(predictions)
    table = render(args.name, comparison, arms, meta)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"model_quality-{args.name}"
    predictions.to_parquet(out.with_suffix(".parquet"), index=False)
    payload = {"name": args.name, "arms": arms, **meta, "timings": timings,
               "comparison": comparison, "generator": base.generator.model_dump(mode="json"),
               **provenance()}  # fmt: skip
    Path(out.with_suffix(".json")).write_text(json.dumps(payload, indent=2, default=float))
    Path(out.with_suffix(".md")).write_text(table)


if __name__ == "__main__":
    main()
