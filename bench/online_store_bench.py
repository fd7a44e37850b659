"""Online read latency of the summary features: Feast's SQLite store against Redis.

Writes one snapshot of int8 summaries for ``--users`` users (K x D of the local profile,
16 x 32, the schema the pipeline writes) to a Delta table, materializes it into SQLite
(the embedded default) and into Redis (a redis-server this script starts on loopback and
stops), checks that both serve every user's full K*D vector exactly, then times
``get_online_features`` in one run, alternating the stores request by request so that
noise from other work on the machine hits both alike:
- 1 user, decoded: ``vista.features.online_summaries`` (the on-demand view decodes the
  codes to float32, plus history_length and summarizer_version), what a ranker calls;
- 1 user, stored row: the encoded view's fields only (the store's own cost, no decode);
- ``--batch`` users, decoded: one request for many users.
Prints a table (p50/p99/mean in ms) and writes bench/results/online_store.json.

    .venv/bin/python bench/online_store_bench.py [--users 1000 --reads 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FEAST_USAGE", "False")
RESULTS = ROOT / "bench" / "results"
SUMMARIZER_VERSION = "bench"
STORES = ("sqlite", "redis")
STORED_FIELDS = ("summary_codes", "summary_scales", "summary_codec", "history_length",
                 "summarizer_version")  # fmt: skip


def bench_config(root: Path, lake: Path, store: str, connection: str = "localhost:6379"):
    """The local profile (K and D as deployed) in ``root``, reading the shared ``lake``."""
    from vista.core.config import load_config

    paths = {"state": str(root / "state"), "lake": str(lake), "reports": str(root / "reports")}
    features = {"online_store": store, "redis_connection_string": connection}
    return load_config("local", overrides={"paths": paths, "features": features}, environ={})


def summaries_table(n_users: int, k: int, d: int, as_of: dt.datetime, seed: int = 0):
    """One snapshot in the pipeline's schema (spark_jobs/summarize.py), int8-encoded."""
    import pyarrow as pa

    from vista.core.summary_codec import encode

    rng = np.random.default_rng(seed)
    tokens = rng.standard_normal((n_users, k, d)).astype(np.float32)
    codes, scales = encode(tokens, "int8")
    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "user_id": pa.array(np.arange(1, n_users + 1), pa.int64()),
        "event_timestamp": pa.array([as_of] * n_users, ts),
        "summarizer_version": pa.array([SUMMARIZER_VERSION] * n_users),
        "history_length": pa.array(rng.integers(1, 50_000, n_users), pa.int64()),
        "is_empty_history": pa.array([False] * n_users),
        "summary_codes": pa.array(codes, pa.binary()),
        "summary_scales": pa.array(list(scales), pa.list_(pa.float32())),
        "summary_codec": pa.array(["int8"] * n_users),
        "created_timestamp": pa.array([as_of] * n_users, ts),
        "as_of_date": pa.array([as_of.date().isoformat()] * n_users),
    })  # fmt: skip


def publish(cfg, as_of: dt.datetime):
    """apply + materialize the summary view; returns (store, materialize seconds)."""
    from vista import features, state

    pointer = state.checkpoint_dir(cfg) / "current.json"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(json.dumps({"version": SUMMARIZER_VERSION}))
    store = features.apply_repo(cfg)
    started = time.perf_counter()
    store.materialize(start_date=as_of - dt.timedelta(days=1),
                      end_date=as_of + dt.timedelta(days=1),
                      feature_views=[features.ENCODED_VIEW])  # fmt: skip
    return store, time.perf_counter() - started


def stored_bytes(cfg, connection: str) -> int:
    """The online store's size: SQLite's file, or the memory Redis reports in use."""
    if cfg.features.online_store == "sqlite":
        return (cfg.paths.state / "feast" / "online_store.db").stat().st_size
    from redis import Redis

    host, port = connection.split(":")
    with Redis(host=host, port=int(port)) as client:
        return int(client.info("memory")["used_memory"])


def served_exactly(store, table, k: int, d: int) -> bool:
    """Every user's full K*D vector, history_length and version, as written."""
    from vista import features
    from vista.core.summary_codec import decode

    users = table["user_id"].to_pylist()
    online = features.online_summaries(store, users)
    want = decode(table["summary_codes"].to_pylist(), table["summary_scales"].to_pylist(),
                  "int8", k, d)  # fmt: skip
    got = np.asarray(online["summary"], dtype=np.float32)
    return bool(
        got.shape == want.shape
        and np.array_equal(got, want)
        and online["history_length"] == table["history_length"].to_pylist()
        and set(online["summarizer_version"]) == {SUMMARIZER_VERSION}
    )


