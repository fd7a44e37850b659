"""Online scoring latency: VISTA from the online store vs full target attention.

Builds a small world of its own (the tiny profile with the local profile's summary
size, K=16 x D=32; users of about 1,000 events and one of exactly 1,000,000), runs the
pipeline on it (ingest -> histories -> summarizer -> summaries -> Feast -> ranker_v1),
starts `vista.serving` under uvicorn on loopback and times real HTTP requests to
POST /score for the user whose history is nearest 1,000 events and for the
1,000,000-event user, with N = 100 and 1,000 candidates, and the same requests in
process (online-store read + scoring, no HTTP or JSON). Then, for the same users and
candidates, full target attention over the raw history (softmax attention over all
events, weights random: only the cost matters), given the history already in memory,
plus the time to read that history from the Delta table, which a service scoring from
raw history pays on top.

Prints a table and writes bench/results/serving_<store>.json.

    .venv/bin/python bench/serving_bench.py [--requests 200] [--online-store sqlite|redis]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

from devservers.ports import free_port
from vista.core import names
from vista.core.snapshot import Snapshot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
HEAVY = 1_000_000
LIGHT = 1_000
CANDIDATES = (100, 1_000)


def bench_config(work: Path, online_store: str = "sqlite", redis: str | None = None):
    from vista.core.config import load_config

    features = {"online_store": online_store}
    if redis is not None:
        features["redis_connection_string"] = redis
    return load_config(
        "tiny",
        overrides={
            "paths": {
                "state": str(work / "state"),
                "lake": str(work / "lake"),
                "reports": str(work / "reports"),
            },
            # every other user near 1,000 events (a thin power-law tail), one at 1,000,000
            "generator": {
                "min_history": LIGHT,
                "activity_alpha": 10.0,
                "max_history": HEAVY,
                "heavy_users": 1,
            },
            "summarizer": {"n_seeds": 16, "dim": 32, "n_heads": 2, "chunk_size": 8192},
            "ranker": {"dim": 32},
            "features": features,
        },
        environ={},
    )


def build_world(cfg) -> dict:
    """The pipeline up to a trained ranker; every step skips what is already done."""
    from vista import pipeline

    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    steps = {}
    for name, step in (
        ("data", lambda: pipeline.ingest_events(cfg)),
        ("histories", lambda: pipeline.build_histories(cfg, as_of)),
        ("summarizer", lambda: pipeline.train_summarizer(cfg, as_of, progress=False)),
        ("summaries", lambda: pipeline.summarize(cfg, as_of)),
        ("features", lambda: pipeline.publish_features(cfg, as_of)),
        ("ranker", lambda: pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)),
    ):
        started = time.perf_counter()
        step()
        steps[name] = round(time.perf_counter() - started, 1)
        print(f"  {name}: {steps[name]} s", flush=True)
    return {"as_of": as_of, "step_seconds": steps}


def pick_users(cfg, as_of) -> dict[str, tuple[int, int]]:
    """label -> (user_id, history length): nearest 1,000 events, and the heaviest."""
    from vista import pipeline

    frame = pipeline.read_summaries(cfg, as_of)[["user_id", "history_length"]]
    lengths = frame.set_index("user_id")["history_length"]
    light = int((lengths - LIGHT).abs().idxmin())
    heavy = int(lengths.idxmax())
    return {"~1k events": (light, int(lengths[light])), "1M events": (heavy, int(lengths[heavy]))}


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "n": len(ms),
    }


def start_server(service):
    import uvicorn

    from vista.serving import create_app, freeze_startup_heap

    port = free_port()
    app = create_app(service)
    freeze_startup_heap()  # as `vista serve` does
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def candidate_payload(n: int, rng) -> list[dict]:
    items, cats = rng.integers(0, 400, n), rng.integers(0, 12, n)
    return [{"item_id": int(i), "category": int(c)} for i, c in zip(items, cats, strict=True)]


def time_service(url: str, service, users: dict, requests: int, seed: int) -> list[dict]:
    """Each (user, N) over HTTP, then the same request in process (online-store read and
    scoring, no HTTP or JSON), which is what the model path itself costs."""
    import httpx

    from vista.serving import ScoreRequest

    rng = np.random.default_rng(seed)
    rows = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for label, (user, length) in users.items():
            for n in CANDIDATES:
                payload = {"user_id": user, "candidates": candidate_payload(n, rng)}
                for _ in range(10):  # warm-up
                    client.post("/score", json=payload).raise_for_status()
                seconds = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = client.post("/score", json=payload)
                    seconds.append(time.perf_counter() - started)
                    response.raise_for_status()
                body = response.json()
                if body["summary_status"] != "fresh" or body["history_length"] != length:
                    raise RuntimeError(f"user {user} was not scored from its summary: {body}")
                request = ScoreRequest.model_validate(payload)
                in_process = []
                for _ in range(requests):
                    started = time.perf_counter()
                    service.score(request)
                    in_process.append(time.perf_counter() - started)
                cell = {"user": label, "history_length": length, "candidates": n}
                rows.append({"method": "vista service (HTTP)", **cell, **percentiles(seconds)})
                rows.append({"method": "vista in process", **cell, **percentiles(in_process)})
    return rows


def time_full_attention(cfg, as_of, users: dict, requests: int, seed: int) -> list[dict]:
    """Full target attention over every raw event, for the same users and N."""
    import dataclasses

    import torch

    from models.ranker import Ranker, score_one_user
    from models.summarizer import item_index
    from vista.core import lake
    from vista.evaluation import ranker_spec

    torch.manual_seed(seed)
    spec = dataclasses.replace(ranker_spec(cfg, "full_attention"), full_attention_length=HEAVY)
    model = Ranker(spec, cfg.ranker).eval()
    rng = np.random.default_rng(seed)
    rows = []
    path = cfg.paths.table(names.HISTORIES)
    for label, (user, length) in users.items():
        read = []
        for _ in range(3):
            started = time.perf_counter()
            table = lake.read_arrow(
                path,
                columns=["user_id", "item_ids", "categories"],
                filters=[("user_id", "=", user)],
            )
            read.append(time.perf_counter() - started)
        items = np.asarray(table.column("item_ids")[0].as_py(), np.int64)
        cats = np.asarray(table.column("categories")[0].as_py(), np.int64)
        seq = (
            torch.from_numpy(item_index(items, spec.vocab_size))[None, :],
            torch.from_numpy(item_index(cats, spec.category_vocab_size))[None, :],
        )
        repeats = requests if length < 100_000 else 5
        for n in CANDIDATES:
            cand = (
                torch.from_numpy(item_index(rng.integers(0, 400, n), spec.vocab_size)),
                torch.from_numpy(item_index(rng.integers(0, 12, n), spec.category_vocab_size)),
            )
            empty = torch.zeros((1, 0))
            with torch.inference_mode():
                score_one_user(model, cand, empty, *seq)  # warm-up
                seconds = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    score_one_user(model, cand, empty, *seq)
                    seconds.append(time.perf_counter() - started)
            rows.append(
                {
                    "method": "full attention (in memory)",
                    "user": label,
                    "history_length": length,
                    "candidates": n,
                    **percentiles(seconds),
                    "history_read_ms": round(float(np.median(read)) * 1000, 1),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per cell")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "serving")
    parser.add_argument(
        "--online-store",
        choices=("sqlite", "redis"),
        default="sqlite",
        help="redis: a redis-server of its own on loopback",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("FEAST_USAGE", "False")

    work = args.work.resolve()
    with contextlib.ExitStack() as stack:
        redis = None
        if args.online_store == "redis":
            from devservers.redis_server import local_redis_server

            redis = stack.enter_context(local_redis_server(work / "redis"))
        cfg = bench_config(work, args.online_store, redis)
        print("building the world (skips what exists):", flush=True)
        world = build_world(cfg)
        users = pick_users(cfg, world["as_of"])
        from vista.serving import load_service

        # the world is synthetic and dated: serve as of its snapshot's day, so summaries
        # are fresh (at today's date they would be past features.ttl_days: "stale")
        served_at = world["as_of"] + dt.timedelta(hours=12)
        service = load_service(cfg, clock=lambda: served_at)
        server, thread, url = start_server(service)
        try:
            rows = time_service(url, service, users, args.requests, args.seed)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    rows += time_full_attention(cfg, world["as_of"], users, args.requests, args.seed)

    header = (
        f"{'method':<28} {'user':<11} {'events':>9} {'N':>5} {'p50 ms':>9} "
        f"{'p99 ms':>9} {'mean ms':>9} {'history read ms':>16}"
    )
    print(header)
    for r in rows:
        read = r.get("history_read_ms")
        print(
            f"{r['method']:<28} {r['user']:<11} {r['history_length']:>9,} "
            f"{r['candidates']:>5} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} "
            f"{r['mean_ms']:>9.2f} {'' if read is None else f'{read:.1f}':>16}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"serving_{args.online_store}.json"
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "summary_tokens": [cfg.summarizer.n_seeds, cfg.summarizer.dim],
                "ranker_dim": cfg.ranker.dim,
                "requests_per_cell": args.requests,
                "online_store": args.online_store,
                "build_step_seconds": world["step_seconds"],
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
