"""Refresh cost in new events: one user's memory-mode summary from a cached state.

A user with N events (1M by default) gets ``--new`` events (1,000) between two
snapshots 2 hours apart. A full pass folds all N + new events; a refresh advances the
cached state by each head's decay and folds only the new ones (models/summarizer.py
``MemorySummarizer.refresh``). Both at the profile's summarizer shape (default: the
embedded default's K x D), median of ``--repeats`` after a warm-up, in one process, with
the refresh's largest relative difference from the full pass.

    .venv/bin/python bench/refresh_bench.py                 # -> docs/results/refresh.{md,json}

Prints the table and writes docs/results/refresh.md and .json (machine and commit).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.summarizer import MICROS_PER_DAY, build_summarizer, encode_histories  # noqa: E402
from vista.core.config import load_config  # noqa: E402
from vista.provenance import RESULTS_DIR, provenance  # noqa: E402

TWO_HOURS_US = 2 * 3600 * 1_000_000


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def measure(cfg, n: int, new: int, repeats: int) -> dict:
    model = build_summarizer(cfg).eval()
    rng = np.random.default_rng(0)
    as_of = 3 * 365 * MICROS_PER_DAY
    before = as_of - TWO_HOURS_US
    ts = np.r_[np.sort(rng.integers(0, before, n)), np.sort(rng.integers(before, as_of, new))]
    items, cats = rng.integers(1, 10**6, n + new), rng.integers(0, 500, n + new)
    with torch.inference_mode():
        cached = model.state(encode_histories([items[:n]], [cats[:n]], [ts[:n]], before, cfg))

        def full():
            return model.state(encode_histories([items], [cats], [ts], as_of, cfg))

        def refresh():
            fresh = encode_histories([items[n:]], [cats[n:]], [ts[n:]], as_of, cfg)
            return model.refresh(cached, before, fresh, as_of)

        full_s, whole = timed(full, repeats)
        refresh_s, refreshed = timed(refresh, repeats)
    error = ((refreshed - whole).abs().max() / whole.abs().max()).item()
    return {"events": n, "new_events": new, "full_seconds": full_s,
            "refresh_seconds": refresh_s, "speedup": full_s / refresh_s,
            "max_relative_difference": error,
            "state_bytes": cached.element_size() * cached.numel()}  # fmt: skip


def render(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Refresh of one user's summary, {meta['shape']}, {meta['threads']} thread(s), median "
        f"of {meta['repeats']} (bench/refresh_bench.py):",
        "",
        "| events cached | new events | full pass (s) | refresh (s) | speedup | max relative difference | cached state (bytes, fp32) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['events']:,} | {r['new_events']:,} | {r['full_seconds']:.3f} | "
                     f"{r['refresh_seconds']:.5f} | {r['speedup']:,.0f}x | "
                     f"{r['max_relative_difference']:.1e} | {r.get('state_bytes', 0):,} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="local")
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config(args.profile).summarizer
    if cfg.mode != "memory":
        raise SystemExit(f"profile {args.profile} summarizes in mode {cfg.mode}: a refresh "
                         "needs summarizer.mode: memory")  # fmt: skip
    rows = [measure(cfg, n, args.new, args.repeats) for n in args.events]
    meta = {"profile": args.profile, "repeats": args.repeats, "threads": torch.get_num_threads(),
            "shape": f"K {cfg.n_seeds} x D {cfg.dim}, {cfg.n_heads} heads "
                     f"({cfg.sketch_heads} sketch), half-lives {cfg.half_lives()} days"}  # fmt: skip
    table = render(rows, meta)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "refresh.md").write_text(table)
    payload = {**meta, "rows": rows, **provenance()}
    (RESULTS_DIR / "refresh.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
