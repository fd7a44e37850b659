"""What every step shares: the run's default date, its Spark session, and the
bookkeeping that makes a rerun commit nothing.

A step that rewrites a snapshot partition stamps the commit with the fingerprint of its
inputs (``INPUTS_KEY``: the versions of the tables it read, its settings); a rerun with
the same fingerprint finds that commit (``built_from``) and returns its version instead
of writing again. Tables are partitioned by ``vista.core.names.PARTITION_COL``
(the snapshot, ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH``: ``vista.core.snapshot``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.names import HISTORIES, PARTITION_COL
from vista.core.snapshot import Snapshot, check_new_snapshot


def default_as_of(cfg: VistaConfig) -> str:
    """The run date whose snapshot precedes the impressions: the generator's cutoff, the
    source's ``cutoff_date``, or for a per-user split without one the day after the last
    event it keeps as history (``sources.loaders.source_as_of`` reads the source)."""
    if cfg.source is not None:
        from sources.loaders import source_as_of

        return source_as_of(cfg.source).isoformat()
    return cfg.generator.cutoff.date().isoformat()


def world_now(cfg: VistaConfig) -> dt.datetime:
    """The latest instant a snapshot may take: the wall clock for real data; for the
    synthetic generator, whose world keeps its own calendar, the end of its impressions."""
    if cfg.source is not None:
        return dt.datetime.now(dt.UTC)
    return cfg.generator.cutoff + dt.timedelta(days=cfg.generator.impression_days)


def check_snapshot(cfg: VistaConfig, as_of: Snapshot, full: bool = False) -> None:
    """Refuse, before any work, a snapshot the profile's cadence would not take (in the
    future, off ``snapshots.every_hours``, or older than the newest snapshot of the
    histories table unless it is one of them or ``full`` rebuilds it from all events)."""
    path = cfg.paths.table(HISTORIES)
    existing = [] if full or not lake.table_exists(path) else [
        p[PARTITION_COL] for p in lake.open_table(path).partitions()
    ]  # fmt: skip
    check_new_snapshot(as_of, cfg.snapshots.every_hours, existing, world_now(cfg))


def spark_of(cfg: VistaConfig):
    """The profile's Spark session (``spark_jobs.session``); the JVM logs to the state folder."""
    from spark_jobs.session import spark_session

    # the JVM's own output (start-up notices, log4j) goes to a file, not the terminal
    return spark_session(cfg.spark, jvm_log=cfg.paths.state / "logs" / "spark-jvm.log")


INPUTS_KEY = "vista.inputs"


def inputs_fingerprint(**values: Any) -> str:
    """What a step read (table versions, settings) as one JSON string: the commit's stamp."""
    return json.dumps(values, sort_keys=True, default=str)


def built_from(path: Path, as_of: Snapshot, inputs: str) -> dict | None:
    """The commit that wrote ``as_of``'s partition, if it was made from these inputs:
    a rerun with unchanged inputs then commits nothing (same content, same version)."""
    commit = lake.partition_commit(path, PARTITION_COL, as_of.iso)
    return commit if commit is not None and commit.get(INPUTS_KEY) == inputs else None


def partition_version(path: Path, as_of: Snapshot | str | None) -> int | None:
    """The version of the commit that last wrote ``as_of``'s partition (None: never written)."""
    if as_of is None:
        return None
    day = as_of if isinstance(as_of, str) else as_of.iso
    commit = lake.partition_commit(path, PARTITION_COL, day)
    return None if commit is None else commit["version"]


def previous_snapshot(path: Path, as_of: Snapshot) -> str | None:
    """The latest snapshot partition strictly before ``as_of``, if any."""
    if not lake.table_exists(path):
        return None
    dates = [p[PARTITION_COL] for p in lake.open_table(path).partitions()]
    earlier = [d for d in dates if d < as_of.iso]
    return max(earlier) if earlier else None


def partition_stats(path: Path, as_of: Snapshot) -> dict[str, Any]:
    """users, events (the sum of history_length) and the longest history in a partition."""
    lengths = lake.read_arrow(path, filters=as_of.partition_filter(), columns=["history_length"])
    values = lengths.column("history_length").to_numpy()
    return {
        "users": len(values),
        "events": int(values.sum()),
        "max_history_length": int(values.max()) if len(values) else 0,
    }
