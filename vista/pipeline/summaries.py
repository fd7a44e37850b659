"""Stages 3 and 4, summaries: train the summarizer once and freeze it
(``train_summarizer``), then summarize every user's history at each snapshot in Spark
(``summarize``: K tokens of D per user, stored with ``features.summary_codec``, one
table per summarizer version), carrying over the summaries of users whose history did
not change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.names import (
    HISTORIES,
    PARTITION_COL,
)
from vista.core.snapshot import Snapshot
from vista.core.summary_codec import decode_frame
from vista.pipeline.histories import read_histories
from vista.pipeline.partitions import (
    INPUTS_KEY,
    built_from,
    inputs_fingerprint,
    partition_stats,
    partition_version,
    previous_snapshot,
    spark_of,
)
from vista.state import (
    checkpoint_dir,
    current_summarizer,
    impression_windows,
    read_impressions,
    report_dir,
    states_path,
    summaries_path,
    write_json,
)

# up to this many users, a snapshot's per-user plan columns (tens of bytes a user) are
# broadcast to the histories rather than both sides shuffled
BROADCAST_MAX_USERS = 2_000_000


def train_summarizer(
    cfg: VistaConfig, as_of: Snapshot, progress: bool = True, retrain: bool = False
) -> dict:
    """Train the source model on the training window; save the frozen summarizer.

    The summarizer stays frozen across refreshes (a new version would re-summarize
    every user): an existing one trained with the same settings is reused unless
    ``retrain``."""
    from models.summarizer import save_checkpoint
    from models.train_summarizer import train_summarizer as fit

    settings = cfg.summarizer.model_dump(mode="json")
    pointer = checkpoint_dir(cfg) / "current.json"
    if not retrain and pointer.exists():
        current = json.loads(pointer.read_text())
        if current.get("settings") == settings and Path(current["path"]).exists():
            return {"summarizer_version": current["version"], "checkpoint": current["path"],
                    "reused": True}  # fmt: skip
    train_days, _ = impression_windows(cfg, as_of)
    histories = read_histories(cfg, as_of)
    impressions = read_impressions(cfg, train_days)
    started = time.perf_counter()
    # an interrupted run for the same date and settings resumes from here
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    resume = checkpoint_dir(cfg) / "training" / f"{as_of.iso}-{key}.pt"
    model, curve = fit(
        histories, impressions, as_of.micros, cfg.summarizer, progress,
        checkpoint=resume,
    )  # fmt: skip
    version = model.version()
    path = save_checkpoint(model, checkpoint_dir(cfg) / f"{version}.pt", extra={"as_of": as_of.iso})
    write_json(pointer, {"version": version, "path": str(path), "settings": settings})
    # finished: a later retrain must start afresh, not "resume" a completed run
    resume.unlink(missing_ok=True)
    return {
        "summarizer_version": version,
        "reused": False,
        "checkpoint": str(path),
        "train_days": train_days,
        "training_curve": curve.to_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def summarize(cfg: VistaConfig, as_of: Snapshot, full: bool = False) -> dict[str, Any]:
    """Summaries for the ``as_of`` snapshot.

    Memory mode: users with at least ``snapshots.state_min_events`` events are summarized
    from their cached states (``refresh_states``: each state advanced to ``as_of`` plus
    only the new events). Users below it whose history did not change since the
    previous snapshot keep the summary made then by the same summarizer version (stamped
    with the new ``as_of``); everyone else, and everyone after a version change, is
    summarized from the whole history."""
    from models.summarizer import load_checkpoint
    from spark_jobs.summarize import carry_over_summaries, summarize_histories, without_users
    from spark_jobs.summary_states import summaries_from_states

    current = current_summarizer(cfg)
    model = load_checkpoint(Path(current["path"]), cfg.summarizer)  # fails early on a size mismatch
    stateful = model.cfg.mode == "memory"
    states = refresh_states(cfg, as_of, full) if stateful else None
    min_events = cfg.snapshots.state_min_events if stateful else None
    path = summaries_path(cfg, current["version"])
    codec = cfg.features.summary_codec
    previous = None if full else previous_snapshot(path, as_of)
    # `updated` is relative to the histories' previous snapshot: carrying summaries
    # over is only right if they were made from that same snapshot
    if previous is not None and previous != previous_snapshot(cfg.paths.table(HISTORIES), as_of):
        previous = None
    inputs = inputs_fingerprint(histories_version=partition_version(cfg.paths.table(HISTORIES), as_of),
                     summarizer_version=current["version"], codec=codec, carried_from=previous,
                     previous_version=partition_version(path, previous),
                     states_version=states and states["table_version"], state_min_events=min_events)  # fmt: skip
    done = built_from(path, as_of, inputs)
    if done is not None:
        return {"table_version": done["version"], "summarizer_version": current["version"],
                "summary_codec": codec, "unchanged": True, "states": states,
                "stored_bytes": _partition_bytes(path, as_of), **partition_stats(path, as_of)}  # fmt: skip
    spark = spark_of(cfg)
    histories = lake.spark_read(spark, cfg.paths.table(HISTORIES)).where(
        f"{PARTITION_COL} = '{as_of.iso}'"
    )
    if stateful:  # the others are read from their states
        histories = histories.where(f"history_length < {min_events}")
    started, run_started_at = time.perf_counter(), dt.datetime.now(dt.UTC)
    to_summarize, carried = histories, None
    if previous is not None:
        earlier = lake.spark_read(spark, path).where(f"{PARTITION_COL} = '{previous}'")
        carried = carry_over_summaries(histories, earlier, current["version"], as_of, codec)
        to_summarize = without_users(histories, carried)
    summaries = summarize_histories(
        to_summarize, Path(current["path"]), current["version"], as_of, codec
    )
    if carried is not None:
        summaries = summaries.unionByName(carried)
    if stateful:
        cached = lake.spark_read(spark, states_path(cfg, current["version"])).where(
            f"{PARTITION_COL} = '{as_of.iso}'"
        )
        summaries = summaries.unionByName(
            summaries_from_states(cached, Path(current["path"]), as_of, codec)
        )
    version = lake.spark_replace_partition(
        summaries,
        path,
        PARTITION_COL,
        as_of.iso,
        metadata={
            "vista.summarizer_version": current["version"],
            "vista.summary_codec": codec,
            INPUTS_KEY: inputs,
        },
    )
    seconds = time.perf_counter() - started
    stats = partition_stats(path, as_of)
    # carried rows keep the created_timestamp of the run that computed them
    made = lake.read_arrow(path, filters=as_of.partition_filter(), columns=["created_timestamp"])
    carried_users = int(pc.sum(pc.less(made["created_timestamp"], run_started_at)).as_py() or 0)
    from_states = states["users"] if states else 0
    return {
        "table_version": version,
        "summarizer_version": current["version"],
        "summary_codec": codec,
        "stored_bytes": _partition_bytes(path, as_of),
        "carried_over_from": previous,
        "carried_over_users": carried_users,
        "from_states_users": from_states,
        "summarized_users": stats["users"] - carried_users - from_states,
        "states": states,
        "seconds": round(seconds, 2),
        "events_per_second": round(stats["events"] / max(seconds, 1e-9)),
        **stats,
    }


def refresh_states(cfg: VistaConfig, as_of: Snapshot, full: bool = False) -> dict[str, Any]:
    """The memory-mode states at ``as_of`` of every user with at least
    ``snapshots.state_min_events`` events, from the latest earlier snapshot's states of
    the same summarizer version plus the new events (``spark_jobs.summary_states``), or
    from the whole history (``full``, a first snapshot, a new version, a corrupted row).
    Returns how many states were made each way and the events read."""
    from spark_jobs.summary_states import refresh_plan
    from spark_jobs.summary_states import refresh_states as refresh

    current = current_summarizer(cfg)
    path = states_path(cfg, current["version"])
    histories_path = cfg.paths.table(HISTORIES)
    previous = None if full else previous_snapshot(path, as_of)
    min_events = cfg.snapshots.state_min_events
    inputs = inputs_fingerprint(histories_version=partition_version(histories_path, as_of),
                     summarizer_version=current["version"], state_min_events=min_events,
                     previous=previous, previous_version=partition_version(path, previous))  # fmt: skip
    done = built_from(path, as_of, inputs)
    if done is not None:
        return {"table_version": done["version"], "unchanged": True, **_state_counts(path, as_of)}
    spark = spark_of(cfg)
    histories = lake.spark_read(spark, histories_path).where(
        f"{PARTITION_COL} = '{as_of.iso}' AND history_length >= {min_events}"
    )
    earlier, broadcast = None, True
    if previous is not None:
        earlier = lake.spark_read(spark, path).where(f"{PARTITION_COL} = '{previous}'")
        broadcast = _state_counts(path, Snapshot.of(previous))["users"] <= BROADCAST_MAX_USERS
    started = time.perf_counter()
    plan = refresh_plan(histories, earlier, current["version"], broadcast)
    states = refresh(plan, Path(current["path"]), current["version"], as_of)
    version = lake.spark_replace_partition(
        states, path, PARTITION_COL, as_of.iso,
        metadata={"vista.summarizer_version": current["version"], INPUTS_KEY: inputs},
    )  # fmt: skip
    return {"table_version": version, "previous_snapshot": previous,
            "seconds": round(time.perf_counter() - started, 2), **_state_counts(path, as_of)}  # fmt: skip


def _state_counts(path: Path, as_of: Snapshot) -> dict[str, Any]:
    """users, events read and folded, and users per way their state was made."""
    from spark_jobs.summary_states import REASONS

    rows = lake.read_arrow(path, filters=as_of.partition_filter(),
                           columns=["how", "events_read", "events_folded"]).to_pandas()  # fmt: skip
    return {
        "users": len(rows),
        "events": int(rows.events_folded.sum()),
        "events_read": int(rows.events_read.sum()),
        "how": {reason: int((rows.how == reason).sum()) for reason in REASONS},
    }


def _partition_bytes(path: Path, as_of: Snapshot) -> int:
    """Bytes on disk of one partition's data files."""
    partition = f"/{PARTITION_COL}={as_of.iso}/"
    files = [uri for uri in lake.open_table(path).file_uris() if partition in uri]
    return sum(Path(uri.removeprefix("file://")).stat().st_size for uri in files)


