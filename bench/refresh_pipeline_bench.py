"""A profile's 2-hour refresh through the pipeline's own Spark jobs, from cached states.

1. The profile's events (the ``full`` profile: 130,000 users, 51.5M events), histories
   at its snapshot T, a summarizer (a few training steps: its cost is not measured
   here), and ``summarize`` at T from scratch: every history folded, the states of the
   long ones cached (the full pass, timed).
2. Two hours of new events, at the world's own rate (its events per 2 hours of its
   history span): each a repeat of a past event of a user drawn in proportion to their
   history length, at a uniform time in [T, T + 2 h), appended to the events table.
3. The refresh at T + 2 h as the chain runs it: ``build_histories`` (incremental) and
   ``summarize`` (states advanced plus the new events, then the summaries), each timed
   in the same process (the JVM is up, as in the DAG's task).

    .venv/bin/python bench/refresh_pipeline_bench.py              # full profile, ~8 min on 2 cores
    .venv/bin/python bench/refresh_pipeline_bench.py -p tiny      # a smoke run

Prints a table and writes docs/results/refresh_pipeline-<profile>.{md,json} (machine and
commit). The lake lives under <profile state>/bench-refresh and is reused when its
events are there (``--fresh`` rebuilds it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vista import pipeline  # noqa: E402
from vista.core import lake  # noqa: E402
from vista.core.config import load_config  # noqa: E402
from vista.core.names import EVENT_DATE, EVENTS  # noqa: E402
from vista.core.snapshot import Snapshot  # noqa: E402
from vista.provenance import RESULTS_DIR, provenance  # noqa: E402

WINDOW = dt.timedelta(hours=2)


def timed(step, *args, **kwargs) -> tuple[float, dict]:
    started = time.perf_counter()
    out = step(*args, **kwargs)
    return time.perf_counter() - started, out


def new_events(cfg, as_of: Snapshot, seed: int = 0) -> pa.Table:
    """Two hours of events after ``as_of`` at the world's rate (module docstring)."""
    hist = pipeline.read_histories(cfg, as_of)
    lengths = hist.history_length.to_numpy()
    first = min(int(ts[0]) for ts in hist.event_timestamps)
    span_us = as_of.micros - first
    n = max(1, round(lengths.sum() * WINDOW.total_seconds() * 1e6 / span_us))
    rng = np.random.default_rng(seed)
    users = rng.choice(len(hist), size=n, p=lengths / lengths.sum())
    picks = [rng.integers(lengths[u]) for u in users]
    start = int(as_of.micros)
    stamps = np.sort(rng.integers(start, start + int(WINDOW.total_seconds() * 1e6), n))
    ts = pa.array(stamps, pa.timestamp("us", tz="UTC"))
    return pa.table({
        "user_id": pa.array(hist.user_id.to_numpy()[users], pa.int64()),
        "item_id": pa.array([hist.item_ids.iat[u][i] for u, i in zip(users, picks, strict=True)],
                            pa.int64()),
        "category": pa.array([hist.categories.iat[u][i]
                              for u, i in zip(users, picks, strict=True)], pa.int64()),
        "event_type": pa.array(["click"] * n),
        "event_timestamp": ts,
        EVENT_DATE: pa.array([str(as_of.date())] * n),
    })  # fmt: skip


def run(profile: str, fresh: bool, train_steps: int) -> dict:
    base = load_config(profile)
    root = base.paths.state / "bench-refresh"
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    overrides = {
        "paths": {"state": str(root), "lake": str(root / "lake"), "reports": str(root / "reports")},
        "snapshots": {"every_hours": 2},
        "summarizer": {"train_steps": train_steps},
    }
    cfg = load_config(profile, overrides=overrides)
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    later = Snapshot.of(as_of + WINDOW, every_hours=2)
    seconds: dict[str, float] = {}
    if not lake.table_exists(cfg.paths.table(EVENTS)):
        seconds["ingest_events"], _ = timed(pipeline.ingest_events, cfg)
    seconds["build_histories_T"], built = timed(pipeline.build_histories, cfg, as_of, full=True)
    pipeline.train_summarizer(cfg, as_of, progress=False)
    seconds["summarize_T_full"], full = timed(pipeline.summarize, cfg, as_of, full=True)
    added = new_events(cfg, as_of)
    # the world's events end before T: T's day holds only this bench's, replaced on a rerun
    lake.write_arrow(cfg.paths.table(EVENTS), added, partition_by=[EVENT_DATE],
                     replace_where=f"{EVENT_DATE} = '{as_of.date()}'")  # fmt: skip
    seconds["build_histories_T+2h"], refreshed_histories = timed(
        pipeline.build_histories, cfg, later
    )
    seconds["summarize_T+2h"], refresh = timed(pipeline.summarize, cfg, later)
    return {
        "profile": profile,
        "as_of": as_of.iso,
        "refreshed_as_of": later.iso,
        "users": built["users"],
        "events": built["events"],
        "new_events": added.num_rows,
        "users_with_new_events": refreshed_histories["updated_users"],
        "state_min_events": cfg.snapshots.state_min_events,
        "full_pass": {"states": full["states"], "seconds": full["seconds"]},
        "refresh": {
            "states": refresh["states"],
            "from_states_users": refresh["from_states_users"],
            "carried_over_users": refresh["carried_over_users"],
            "summarized_users": refresh["summarized_users"],
            "summaries_seconds": refresh["seconds"],
            "stored_bytes": refresh["stored_bytes"],
        },
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def render(r: dict) -> str:
    s = r["seconds"]
    states, full_states = r["refresh"]["states"], r["full_pass"]["states"]
    refresh_total = s["build_histories_T+2h"] + s["summarize_T+2h"]
    how = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in states["how"].items() if v)
    lines = [
        f"The {r['profile']} profile's 2-hour refresh through the pipeline's Spark jobs "
        f"(bench/refresh_pipeline_bench.py): {r['users']:,} users, {r['events']:,} events at "
        f"{r['as_of']}; {r['new_events']:,} new events for {r['users_with_new_events']:,} "
        f"users by {r['refreshed_as_of']}. States cached for histories of "
        f"{r['state_min_events']:,}+ events ({states['users']:,} users, "
        f"{states['events']:,} events).",
        "",
        "| step | seconds | events folded by the summarizer |",
        "|---|---|---|",
        f"| summarize at T from scratch (the full pass) | {s['summarize_T_full']:.1f} | "
        f"{full_states['events_read']:,} in states, plus every shorter history |",
        f"| build_histories at T + 2 h (incremental) | {s['build_histories_T+2h']:.1f} | |",
        f"| summarize at T + 2 h from the cached states | {s['summarize_T+2h']:.1f} | "
        f"{states['events_read']:,} in states ({how}) |",
        f"| **the 2-hour refresh (both)** | **{refresh_total:.1f}** | |",
        "",
        f"Summarize from states vs the full pass: {s['summarize_T_full'] / s['summarize_T+2h']:.1f}x "
        f"faster; the refresh read {states['events_read']:,} of {states['events']:,} events "
        "of the cached histories.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-p", "--profile", default="full")
    parser.add_argument("--fresh", action="store_true", help="rebuild the bench lake")
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args()
    made_at = provenance()  # before this run's own files change the tree
    result = run(args.profile, args.fresh, args.train_steps)
    table = render(result)
    print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"refresh_pipeline-{args.profile}"
    (RESULTS_DIR / f"{name}.md").write_text(table)
    payload = {**result, **made_at}
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
