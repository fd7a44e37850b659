"""History assembly at lifelong scale: Spark (the pipeline's job) against DuckDB.

On the ``full`` profile (130,000 users, 51.5M events, 8 users with 1,000,000 events):
1. generate the events table (skipped when the same settings are already there);
2. build every user's history as of ``--as-of`` with the pipeline's Spark job
   (``vista build-histories --full``: Spark local mode, Delta output), and with one
   single-node DuckDB query over the same parquet files (the baseline);
3. refresh the Spark snapshot incrementally one day later (only users with new events
   are recomputed), as the DAG does every run;
4. check that both engines built the same histories (same users, same item and
   timestamp sequences, compared by hash per user).

Each engine runs in a fresh subprocess; its peak memory is the peak RSS summed over
its whole process tree (for Spark: the Python driver plus the JVM), sampled every
100 ms. Prints a table and writes bench/results/history_<profile>.json.

    .venv/bin/python bench/history_bench.py                # full profile, ~15 min on 2 cores
    .venv/bin/python bench/history_bench.py -p tiny        # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from vista.core.snapshot import Snapshot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SAMPLE_SECONDS = 0.1


def duckdb_histories_sql(files: list[str], as_of: dt.datetime, max_history: int, out: Path) -> str:
    """The same histories as spark_jobs.histories.build_user_histories, in one query.

    Like the Spark job, it collects (ts, item, category) structs per user and sorts each
    list, so ties on the timestamp break by item then category in both engines. (The
    ordered aggregate ``list(x ORDER BY ts)`` ran out of memory at 18.8 GiB on the full
    profile: DuckDB buffers every group's rows for it.)
    """
    listing = ", ".join(f"'{f}'" for f in files)
    cutoff = as_of.strftime("%Y-%m-%d %H:%M:%S")
    return f"""
        COPY (
          WITH ordered AS (
            SELECT user_id,
                   list_sort(list({{'ts': epoch_us(event_timestamp), 'item': item_id,
                                    'category': category}})) AS events
            FROM read_parquet([{listing}])
            WHERE event_timestamp < TIMESTAMPTZ '{cutoff}+00'
            GROUP BY user_id
          ),
          capped AS (
            SELECT user_id, list_slice(events, -{max_history}, -1) AS events FROM ordered
          )
          SELECT user_id,
                 list_transform(events, e -> e.item) AS item_ids,
                 list_transform(events, e -> e.category) AS categories,
                 list_transform(events, e -> e.ts) AS event_timestamps
          FROM capped
        ) TO '{out}' (FORMAT parquet)
    """


# ------------------------------------------------------------------ workers (subprocess)
def _config(profile: str):
    from vista.core.config import load_config

    return load_config(profile)


def worker_spark(profile: str, as_of: dt.datetime, full: bool) -> dict:
    from vista import pipeline

    cfg = _config(profile)
    return pipeline.build_histories(cfg, as_of, full=full)


def worker_duckdb(
    profile: str, as_of: dt.datetime, out: Path, threads: int, memory_limit: str
) -> dict:
    import duckdb

    from vista.core import lake
    from vista.core.names import EVENTS

    cfg = _config(profile)
    files = lake.open_table(cfg.paths.table(EVENTS)).file_uris()
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = '{out.parent / 'duckdb_tmp'}'")
    started = time.perf_counter()
    con.execute(duckdb_histories_sql(files, as_of, cfg.histories.max_history, out))
    seconds = time.perf_counter() - started
    users, events, longest = con.execute(
        f"SELECT count(*), sum(len(item_ids)), max(len(item_ids)) FROM '{out}'"
    ).fetchone()
    return {"seconds": round(seconds, 2), "users": users, "events": int(events),
            "max_history_length": longest}  # fmt: skip


# ------------------------------------------------------------------ driver
def _tree_rss(proc) -> int:
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # it ended between two samples
            total += p.memory_info().rss
    return total


def run_measured(args: list[str]) -> dict:
    """Run this script as a worker; wall time and peak process-tree RSS around it."""
    import psutil

    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    proc = psutil.Process(child.pid)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_bytes"] = peak
    return result


def compare(spark_files: list[str], duckdb_file: Path) -> dict:
    """Users and per-user sequences that differ between the two outputs."""
    import duckdb

    con = duckdb.connect()
    listing = ", ".join(f"'{f}'" for f in spark_files)
    digest = "hash(item_ids) AS h_items, hash(event_timestamps) AS h_ts, hash(categories) AS h_cat"
    row = con.execute(f"""
        WITH s AS (SELECT user_id, {digest} FROM read_parquet([{listing}])),
             d AS (SELECT user_id, {digest} FROM '{duckdb_file}')
        SELECT count(*) FILTER (WHERE s.user_id IS NULL),
               count(*) FILTER (WHERE d.user_id IS NULL),
               count(*) FILTER (WHERE s.h_items <> d.h_items OR s.h_ts <> d.h_ts
                                      OR s.h_cat <> d.h_cat),
               count(*)
        FROM s FULL OUTER JOIN d USING (user_id)
    """).fetchone()  # fmt: skip
    only_duckdb, only_spark, different, users = row
    return {"users_compared": users, "only_in_spark": only_spark,
            "only_in_duckdb": only_duckdb, "different_sequences": different,
            "identical": only_spark == only_duckdb == different == 0}  # fmt: skip


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--profile", default="full")
    parser.add_argument("--as-of", help="snapshot date (default: one day before the cutoff)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duckdb-memory", default="16GB", help="DuckDB memory_limit")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/)")
    parser.add_argument("--worker", choices=["spark-full", "spark-incremental", "duckdb"],
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--duckdb-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from vista import pipeline

    cfg = _config(args.profile)
    if args.worker:
        as_of = Snapshot.of(args.as_of)
        if args.worker == "duckdb":
            result = worker_duckdb(
                args.profile, as_of, args.duckdb_out, args.threads, args.duckdb_memory
            )
        else:
            result = worker_spark(args.profile, as_of, full=args.worker == "spark-full")
        print(json.dumps(result, default=str))
        return

    cutoff = cfg.generator.cutoff if cfg.source is None else None
    if args.as_of is None and cutoff is None:
        parser.error("--as-of is required for a profile with an events file")
    as_of = Snapshot.of(args.as_of or (cutoff - dt.timedelta(days=1)).date())
    next_day = as_of + dt.timedelta(days=1)
    print(f"profile {args.profile}: generating data (skipped if present) ...", flush=True)
    generated = pipeline.ingest_events(cfg)
    work = cfg.paths.state / "bench"
    shutil.rmtree(work, ignore_errors=True)
    duckdb_out = work / "duckdb_histories.parquet"
    common = ["-p", args.profile, "--threads", str(args.threads),
              "--duckdb-memory", args.duckdb_memory]  # fmt: skip
    day = ["--as-of", as_of.iso]
    rows = {}
    for name, worker_args in {
        "spark full build": ["--worker", "spark-full", *day],
        "duckdb full build": ["--worker", "duckdb", *day, "--duckdb-out", str(duckdb_out)],
        "spark incremental (+1 day)": ["--worker", "spark-incremental", "--as-of",
                                       next_day.date().isoformat()],
    }.items():  # fmt: skip
        print(f"running {name} ...", flush=True)
        rows[name] = run_measured([*worker_args, *common])
    from vista.core import lake
    from vista.core.names import HISTORIES, PARTITION_COL

    partition = f"/{PARTITION_COL}={as_of.iso}/"
    spark_files = [
        uri for uri in lake.open_table(cfg.paths.table(HISTORIES)).file_uris() if partition in uri
    ]
    check = compare(spark_files, duckdb_out)

    header = (
        f"{'engine':<28} {'users':>9} {'events':>13} {'longest':>10} {'seconds':>8} "
        f"{'wall s':>7} {'events/s':>11} {'peak MiB':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for name, r in rows.items():
        print(
            f"{name:<28} {r['users']:>9,} {r['events']:>13,} {r['max_history_length']:>10,} "
            f"{r['seconds']:>8.1f} {r['wall_seconds']:>7.1f} "
            f"{r['events'] / r['seconds']:>11,.0f} {_mib(r['peak_rss_bytes']):>9}"
        )
    spark, duck = rows["spark full build"], rows["duckdb full build"]
    ratios = {
        "spark_over_duckdb_seconds": spark["seconds"] / duck["seconds"],
        "spark_over_duckdb_wall": spark["wall_seconds"] / duck["wall_seconds"],
        "spark_over_duckdb_peak_memory": spark["peak_rss_bytes"] / duck["peak_rss_bytes"],
    }
    print(
        f"\nspark / duckdb: time {ratios['spark_over_duckdb_seconds']:.2f}x "
        f"(wall {ratios['spark_over_duckdb_wall']:.2f}x), "
        f"peak memory {ratios['spark_over_duckdb_peak_memory']:.2f}x"
    )
    print(f"same histories: {check['identical']} {check}")
    payload = {
        "benchmark": "history_assembly",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
        },
        "profile": args.profile,
        "as_of": as_of.iso,
        "spark": cfg.spark.model_dump(),
        "generated": generated,
        "rows": rows,
        "ratios": ratios,
        "check": check,
    }
    out = args.out or RESULTS / f"history_{args.profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {out}")
    if not check["identical"]:
        sys.exit("Spark and DuckDB built different histories")


if __name__ == "__main__":
    main()
