"""Summarizer cost against history length: is it linear, and is memory bounded?

For N = 1k, 10k, 100k, 1M events (one user), each size in a fresh subprocess so
that its peak RSS is its own: wall time (best of --repeats after a warm-up), peak
memory, achieved FLOP/s (analytic count) against a plain matmul rate measured in
the same process, and the softmax reference where its N^2 scores fit in memory.

    .venv/bin/python bench/summarizer_bench.py               # CPU, default sizes
    .venv/bin/python bench/summarizer_bench.py --device cuda # where a GPU is present
    .venv/bin/python bench/summarizer_bench.py --profile local   # the product's summarizer

Without ``--profile`` it measures the bidirectional summarizer at the given shape and
writes bench/results/summarizer_<device>.json. With ``--profile`` it measures that
profile's summarizer (the embedded default: memory mode with its item sketch) at
``--seeds`` x ``--dim``, ``--repeats`` times after a warm-up (median), and writes
docs/results/summarizer-<profile>-<device>-k<K>-d<D>.{md,json} with the machine and commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SIZES = (1_000, 10_000, 100_000, 1_000_000)
SOFTMAX_MEMORY_LIMIT = 4 * 2**30  # bytes of attention scores we allow the reference


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, dim: int) -> dict:
    """GFLOP/s of the model's own matmul shape and of a large square one."""
    import torch

    out = {}
    for name, (m, k, n) in {
        "model_shape": (8192, dim, 4 * dim),
        "square_2048": (2048,) * 3,
    }.items():
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        a @ b
        _synchronize(device)
        reps, started = 0, time.perf_counter()
        while time.perf_counter() - started < 1.0:
            a @ b
            reps += 1
        _synchronize(device)
        out[name] = 2 * m * k * n * reps / (time.perf_counter() - started) / 1e9
    return out


def measure_one(args) -> dict:
    """Runs in the child process: one history length."""
    import numpy as np
    import torch

    from models.summarizer import VistaSummarizer, build_summarizer, encode_histories
    from vista.core.config import SummarizerConfig, load_config

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.profile:
        cfg = load_config(args.profile).summarizer.model_copy(
            update={"n_seeds": args.seeds, "dim": args.dim, "chunk_size": args.chunk}
        )
        model = build_summarizer(cfg).to(device).eval()
    else:
        cfg = SummarizerConfig(n_seeds=args.seeds, dim=args.dim, n_layers=args.layers,
                               n_heads=args.heads, vocab_size=100_003, chunk_size=args.chunk)  # fmt: skip
        model = VistaSummarizer(cfg).to(device).eval()
    rng = np.random.default_rng(0)
    n = args.one
    as_of = 10**15
    batch = encode_histories(
        [rng.integers(0, 10**6, n)],
        [rng.integers(0, 500, n)],
        [np.sort(rng.integers(as_of - 3 * 10**13, as_of, n))],
        as_of,
        cfg,
    ).to(device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model(batch)  # warm-up
        times = []
        for _ in range(args.repeats):
            _synchronize(device)
            started = time.perf_counter()
            tokens = model(batch)
            _synchronize(device)
            times.append(time.perf_counter() - started)
        assert torch.isfinite(tokens).all()
        seconds = statistics.median(times) if args.profile else min(times)
        softmax_seconds = None
        scores_bytes = args.heads * (n + args.seeds) ** 2 * 4
        if scores_bytes <= SOFTMAX_MEMORY_LIMIT and hasattr(model, "reference_forward"):
            _synchronize(device)
            started = time.perf_counter()
            model.reference_forward(batch, "softmax")
            _synchronize(device)
            softmax_seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    flops = model.flops_per_event() * n
    result = {
        "events": n,
        "seconds": seconds,
        "seconds_each": times,
        "events_per_second": n / seconds,
        "gflops_achieved": flops / seconds / 1e9,
        "peak_rss_bytes": peak_rss,
        "rss_before_forward_bytes": base_rss,
        "softmax_reference_seconds": softmax_seconds,
        "matmul_gflops": matmul_rate(device, args.dim),
    }
    if device.type == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seeds", type=int, default=128, help="K summary tokens")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=8192, help="events per chunk")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", default="", help="measure this profile's summarizer")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args)))
        return
    rows = []
    for n in args.sizes:
        child = [sys.executable, __file__, "--one", str(n)] + [
            f"--{k}={getattr(args, k)}"
            for k in (
                "seeds",
                "dim",
                "layers",
                "heads",
                "chunk",
                "repeats",
                "threads",
                "device",
                "profile",
            )
        ]
        out = subprocess.run(child, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"N={n:>9,}  {r['seconds']:8.3f} s  {r['events_per_second']:>12,.0f} ev/s  "
            f"{r['gflops_achieved']:7.1f} GFLOP/s  peak RSS {r['peak_rss_bytes'] / 2**20:8.1f} MiB",
            flush=True,
        )
    by_n = {r["events"]: r for r in rows}
    ratio = (
        by_n[1_000_000]["seconds"] / by_n[100_000]["seconds"]
        if {100_000, 1_000_000} <= by_n.keys()
        else None
    )
    table = render(rows, ratio, args)
    print("\n" + table)
    payload = {
        "benchmark": "summarizer",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": args.device},
        "config": {
            k: getattr(args, k)
            for k in ("seeds", "dim", "layers", "heads", "chunk", "threads", "repeats", "profile")
        },
        "rows": rows,
        "ratio_1m_over_100k": ratio,
    }
    if args.profile:
        from vista.provenance import RESULTS_DIR, provenance

        stem = RESULTS_DIR / f"summarizer-{args.profile}-{args.device}-k{args.seeds}-d{args.dim}"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        made_at = provenance()  # before this run's own files change the tree
        stem.with_suffix(".md").write_text(table)
        stem.with_suffix(".json").write_text(json.dumps({**payload, **made_at}, indent=2))
        print(f"wrote {stem}.md and .json")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"summarizer_{args.device}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def render(rows: list[dict], ratio: float | None, args) -> str:
    """The table: per history length its time, rate, share of the matmul rate measured in
    the same process, peak memory; then t(1M)/t(100k) and the matmul rates."""
    what = f"profile `{args.profile}`'s summarizer" if args.profile else "bidirectional summarizer"
    lines = [f"Summarizer cost against history length ({what}, K={args.seeds}, D={args.dim}, "
             f"{args.device}, {args.threads} threads; median of {args.repeats} after a "
             f"warm-up)" if args.profile else f"Summarizer cost ({what})", "",
             "| events | seconds | events/s | GFLOP/s | % of matmul | peak RSS MiB | softmax s |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        share = 100 * r["gflops_achieved"] / r["matmul_gflops"]["model_shape"]
        soft = r["softmax_reference_seconds"]
        lines.append(f"| {r['events']:,} | {r['seconds']:.3f} | {r['events_per_second']:,.0f} | "
                     f"{r['gflops_achieved']:.1f} | {share:.0f}% | "
                     f"{r['peak_rss_bytes'] / 2**20:.0f} | "
                     f"{'n/a' if soft is None else f'{soft:.3f}'} |")  # fmt: skip
    lines.append("")
    if ratio is not None:
        lines.append(f"t(1M) / t(100k) = {ratio:.2f} (linear cost: about 10). ")
    matmul = rows[0]["matmul_gflops"]
    lines.append(f"Plain matmul in the same process: the model's shape {matmul['model_shape']:.1f} "
                 f"GFLOP/s, 2048^3 {matmul['square_2048']:.1f} GFLOP/s.")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
