"""Stage 2, histories: every user's time-ordered history before the snapshot
(``user_histories``, one row per user: item_ids, categories, event_timestamps arrays,
history_length, updated), built in Spark incrementally from the previous snapshot, and
the baselines' raw-history features cut from it (``user_history_tail``: each user's last
``tail_length`` events; ``user_category_histories``: per (user, category) the last 100 items).
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.names import (
    CATEGORY_HISTORIES,
    EVENTS,
    HISTORIES,
    HISTORY_TAIL,
    PARTITION_COL,
)
from vista.core.snapshot import Snapshot
from vista.pipeline.partitions import (
    INPUTS_KEY,
    built_from,
    check_snapshot,
    inputs_fingerprint,
    partition_stats,
    partition_version,
    previous_snapshot,
    spark_of,
)
from vista.state import (
    report_dir,
)


def build_histories(cfg: VistaConfig, as_of: Snapshot, full: bool = False) -> dict[str, Any]:
    """Snapshot of every user's history before ``as_of``: incremental from the previous
    snapshot when there is one (unless ``full``), from all events otherwise."""
    from spark_jobs.histories import build_user_histories, update_user_histories

    check_snapshot(cfg, as_of, full)
    path = cfg.paths.table(HISTORIES)
    previous = None if full else previous_snapshot(path, as_of)
    mode = "full" if previous is None else f"incremental from {previous}"
    inputs = inputs_fingerprint(events_version=lake.table_version(cfg.paths.table(EVENTS)), mode=mode,
                     previous_version=partition_version(path, previous),
                     max_history=cfg.histories.max_history)  # fmt: skip
    done = built_from(path, as_of, inputs)
    if done is not None:
        return {"table_version": done["version"], "mode": mode, "unchanged": True,
                **partition_stats(path, as_of)}  # fmt: skip
    spark = spark_of(cfg)
    events = lake.spark_read(spark, cfg.paths.table(EVENTS))
    started = time.perf_counter()
    if previous is None:
        histories = build_user_histories(events, as_of, cfg.histories.max_history)
    else:
        snapshot = lake.spark_read(spark, path).where(f"{PARTITION_COL} = '{previous}'")
        histories = update_user_histories(
            snapshot, events, Snapshot.of(previous), as_of, cfg.histories.max_history
        )
    version = lake.spark_replace_partition(
        histories, path, PARTITION_COL, as_of.iso,
        metadata={"vista.previous_snapshot": previous or "", INPUTS_KEY: inputs},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    stats = partition_stats(path, as_of)
    updated = lake.read_arrow(path, filters=as_of.partition_filter(), columns=["updated"])
    return {
        "table_version": version,
        "mode": mode,
        "updated_users": int(updated.column("updated").to_numpy(zero_copy_only=False).sum()),
        "seconds": round(seconds, 2),
        **stats,
    }


def validate_histories(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """The critical histories suite on per-user checks computed in Spark (the arrays of
    a 1M-event user never reach pandas)."""
    from spark_jobs.histories import history_checks
    from validation.checkpoints import run_suite
    from validation.suites import histories_suite

    spark = spark_of(cfg)
    snapshot = lake.spark_read(spark, cfg.paths.table(HISTORIES)).where(
        f"{PARTITION_COL} = '{as_of.iso}'"
    )
    checks = history_checks(snapshot, as_of).toPandas()
    suite = histories_suite(cfg.histories.max_history)
    return run_suite(suite, checks, report_dir(cfg, as_of)).to_dict()


def read_histories(cfg: VistaConfig, as_of: Snapshot) -> pd.DataFrame:
    """One snapshot of ``user_histories`` as pandas (one row per user, arrays per row);
    TableNotFoundError naming the step when the partition is empty."""
    table = lake.read_arrow(cfg.paths.table(HISTORIES), filters=as_of.partition_filter())
    if table.num_rows == 0:
        raise lake.TableNotFoundError(
            f"no histories for as_of {as_of.iso}: run build_histories for that date first"
        )
    return table.to_pandas()


def build_raw_features(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """The baselines' raw-history features of the ``as_of`` snapshot: each user's tail
    (DIN, full attention) and per-category recent items (SIM), as Delta tables."""
    from spark_jobs import raw_features as raw

    tail_length = max(cfg.ranker.full_attention_length, cfg.ranker.recent_items, 100)
    tail_path, category_path = cfg.paths.table(HISTORY_TAIL), cfg.paths.table(CATEGORY_HISTORIES)
    inputs = inputs_fingerprint(histories_version=partition_version(cfg.paths.table(HISTORIES), as_of),
                     tail_length=tail_length, per_category=100)  # fmt: skip
    done = [built_from(p, as_of, inputs) for p in (tail_path, category_path)]
    spark = spark_of(cfg)
    histories = lake.spark_read(spark, cfg.paths.table(HISTORIES)).where(
        f"{PARTITION_COL} = '{as_of.iso}'"
    )
    started = time.perf_counter()
    day, meta = as_of.iso, {INPUTS_KEY: inputs}
    tails = done[0]["version"] if done[0] else lake.spark_replace_partition(
        raw.history_tails(histories, as_of, tail_length), tail_path, PARTITION_COL, day, meta
    )  # fmt: skip
    categories = done[1]["version"] if done[1] else lake.spark_replace_partition(
        raw.category_histories(histories, as_of, 100), category_path, PARTITION_COL, day, meta
    )  # fmt: skip
    pairs = lake.read_arrow(cfg.paths.table(CATEGORY_HISTORIES), filters=as_of.partition_filter(),
                            columns=["user_id"]).num_rows  # fmt: skip
    quality = validate_raw_features(cfg, as_of, tail_length)
    return {
        "tail_table_version": tails,
        "category_table_version": categories,
        "tail_length": tail_length,
        "unchanged": all(done),
        "user_category_pairs": pairs,
        "quality": quality,
        "seconds": round(time.perf_counter() - started, 2),
    }


def validate_raw_features(cfg: VistaConfig, as_of: Snapshot, tail_length: int) -> dict:
    """The critical raw-features suite on the date's two tables (checked in Spark)."""
    from spark_jobs import raw_features as raw
    from validation.checkpoints import run_suite
    from validation.suites import raw_features_suite

    spark, day = spark_of(cfg), as_of.iso
    tails, categories = (
        lake.spark_read(spark, cfg.paths.table(t)).where(f"{PARTITION_COL} = '{day}'")
        for t in (HISTORY_TAIL, CATEGORY_HISTORIES)
    )
    checks = raw.raw_feature_checks(tails, categories, tail_length, 100).toPandas()
    return run_suite(raw_features_suite(tail_length, 100), checks, report_dir(cfg, as_of)).to_dict()