def request_kinds(batch: int) -> dict:
    """name -> (users per request, read(store, users))."""
    from vista import features

    stored = [f"{features.ENCODED_VIEW}:{f}" for f in STORED_FIELDS]

    def stored_row(store, users):
        rows = [{"user_id": u} for u in users]
        return store.get_online_features(features=stored, entity_rows=rows).to_dict()

    return {
        "1 user, decoded": (1, features.online_summaries),
        "1 user, stored row": (1, stored_row),
        f"{batch} users, decoded": (batch, features.online_summaries),
    }


def time_reads(stores: dict, read, users_per_request: int, n_requests: int, n_users: int,
               rng) -> dict[str, np.ndarray]:  # fmt: skip
    """Milliseconds per request for each store, the stores alternating request by request
    on the same random users."""
    out = {name: np.empty(n_requests) for name in stores}
    for i in range(n_requests):
        users = rng.integers(1, n_users + 1, users_per_request).tolist()
        for name, store in stores.items():
            started = time.perf_counter_ns()
            read(store, users)
            out[name][i] = (time.perf_counter_ns() - started) / 1e6
    return out


def summary(ms: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "requests": len(ms)}  # fmt: skip


def machine() -> dict:
    from devservers.redis_server import find_redis_server

    server = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True,
                            check=True).stdout.split()  # fmt: skip
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "feast": package_version("feast"),
        "redis_server": next((w[2:] for w in server if w.startswith("v=")), "?"),
        "redis_py": package_version("redis"),
        "hiredis": package_version("hiredis"),
        "sqlite": sqlite3.sqlite_version,
        "redis_transport": "TCP over loopback (127.0.0.1), same machine",
    }


def run(args: argparse.Namespace, folder: Path) -> dict:
    from devservers.redis_server import local_redis_server
    from vista.core import lake

    probe = bench_config(folder / "sqlite", folder / "lake", "sqlite")
    k, d = probe.summarizer.n_seeds, probe.summarizer.dim
    as_of = dt.datetime.combine(dt.date.today(), dt.time(), tzinfo=dt.UTC)
    table = summaries_table(args.users, k, d, as_of)
    lake.write_arrow(folder / "lake" / "user_summaries" / SUMMARIZER_VERSION, table,
                     ["as_of_date"], mode="overwrite")  # fmt: skip
    with local_redis_server(folder / "redis") as connection:
        stores, materialize_s, exact, per_user = {}, {}, {}, {}
        for name in STORES:
            cfg = bench_config(folder / name, folder / "lake", name, connection)
            empty = stored_bytes(cfg, connection) if name == "redis" else 0
            stores[name], materialize_s[name] = publish(cfg, as_of)
            per_user[name] = (stored_bytes(cfg, connection) - empty) / args.users
            exact[name] = served_exactly(stores[name], table, k, d)
        rng = np.random.default_rng(args.seed)
        latency = {}
        for kind, (size, read) in request_kinds(args.batch).items():
            n = args.reads if size == 1 else args.batches
            time_reads(stores, read, size, args.warmup, args.users, rng)
            timed = time_reads(stores, read, size, n, args.users, rng)
            latency[kind] = {name: summary(ms) for name, ms in timed.items()}
    return {
        "users": args.users,
        "n_tokens": k,
        "token_dim": d,
        "codec": "int8",
        "materialize_s": materialize_s,
        "stored_bytes_per_user": per_user,
        "serves_every_user_exactly": exact,
        "latency": latency,
        "machine": machine(),
    }


def print_table(result: dict) -> None:
    users, k, d = result["users"], result["n_tokens"], result["token_dim"]
    print(f"online reads of {k} x {d} int8 summaries, {users} users, stores alternating")
    print(f"{'request':<22}{'store':<8}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'n':>7}")
    for kind, per_store in result["latency"].items():
        for name, s in per_store.items():
            print(f"{kind:<22}{name:<8}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}"
                  f"{s['mean_ms']:>9.2f}{s['requests']:>7}")  # fmt: skip
    load = result["machine"]["load_average_1m"]
    print(
        f"load average (1 min) {load['before']:.1f} before, {load['after']:.1f} after, "
        f"on {result['machine']['cpus']} CPUs"
    )
    for name in STORES:
        print(f"{name}: materialize {users} users {result['materialize_s'][name]:.1f} s, "
              f"{result['stored_bytes_per_user'][name]:.0f} bytes/user; "
              f"serves every user exactly: {result['serves_every_user_exactly'][name]}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=1000, help="single-user requests per store")
    parser.add_argument("--batch", type=int, default=100, help="users per batch request")
    parser.add_argument("--batches", type=int, default=200, help="batch requests per store")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "online_store.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        result = run(args, Path(folder))
    # other work on a shared machine shows up in p99 first; the load says how much there was
    result["machine"]["load_average_1m"] = {"before": load_before, "after": os.getloadavg()[0]}
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    if not all(result["serves_every_user_exactly"].values()):
        raise SystemExit("a store did not serve every user's summary exactly")
    return result


if __name__ == "__main__":
    main()
