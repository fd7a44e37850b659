"""Summary cache: storage per codec against its reconstruction error (and ranker AUC).

Takes a profile's histories snapshot and frozen summarizer (run the pipeline first, e.g.
``make run``), computes every user's float32 summary tokens once, then for each codec
(int8 with a per-token scale, bf16, float32, and the old ``array<float>`` column):
- bytes on disk of the summaries written as parquet the way the pipeline writes them,
- reconstruction error of the decoded tokens against float32 (relative L2 per user,
  largest absolute error relative to its token's largest value, cosine similarity),
- with ``--ranker``: ranker_v1 trained and evaluated on each codec's decoded tokens
  (same impressions, same seed), so the AUC difference is the codec's alone.

Prints a table and writes bench/results/cache_<profile>.json.

    .venv/bin/python bench/cache_bench.py --ranker
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from vista.core.snapshot import Snapshot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
LAYOUTS = ("int8", "bf16", "float32", "array<float>")


def stored_bytes(tokens, layout: str, user_ids, folder: Path) -> int:
    """Parquet bytes of the summaries in ``layout`` (Delta's default compression)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vista.core.summary_codec import encode

    n = len(tokens)
    if layout == "array<float>":
        columns = {"summary": pa.array(list(tokens.reshape(n, -1)), pa.list_(pa.float32()))}
    else:
        codes, scales = encode(tokens, layout)
        columns = {
            "summary_codes": pa.array(codes, pa.binary()),
            "summary_scales": pa.array(list(scales), pa.list_(pa.float32())),
            "summary_codec": pa.array([layout] * n),
        }
    path = folder / f"{layout.replace('<', '_').replace('>', '')}.parquet"
    pq.write_table(pa.table({"user_id": pa.array(user_ids, pa.int64()), **columns}), path,
                   compression="snappy")  # fmt: skip
    return path.stat().st_size


def decoded(tokens, layout: str):
    from vista.core.summary_codec import decode, encode

    if layout == "array<float>":
        return tokens.reshape(len(tokens), -1)
    codes, scales = encode(tokens, layout)
    _, k, d = tokens.shape
    return decode(codes, scales, layout, k, d)


def errors(tokens, approx) -> dict:
    import numpy as np

    n, k, d = tokens.shape
    x = tokens.reshape(n, -1).astype(np.float64)
    y = approx.astype(np.float64)
    rel = np.linalg.norm(y - x, axis=1) / np.maximum(np.linalg.norm(x, axis=1), 1e-30)
    token_max = np.abs(tokens).max(axis=2).reshape(n, k, 1)
    per_token = (np.abs(y.reshape(n, k, d) - tokens) / np.maximum(token_max, 1e-30)).max()
    cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-30)
    return {
        "relative_l2_mean": float(rel.mean()),
        "relative_l2_max": float(rel.max()),
        "max_error_over_token_max": float(per_token),
        "cosine_min": float(cos.min()),
    }


def ranker_auc(cfg, as_of, user_ids, vectors) -> dict:
    """ranker_v1 on these vectors: train on the training days, AUC on the later days."""
    import pandas as pd

    from models.evaluation import ranking_metrics
    from models.ranker import score, train_ranker
    from vista import state
    from vista.evaluation import ranker_spec

    by_user = dict(zip(user_ids.tolist(), list(vectors), strict=True))
    train_days, eval_days = state.impression_windows(cfg, as_of)

    def frame(days):
        imps = state.read_impressions(cfg, days).sort_values("impression_id")
        summary = imps["user_id"].map(by_user)
        return imps.assign(summary=summary.where(summary.notna(), None)).reset_index(drop=True)

    train, test = frame(train_days), frame(eval_days)
    spec = dataclasses.replace(ranker_spec(cfg, "vista"), recent_items=0)
    model, _ = train_ranker(train, cfg.ranker, spec, progress=False)
    return ranking_metrics(test["label"].to_numpy(), score(model, pd.DataFrame(test)),
                           test["user_id"].to_numpy())  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--profile", default="local")
    parser.add_argument("--as-of", help="histories snapshot (default: the profile's as_of)")
    parser.add_argument("--ranker", action="store_true", help="train ranker_v1 per codec too")
    args = parser.parse_args()

    import numpy as np
    import torch

    from models.summarizer import load_checkpoint
    from spark_jobs.summarize import summary_tokens
    from vista import pipeline, state
    from vista.core.config import load_config

    cfg = load_config(args.profile)
    as_of = Snapshot.of(args.as_of or pipeline.default_as_of(cfg))
    current = state.current_summarizer(cfg)
    model = load_checkpoint(Path(current["path"]), cfg.summarizer).eval()
    torch.set_num_threads(os.cpu_count() or 1)
    histories = pipeline.read_histories(cfg, as_of)
    started = time.perf_counter()
    tokens = summary_tokens(histories, model, as_of)
    summarize_seconds = time.perf_counter() - started
    user_ids = histories["user_id"].to_numpy()
    n, k, d = tokens.shape
    print(f"{n:,} users, K x D = {k} x {d}, summarized in {summarize_seconds:.1f} s", flush=True)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in LAYOUTS:
            approx = decoded(tokens, layout)
            row = {"bytes": stored_bytes(tokens, layout, user_ids, Path(tmp)),
                   **errors(tokens, approx)}  # fmt: skip
            if args.ranker and layout != "array<float>":  # same values as float32
                print(f"training ranker_v1 on {layout} ...", flush=True)
                row["ranker"] = ranker_auc(cfg, as_of, user_ids, approx)
            rows[layout] = row
    base = rows["array<float>"]["bytes"]
    header = (
        f"{'stored as':<14} {'MiB':>8} {'B/user':>8} {'vs float':>9} {'rel L2 mean':>12} "
        f"{'rel L2 max':>11} {'err/tok max':>12} {'cos min':>9}"
        + (f" {'ranker AUC':>11}" if args.ranker else "")
    )
    print("\n" + header + "\n" + "-" * len(header))
    for layout, r in rows.items():
        r["saving_vs_array_float"] = base / r["bytes"]
        print(
            f"{layout:<14} {r['bytes'] / 2**20:>8.2f} {r['bytes'] / n:>8.0f} "
            f"{r['saving_vs_array_float']:>8.2f}x {r['relative_l2_mean']:>12.2e} "
            f"{r['relative_l2_max']:>11.2e} {r['max_error_over_token_max']:>12.2e} "
            f"{r['cosine_min']:>9.6f}" + (f" {r['ranker']['auc']:>11.4f}" if "ranker" in r else "")
        )
    payload = {
        "benchmark": "summary_cache",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "profile": args.profile,
        "as_of": as_of.iso,
        "users": n,
        "n_tokens": k,
        "token_dim": d,
        "summarizer_version": current["version"],
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cache_{args.profile}.json"
    out.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {out}")
    assert np.isfinite(tokens).all()


if __name__ == "__main__":
    main()