def read_summaries(cfg: VistaConfig, as_of: Snapshot, version: str | None = None) -> pd.DataFrame:
    """One snapshot's summaries, decoded: ``summary`` holds the K*D float32 tokens."""
    path = summaries_path(cfg, version)
    frame = lake.read_arrow(path, filters=as_of.partition_filter()).to_pandas()
    decoded = decode_frame(frame, cfg.summarizer.n_seeds, cfg.summarizer.dim)
    return frame.assign(summary=list(decoded))


def validate_summaries(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """The critical summaries suite, then the drift of summary statistics against the
    previous snapshot of the same summarizer version (warns)."""
    from validation import suites
    from validation.checkpoints import run_suite

    k = cfg.summarizer.n_seeds
    frame = suites.summaries_frame(read_summaries(cfg, as_of), k)
    suite = suites.summaries_suite(k, cfg.summarizer.dim, cfg.features.summary_codec)
    outcome = run_suite(suite, frame, report_dir(cfg, as_of)).to_dict()
    current = suites.summary_statistics(frame)
    previous_date = previous_snapshot(summaries_path(cfg), as_of)
    drift: dict[str, Any] = {"statistics": current, "previous_snapshot": previous_date}
    if previous_date is not None:
        before = suites.summaries_frame(read_summaries(cfg, Snapshot.of(previous_date)), k)
        table = suites.drift_frame(current, suites.summary_statistics(before))
        checked = run_suite(suites.summary_drift_suite(cfg.features.max_summary_drift), table,
                            report_dir(cfg, as_of))  # fmt: skip
        drift.update(checked.to_dict(), changes=table.set_index("statistic")[
            "relative_change"].round(4).to_dict())  # fmt: skip
    states = validate_summary_states(cfg, as_of)
    return {**outcome, "drift": drift, **({"states": states} if states else {})}


def validate_summary_states(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any] | None:
    """The critical suite of the snapshot's cached states (None: the summarizer keeps
    none, or the snapshot has none)."""
    from models.summarizer import load_checkpoint
    from spark_jobs.summary_states import REASONS, state_checks
    from validation.checkpoints import run_suite
    from validation.suites import summary_states_suite

    current = current_summarizer(cfg)
    path = states_path(cfg, current["version"])
    if lake.partition_commit(path, PARTITION_COL, as_of.iso) is None:
        return None
    model = load_checkpoint(Path(current["path"]))
    state_bytes = 4 * model.cfg.n_heads * model.state_rows * model.head_dim
    rows = lake.spark_read(spark_of(cfg), path).where(f"{PARTITION_COL} = '{as_of.iso}'")
    suite = summary_states_suite(state_bytes, cfg.snapshots.state_min_events, list(REASONS))
    return run_suite(suite, state_checks(rows).toPandas(), report_dir(cfg, as_of)).to_dict()
