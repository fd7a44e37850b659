"""The pipeline's steps: each one call that the DAG, the CLI and the tests make alike.

events -> histories -> summaries -> features -> ranker -> report

Every step reads and writes the partition of its ``as_of`` date only, and writes
each Delta table in one commit, so a rerun for the same date changes nothing and a
failed step leaves every table at its last committed version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vista import features
from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.errors import MissingStateError, SettingError
from vista.core.names import (
    CATEGORY_HISTORIES,
    EVENT_DATE,
    EVENTS,
    HISTORIES,
    HISTORY_TAIL,
    IMPRESSION_DATE,
    IMPRESSIONS,
    INGEST_DATE,
    PARTITION_COL,
    QUARANTINE,
)
from vista.core.snapshot import Snapshot
from vista.core.summary_codec import decode_frame
from vista.evaluation import choose_pooling, evaluate_rankers, frozen_summarizer, ranker_spec
from vista.report import write_report
from vista.state import (
    checkpoint_dir,
    current_summarizer,
    impression_windows,
    ranker_dir,
    read_impressions,
    report_dir,
    summaries_path,
    write_json,
)

GENERATOR_META_KEY = "vista.generator"


# ---------------------------------------------------------------- dates and folders
def default_as_of(cfg: VistaConfig) -> str:
    """The run date whose snapshot precedes the impressions: the generator's cutoff, the
    source's ``cutoff_date``, or for a per-user split without one the day after the last
    event it keeps as history (``sources.loaders.source_as_of`` reads the source)."""
    if cfg.source is not None:
        from sources.loaders import source_as_of

        return source_as_of(cfg.source).isoformat()
    return cfg.generator.cutoff.date().isoformat()


def _spark(cfg: VistaConfig):
    from spark_jobs.session import spark_session

    # the JVM's own output (start-up notices, log4j) goes to a file, not the terminal
    return spark_session(cfg.spark, jvm_log=cfg.paths.state / "logs" / "spark-jvm.log")


# ---------------------------------------------------------------- the run's steps
# One name per stage: the step here, its DAG task, its `vista` command (with dashes) and
# its key in the run summary (reports/<as_of>/run.json) are the same word.
# The steps `vista run` runs, in order, before write_run_summary gathers their results.
RUN_STEPS = (
    "ingest_events",
    "validate_events",
    "build_histories",
    "validate_histories",
    "build_raw_features",
    "train_summarizer",
    "summarize",
    "validate_summaries",
    "publish_features",
    "train_and_evaluate_ranker",
    "evaluate_and_report",
)
RUN_SUMMARY_FILE = "run.json"  # the run's record; "summary" alone means summary tokens
# what runs before these names recorded: the step keys and the run summary's old file
OLD_STEP_KEYS = {
    "data": "ingest_events",
    "events_quality": "validate_events",
    "histories": "build_histories",
    "histories_quality": "validate_histories",
    "raw_features": "build_raw_features",
    "summarizer": "train_summarizer",
    "summaries": "summarize",
    "summaries_quality": "validate_summaries",
    "features": "publish_features",
    "ranker": "train_and_evaluate_ranker",
    "evaluation": "evaluate_and_report",
}
OLD_RUN_SUMMARY_FILE = "summary.json"


def record_step(cfg: VistaConfig, as_of: Snapshot, step: str, result: dict) -> Path:
    """reports/<as_of>/steps/<step>.json: what each step of the date's run returned, so
    the run summary can be written by whichever DAG finishes the chain."""
    return write_json(report_dir(cfg, as_of) / "steps" / f"{step}.json", result)


def recorded_steps(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """Step name -> its recorded result for the date, in run order (files written under
    the old keys, e.g. ``steps/data.json``, are read under their step's name)."""
    folder = report_dir(cfg, as_of) / "steps"
    rank = {step: i for i, step in enumerate(RUN_STEPS)}
    found: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stem in OLD_STEP_KEYS):
        found.setdefault(OLD_STEP_KEYS.get(path.stem, path.stem), json.loads(path.read_text()))
    return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


# ---------------------------------------------------------------- 1. data
def _data_is_current(cfg: VistaConfig, fingerprint: str) -> bool:
    events_path, impressions_path = cfg.paths.table(EVENTS), cfg.paths.table(IMPRESSIONS)
    if not (lake.table_exists(events_path) and lake.table_exists(impressions_path)):
        return False
    return lake.open_table(impressions_path).history(1)[0].get(GENERATOR_META_KEY) == fingerprint


def ingest_events(
    cfg: VistaConfig, as_of: Snapshot | None = None, force: bool = False
) -> dict[str, Any]:
    """Write the ``events`` and ``impressions`` tables: synthetic (unless tables made
    from the same settings are already there), or ingested from the profile's source.

    Schemas (``sources.synthetic``): ``events`` user_id, item_id, category (int64),
    event_type (str), event_timestamp (UTC, us), event_date (str, the partition);
    ``impressions`` impression_id, user_id, item_id, category (int64), event_timestamp,
    label (int8 0/1), the oracle's click probabilities (float64, NaN where unknown),
    impression_date (the partition). ``force`` rewrites the synthetic tables, or
    re-ingests every source file from scratch."""
    if cfg.source is not None:
        return ingest_source(cfg, as_of or Snapshot.of(default_as_of(cfg)), force)
    from sources.synthetic import EVENTS_SCHEMA, generate

    fingerprint = json.dumps(cfg.generator.model_dump(mode="json"), sort_keys=True)
    events_path, impressions_path = cfg.paths.table(EVENTS), cfg.paths.table(IMPRESSIONS)
    if not force and _data_is_current(cfg, fingerprint):
        return {"generated": False, "reason": "tables exist with the same settings"}
    started = time.perf_counter()
    impressions: list[pa.Table] = []
    counts = {"events": 0}

    def event_batches():
        for events, imps in generate(cfg.generator):
            impressions.append(imps)
            counts["events"] += events.num_rows
            yield from events.to_batches()

    reader = pa.RecordBatchReader.from_batches(EVENTS_SCHEMA, event_batches())
    meta = {GENERATOR_META_KEY: fingerprint}
    lake.write_arrow(events_path, reader, [EVENT_DATE], mode="overwrite", metadata=meta)
    imps = pa.concat_tables(impressions)
    # impressions last: their commit marks the data set complete
    lake.write_arrow(impressions_path, imps, [IMPRESSION_DATE], mode="overwrite", metadata=meta)
    return {
        "generated": True,
        "events": counts["events"],
        "impressions": imps.num_rows,
        "users": cfg.generator.n_users,
        "seconds": round(time.perf_counter() - started, 2),
    }


def ingest_source(cfg: VistaConfig, as_of: Snapshot, force: bool = False) -> dict[str, Any]:
    """The source's files -> ``events`` (+ labelled ``impressions``) and ``quarantine``.

    Exactly once per delivery (a file's content): the events commit records each file's
    content key as a Delta application transaction, and a file whose key is there is
    skipped. A file that adds no event (all rows bad, a header only, all duplicates) is
    recorded too, by an empty commit, so reruns do not read it again. Every file is read
    and validated before anything is committed. Order of commits: quarantine (appends the
    rows of each delivery not recorded there yet: nothing is ever replaced), impressions
    and events (insert rows whose key is not there yet), so a crash between them is
    repaired by the rerun.

    Every file found is accounted for in the result: ingested, already ingested,
    ``files_skipped`` (markers and names of unknown format, with why) or
    ``files_unreadable`` (recorded in quarantine as unreadable_file; the run stops unless
    ``source.unreadable_files`` is skip).

    A per-user split (``source.split: per_user``) splits each user's whole history at
    once, so it ingests all files in one go: files arriving after the first ingest are
    refused until ``force`` re-ingests everything. Its impressions are stamped after the
    split's own snapshot date (``result["split"]["as_of"]``), whatever ``as_of`` is."""
    from sources.ingest import find_source_files

    if force:
        for name in (EVENTS, IMPRESSIONS, QUARANTINE):
            lake.delete_table(cfg.paths.table(name))
    found = find_source_files(cfg.source, as_of.date())
    return ingest_files(cfg, as_of, found.files, found.skipped)


def new_ingest_run(as_of: Snapshot, now: dt.datetime) -> str:
    """An id for one ingest run: the run date, the time and a random suffix."""
    import uuid

    return f"{as_of.iso}/{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _quarantine_txn(key: str) -> str:
    return f"quarantine:{key}"


def _append_quarantine(path, rows: pa.Table, keys: list[str], metadata: dict[str, str]) -> None:
    """Append a run's quarantine rows as one commit that records each delivery's key, so
    a rerun after a crash does not add them twice. Older tables (before file_key and
    ingest_run) gain the columns (schema merge)."""
    from deltalake import CommitProperties, write_deltalake
    from deltalake.transaction import Transaction

    if lake.is_local(path):
        Path(path).mkdir(parents=True, exist_ok=True)
    commit = CommitProperties(app_transactions=[Transaction(_quarantine_txn(k), 1) for k in keys],
                              custom_metadata=metadata)  # fmt: skip
    lake.with_commit_retries(
        lambda: write_deltalake(lake.table_uri(path), rows, partition_by=[INGEST_DATE],
                                mode="append", schema_mode="merge", commit_properties=commit,
                                storage_options=lake.storage_options(path))
    )  # fmt: skip


def _record_empty_commit(path, schema: pa.Schema, partition_by: list[str], commit) -> None:
    """A commit with no rows that carries ``commit``'s transactions (delta-rs writes no
    commit for a merge that inserts nothing)."""
    from deltalake import write_deltalake

    lake.with_commit_retries(
        lambda: write_deltalake(lake.table_uri(path), schema.empty_table(), mode="append",
                                partition_by=partition_by, commit_properties=commit,
                                storage_options=lake.storage_options(path))
    )  # fmt: skip


def _stored_conflicts(good: pd.DataFrame, source, events_path, impressions_path) -> pd.DataFrame:
    """Rows of ``good`` (with their ``index`` in it) that events or impressions stored by
    an earlier ingest hold with another category or label (sources.ingest.stored_conflicts).
    Reads only the stored partitions of the dates the rows fall on."""
    from sources.ingest import DEDUPE_KEY, stored_conflicts
    from sources.loaders import impression_ids

    rows = good.reset_index(names="index")
    found = []
    if lake.table_exists(events_path) and "category" in rows:
        dates = sorted(set(rows[EVENT_DATE]))
        stored = lake.read_arrow(events_path, filters=[(EVENT_DATE, "in", dates)],
                                 columns=[*DEDUPE_KEY, "category"]).to_pandas()  # fmt: skip
        stored["event_timestamp"] = stored["event_timestamp"].astype(rows["event_timestamp"].dtype)
        found.append(stored_conflicts(rows.assign(row_number=rows["row_number"]), stored,
                                      DEDUPE_KEY, {"category": "category"}))  # fmt: skip
    label = source.label_column
    if label and label in rows and lake.table_exists(impressions_path):
        stored = lake.read_arrow(impressions_path, columns=["impression_id", "label"]).to_pandas()
        mine = rows.assign(impression_id=impression_ids(rows),
                           label=(rows[label] >= source.label_threshold).astype("int8"))  # fmt: skip
        found.append(stored_conflicts(mine, stored, ["impression_id"], {"label": "label"}))
    if not found:
        return pd.DataFrame(columns=["index", "row_number", "source_file", "detail"])
    clashes = pd.concat(found, ignore_index=True).drop_duplicates(["source_file", "row_number"])
    where = rows.set_index(["source_file", "row_number"])["index"]
    keys = pd.MultiIndex.from_frame(clashes[["source_file", "row_number"]])
    return clashes.assign(index=where.loc[keys].to_numpy())


def ingest_files(
    cfg: VistaConfig,
    as_of: Snapshot,
    files: list[Path],
    skipped: list[tuple[str, str]] = (),
    replay: bool = False,
) -> dict[str, Any]:
    """``files`` through parsing, validation, quarantine and dedupe into the tables
    (``ingest_source``'s work; ``vista quarantine replay`` sends a corrected file the
    same way, exactly once: see ``ingest_source``)."""
    from deltalake import CommitProperties
    from deltalake.transaction import Transaction

    from sources.ingest import (
        QUARANTINE_SCHEMA,
        SourceError,
        conflict_rows,
        dedupe,
        file_key,
        quarantine_table,
    )
    from sources.ingest import source_format as fmt_of
    from sources.loaders import (
        events_table,
        impressions_arrow,
        prepare_file,
        read_items,
        split_source,
    )

    source = cfg.source
    events_path, impressions_path = cfg.paths.table(EVENTS), cfg.paths.table(IMPRESSIONS)
    quarantine_path = cfg.paths.table(QUARANTINE)
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    run = new_ingest_run(as_of, now)
    date = as_of.iso
    unreadable: dict[Path, str] = {}
    keys: dict[Path, str] = {}
    for path in files:
        try:
            keys[path] = file_key(path, fmt_of(source, path))
        except (SourceError, OSError, ValueError) as exc:
            unreadable[path] = f"cannot read {path}: {exc}"
            keys[path] = f"unreadable:{path}"
    # a skipped file of an unknown format is recorded in quarantine (a marker is not)
    recorded = [(Path(name), why) for name, why in skipped if not Path(name).name.startswith((".", "_"))]  # fmt: skip
    for path, _ in recorded:
        keys[path] = file_key(path, "file")
    done = lake.open_table(events_path) if lake.table_exists(events_path) else None
    readable = [p for p in files if p not in unreadable]
    pending = [p for p in readable if done is None or done.transaction_version(keys[p]) is None]
    result: dict[str, Any] = {
        "ingest_run": run,
        "files": len(files),
        "files_already_ingested": len(readable) - len(pending),
        "files_skipped": [{"file": name, "why": why} for name, why in skipped],
    }
    if source.split == "per_user" and pending and (len(pending) < len(readable) or replay):
        raise SourceError(
            f"source.split=per_user: {len(pending)} new file(s) (first: {pending[0]}) arrived "
            f"after {len(readable) - len(pending)} were ingested; a per-user split needs every "
            "file at once: re-ingest all with --force (vista ingest-events --force, or the DAG "
            "param regenerate)"
            + ("; a replay cannot be added to a per-user split" if replay else "")
        )
    items = read_items(source)
    prepared = {}
    for path in pending:  # all read before any commit
        try:
            prepared[path] = prepare_file(path, source, items, now)
        except SourceError as exc:
            unreadable[path] = str(exc)
    result["files_unreadable"] = [{"file": str(p), "error": m} for p, m in unreadable.items()]
    # quarantine: every delivery's rows once (the conflicts need every file of the run)
    goods = [p.good for p in prepared.values()]
    good, exact_duplicates, conflicts = (
        dedupe(pd.concat(goods, ignore_index=True)) if goods else (None, 0, None)
    )
    bads: dict[Path, pd.DataFrame] = {path: p.bad for path, p in prepared.items()}
    if conflicts is not None and len(conflicts):
        for name, rows in conflicts.groupby("source_file", sort=False):
            path = Path(name)
            raw = prepared[path].rows.raw_of(rows["row_number"])
            bads[path] = pd.concat([bads[path], conflict_rows(rows, raw)], ignore_index=True)
    if good is not None and len(good):
        clashes = _stored_conflicts(good, source, events_path, impressions_path)
        if len(clashes):
            good = good.drop(index=clashes.pop("index")).reset_index(drop=True)
            for name, rows in clashes.groupby("source_file", sort=False):
                path = Path(name)
                found = pd.DataFrame({"row_number": rows["row_number"].to_numpy(),
                                      "reason": "conflicts_with_stored",
                                      "detail": rows["detail"].to_numpy(),
                                      "raw": prepared[path].rows.raw_of(rows["row_number"])})  # fmt: skip
                bads[path] = pd.concat([bads[path], found], ignore_index=True)
    for path, why in [*unreadable.items(), *recorded]:
        bads[path] = pd.DataFrame({"row_number": [0], "reason": ["unreadable_file"],
                                   "detail": [why], "raw": [""]})  # fmt: skip
    existing = lake.open_table(quarantine_path) if lake.table_exists(quarantine_path) else None
    new_deliveries = [p for p in bads if existing is None
                      or existing.transaction_version(_quarantine_txn(keys[p])) is None]  # fmt: skip
    tables = [quarantine_table(bads[p].sort_values("row_number"), str(p), now, date, keys[p], run)
              for p in new_deliveries]  # fmt: skip
    quarantined = pa.concat_tables(tables).cast(QUARANTINE_SCHEMA) if tables else \
        QUARANTINE_SCHEMA.empty_table()  # fmt: skip
    meta = {"vista.ingest_run": run, "vista.ingest_date": date}
    if new_deliveries:
        _append_quarantine(quarantine_path, quarantined, [keys[p] for p in new_deliveries], meta)
    if unreadable and source.unreadable_files == "fail":
        listed = "; ".join(unreadable.values())
        raise SourceError(
            f"{len(unreadable)} source file(s) unreadable, nothing ingested: {listed} (each "
            f"recorded in {QUARANTINE} as unreadable_file; fix or remove the file, or set "
            "source.unreadable_files=skip to ingest the other files)"
        )
    if not prepared:
        reason = ("every source file is already ingested" if not unreadable
                  else "no readable file to ingest")  # fmt: skip
        return {**result, "generated": False, "reason": reason}
    row_bads = [bads[p] for p in prepared]
    by_reason = pd.concat(row_bads)["reason"].value_counts() if row_bads else pd.Series()
    split = split_source(good.drop(columns=["source_file"]), source)
    events = events_table(split.events)
    impressions = None
    if split.impressions is not None:
        impressions = impressions_arrow(split.impressions, source)
        lake.merge_new_rows(impressions_path, impressions, ["impression_id"], [IMPRESSION_DATE])
    ingested = list(prepared)
    commit = CommitProperties(
        app_transactions=[Transaction(keys[p], 1) for p in ingested],
        custom_metadata={"vista.ingested_files": json.dumps([str(p) for p in ingested]), **meta},
    )
    inserted = lake.merge_new_rows(
        events_path, events, ["user_id", "item_id", "event_timestamp", "event_type"],
        [EVENT_DATE], commit,
    )  # fmt: skip
    if any(lake.open_table(events_path).transaction_version(keys[p]) is None for p in ingested):
        _record_empty_commit(events_path, events.schema, [EVENT_DATE], commit)
    rows_in = sum(p.rows.rows_in for p in prepared.values())
    return {
        **result,
        "generated": True,
        "source": str(source.events_path),
        "files_ingested": [str(p) for p in ingested],
        # every row read is stored, quarantined or a duplicate:
        # rows_read = events + quarantined + duplicates_in_files + duplicates_already_stored
        "rows_read": int(rows_in),
        "events": int(inserted),
        "duplicates_in_files": int(exact_duplicates),
        "duplicates_already_stored": int(len(good) - inserted),
        "quarantined": int(by_reason.sum()),
        "quarantined_by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "impressions": 0 if impressions is None else impressions.num_rows,
        "users": len(pc.unique(events["user_id"])),
        "split": split.counts,
        "seconds": round(time.perf_counter() - started, 2),
    }


def ingest_commits(path, date: str) -> list[dict[str, Any]]:
    """The events commits of the ingest runs for run date ``date`` (oldest first), each
    with the table files it added (``added``)."""
    from deltalake import DeltaTable

    table = lake.open_table(path)
    commits = [c for c in table.history() if c.get("vista.ingest_date") == date]

    def files(version: int) -> set[str]:
        if version < 0:
            return set()
        at = DeltaTable(lake.table_uri(path), version=version,
                        storage_options=lake.storage_options(path))  # fmt: skip
        return set(at.get_add_actions(flatten=True).column("path").to_pylist())

    return [{**c, "added": files(c["version"]) - files(c["version"] - 1)}
            for c in sorted(commits, key=lambda c: c["version"])]  # fmt: skip


def rows_added(path, commits: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows in the files ``commits`` added that are still in the table (an ingest
    commit only adds files: its merge inserts rows and rewrites none)."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pa_fs

    table = lake.open_table(path)
    added = set().union(*(c["added"] for c in commits)) if commits else set()
    local = None
    if lake.is_local(path):
        local = pa_fs.SubTreeFileSystem(str(Path(path).resolve()), pa_fs.LocalFileSystem())
    dataset = table.to_pyarrow_dataset(filesystem=local)
    fragments = [f for f in dataset.get_fragments() if f.path in added]
    subset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    return subset.to_table().to_pandas()


def _events_problem(cfg, frame, commits, now, allowed, skew, exc) -> str:
    """The failed suite's message, plus the rows (and the commits and files they came
    from) that it rejects and how to repair the table."""
    from validation.suites import events_frame, events_rejected

    bad = frame[events_rejected(events_frame(frame), now, allowed, skew).to_numpy()]
    shown = bad.head(5)[["user_id", "item_id", "event_type", "event_timestamp"]]
    rows = "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in shown.to_dict("records"))
    versions = [c["version"] for c in commits]
    files = sorted({f for c in commits for f in json.loads(c.get("vista.ingested_files", "[]"))})
    return (
        f"{exc}\n  {len(bad)} of the {len(frame)} rows that the ingest runs of this date added "
        f"to {cfg.paths.table(EVENTS)} (commit versions {versions}, from {files[:5]}) fail "
        f"it, e.g. {rows}.\n  Repair: `vista quarantine evict --as-of <date>` moves every "
        f"events row the suite rejects to {QUARANTINE} (reason rejected_by_suite), or restore "
        f"the table to version {min(versions, default=1) - 1} and ingest again"
    )


def validate_events(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """The events and impressions suites (critical) and, for an ingested source, the
    quarantine suite on the rows this run set aside (warns).

    For an ingested source the events suite checks the rows the ingest runs of this
    date added (found by their commits), not the whole table: a bad row already stored
    fails the run that added it, names itself and the repair, and does not stop every
    later run. The table itself must not be empty."""
    from sources.ingest import REASONS, allowed_event_types
    from validation.checkpoints import DataQualityError, run_suite
    from validation.suites import (
        events_frame,
        events_suite,
        impressions_suite,
        quarantine_frame,
        quarantine_suite,
    )

    events_path = cfg.paths.table(EVENTS)
    now = dt.datetime.now(dt.UTC)
    if cfg.source is None:
        events = lake.read_arrow(events_path).to_pandas()
        suite = events_suite(now=now)
        outcome = run_suite(suite, events_frame(events), report_dir(cfg, as_of)).to_dict()
    else:
        allowed = allowed_event_types(cfg.source)
        skew = cfg.source.max_clock_skew_seconds
        commits = ingest_commits(events_path, as_of.iso)
        events = rows_added(events_path, commits)
        stored = sum(lake.open_table(events_path).get_add_actions(flatten=True)
                     .column("num_records").to_pylist())  # fmt: skip
        if not stored:
            raise DataQualityError(
                f"critical suite 'events' failed: {events_path} holds no event; every source "
                f"row was quarantined or duplicated (see `vista quarantine counts`)"
            )
        suite = events_suite(now=now, event_types=allowed, max_skew_seconds=skew, min_rows=0)
        try:
            checked = run_suite(suite, events_frame(events), report_dir(cfg, as_of))
        except DataQualityError as exc:
            raise DataQualityError(
                _events_problem(cfg, events, commits, now, allowed, skew, exc)
            ) from exc
        outcome = {**checked.to_dict(), "rows_checked": len(events), "rows_in_table": stored,
                   "commits_checked": [c["version"] for c in commits]}  # fmt: skip
    impressions = cfg.paths.table(IMPRESSIONS)
    if lake.table_exists(impressions):
        frame = lake.read_arrow(impressions).to_pandas()
        checked = run_suite(impressions_suite(), frame, report_dir(cfg, as_of))
        outcome["impressions"] = checked.to_dict()
    quarantine = cfg.paths.table(QUARANTINE)
    if cfg.source is None or not lake.table_exists(quarantine):
        return outcome
    rows = lake.read_arrow(quarantine, filters=as_of.partition_filter(INGEST_DATE))
    frame = quarantine_frame(rows.to_pandas())
    checked = run_suite(quarantine_suite(list(REASONS)), frame, report_dir(cfg, as_of))
    by_reason = rows.group_by("reason").aggregate([("reason", "count")]).to_pylist()
    unreadable = rows.filter(pc.field("reason") == "unreadable_file")
    return {
        **outcome,
        "quarantine": {
            **checked.to_dict(),
            "rows": rows.num_rows,
            "by_reason": {r["reason"]: r["reason_count"] for r in by_reason},
            "files_unreadable": sorted(set(unreadable.column("source_file").to_pylist())),
        },
    }


# ---------------------------------------------------------------- 2. histories
INPUTS_KEY = "vista.inputs"


def _inputs(**values: Any) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def _built_from(path: Path, as_of: Snapshot, inputs: str) -> dict | None:
    """The commit that wrote ``as_of``'s partition, if it was made from these inputs:
    a rerun with unchanged inputs then commits nothing (same content, same version)."""
    commit = lake.partition_commit(path, PARTITION_COL, as_of.iso)
    return commit if commit is not None and commit.get(INPUTS_KEY) == inputs else None


def _partition_version(path: Path, as_of: Snapshot | str | None) -> int | None:
    if as_of is None:
        return None
    day = as_of if isinstance(as_of, str) else as_of.iso
    commit = lake.partition_commit(path, PARTITION_COL, day)
    return None if commit is None else commit["version"]


def previous_snapshot(path: Path, as_of: Snapshot) -> str | None:
    """The latest as_of_date partition strictly before ``as_of``, if any."""
    if not lake.table_exists(path):
        return None
    dates = [p[PARTITION_COL] for p in lake.open_table(path).partitions()]
    earlier = [d for d in dates if d < as_of.iso]
    return max(earlier) if earlier else None


def build_histories(cfg: VistaConfig, as_of: Snapshot, full: bool = False) -> dict[str, Any]:
    """Snapshot of every user's history before ``as_of``: incremental from the previous
    snapshot when there is one (unless ``full``), from all events otherwise."""
    from spark_jobs.histories import build_user_histories, update_user_histories

    path = cfg.paths.table(HISTORIES)
    previous = None if full else previous_snapshot(path, as_of)
    mode = "full" if previous is None else f"incremental from {previous}"
    inputs = _inputs(events_version=lake.table_version(cfg.paths.table(EVENTS)), mode=mode,
                     previous_version=_partition_version(path, previous),
                     max_history=cfg.histories.max_history)  # fmt: skip
    done = _built_from(path, as_of, inputs)
    if done is not None:
        return {"table_version": done["version"], "mode": mode, "unchanged": True,
                **_partition_stats(path, as_of)}  # fmt: skip
    spark = _spark(cfg)
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
    stats = _partition_stats(path, as_of)
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

    spark = _spark(cfg)
    snapshot = lake.spark_read(spark, cfg.paths.table(HISTORIES)).where(
        f"{PARTITION_COL} = '{as_of.iso}'"
    )
    checks = history_checks(snapshot, as_of).toPandas()
    suite = histories_suite(cfg.histories.max_history)
    return run_suite(suite, checks, report_dir(cfg, as_of)).to_dict()


def _partition_stats(path: Path, as_of: Snapshot) -> dict[str, Any]:
    lengths = lake.read_arrow(path, filters=as_of.partition_filter(), columns=["history_length"])
    values = lengths.column("history_length").to_numpy()
    return {
        "users": len(values),
        "events": int(values.sum()),
        "max_history_length": int(values.max()) if len(values) else 0,
    }


def read_histories(cfg: VistaConfig, as_of: Snapshot) -> pd.DataFrame:
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
    inputs = _inputs(histories_version=_partition_version(cfg.paths.table(HISTORIES), as_of),
                     tail_length=tail_length, per_category=100)  # fmt: skip
    done = [_built_from(p, as_of, inputs) for p in (tail_path, category_path)]
    spark = _spark(cfg)
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

    spark, day = _spark(cfg), as_of.iso
    tails, categories = (
        lake.spark_read(spark, cfg.paths.table(t)).where(f"{PARTITION_COL} = '{day}'")
        for t in (HISTORY_TAIL, CATEGORY_HISTORIES)
    )
    checks = raw.raw_feature_checks(tails, categories, tail_length, 100).toPandas()
    return run_suite(raw_features_suite(tail_length, 100), checks, report_dir(cfg, as_of)).to_dict()


# ---------------------------------------------------------------- 3. summarizer
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


# ---------------------------------------------------------------- 4. summaries
def summarize(cfg: VistaConfig, as_of: Snapshot, full: bool = False) -> dict[str, Any]:
    """Summaries for the ``as_of`` snapshot. Users whose history did not change since the
    previous snapshot keep the summary made then by the same summarizer version (stamped
    with the new ``as_of``); everyone else, and everyone after a version change, is
    summarized anew."""
    from models.summarizer import load_checkpoint
    from spark_jobs.summarize import carry_over_summaries, summarize_histories

    current = current_summarizer(cfg)
    load_checkpoint(Path(current["path"]), cfg.summarizer)  # fail early on a size mismatch
    path = summaries_path(cfg, current["version"])
    codec = cfg.features.summary_codec
    previous = None if full else previous_snapshot(path, as_of)
    # `updated` is relative to the histories' previous snapshot: carrying summaries
    # over is only right if they were made from that same snapshot
    if previous is not None and previous != previous_snapshot(cfg.paths.table(HISTORIES), as_of):
        previous = None
    inputs = _inputs(histories_version=_partition_version(cfg.paths.table(HISTORIES), as_of),
                     summarizer_version=current["version"], codec=codec, carried_from=previous,
                     previous_version=_partition_version(path, previous))  # fmt: skip
    done = _built_from(path, as_of, inputs)
    if done is not None:
        return {"table_version": done["version"], "summarizer_version": current["version"],
                "summary_codec": codec, "unchanged": True,
                "stored_bytes": _partition_bytes(path, as_of), **_partition_stats(path, as_of)}  # fmt: skip
    spark = _spark(cfg)
    histories = lake.spark_read(spark, cfg.paths.table(HISTORIES)).where(
        f"{PARTITION_COL} = '{as_of.iso}'"
    )
    started, run_started_at = time.perf_counter(), dt.datetime.now(dt.UTC)
    to_summarize, carried = histories, None
    if previous is not None:
        earlier = lake.spark_read(spark, path).where(f"{PARTITION_COL} = '{previous}'")
        carried = carry_over_summaries(histories, earlier, current["version"], as_of, codec)
        to_summarize = histories.join(carried.select("user_id"), "user_id", "left_anti")
    summaries = summarize_histories(
        to_summarize, Path(current["path"]), current["version"], as_of, codec
    )
    if carried is not None:
        summaries = summaries.unionByName(carried)
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
    stats = _partition_stats(path, as_of)
    # carried rows keep the created_timestamp of the run that computed them
    made = lake.read_arrow(path, filters=as_of.partition_filter(), columns=["created_timestamp"])
    carried_users = int(pc.sum(pc.less(made["created_timestamp"], run_started_at)).as_py() or 0)
    return {
        "table_version": version,
        "summarizer_version": current["version"],
        "summary_codec": codec,
        "stored_bytes": _partition_bytes(path, as_of),
        "carried_over_from": previous,
        "carried_over_users": carried_users,
        "summarized_users": stats["users"] - carried_users,
        "seconds": round(seconds, 2),
        "events_per_second": round(stats["events"] / max(seconds, 1e-9)),
        **stats,
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
    return {**outcome, "drift": drift}


# ---------------------------------------------------------------- 5. features
def publish_features(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """feast apply, then materialize summaries up to the end of ``as_of``'s day."""
    summaries = summaries_path(cfg)
    if not lake.table_exists(summaries):
        # else Feast fails deep in DuckDB, naming neither the table nor the step
        raise MissingStateError(f"no summaries at {summaries}: run `vista summarize` first")
    store = features.apply_repo(cfg)
    started = time.perf_counter()
    end = as_of + dt.timedelta(days=1)
    features.materialize(store, start=end - dt.timedelta(days=cfg.features.materialize_days),
                         end=end)  # fmt: skip
    sample = read_summaries(cfg, as_of)["user_id"].head(3).tolist()
    online = features.online_summaries(store, sample)
    served = sum(v is not None for v in online["summary"])
    if served != len(sample):
        raise RuntimeError(f"online store serves {served} of {len(sample)} sampled users")
    return {
        "materialized_until": end.isoformat(),
        "materialize_seconds": round(time.perf_counter() - started, 2),
        "online_users_checked": len(sample),
    }


# ---------------------------------------------------------------- 6. ranker
def training_set(cfg: VistaConfig, days: list[str], as_of: Snapshot | None = None) -> pd.DataFrame:
    """Impressions of ``days`` joined point-in-time with their summaries via Feast; with
    ``as_of``, cold-start rows are marked (``mark_cold_start``)."""
    store = features.feature_store(cfg)
    entity_df = read_impressions(cfg, days).drop(columns=[IMPRESSION_DATE])
    frame = features.training_frame(store, entity_df)
    if as_of is not None:
        frame = mark_cold_start(frame, snapshot_users(cfg, as_of))
    return frame.sort_values("impression_id").reset_index(drop=True)


def snapshot_users(cfg: VistaConfig, as_of: Snapshot) -> np.ndarray:
    """Users with at least one event before ``as_of`` (the histories snapshot's rows)."""
    table = lake.read_arrow(cfg.paths.table(HISTORIES), filters=as_of.partition_filter(),
                            columns=["user_id"])  # fmt: skip
    return table.column("user_id").to_numpy()


def mark_cold_start(frame: pd.DataFrame, users_with_history: np.ndarray) -> pd.DataFrame:
    """``cold_start``: the user had no event before the snapshot, so no summary joined.

    Their history_length is 0 (known: nothing to summarize), not the join's null, and
    their summary stays null: the ranker scores them as serving scores a user the online
    store does not know (zeros plus a no-summary flag), so training and serving agree. An
    empty-history summary row would instead give them an input that unknown users never
    get at serving time. A null history_length left on a user *with* a history means the
    join found no summary in time (features.ttl_days), which the coverage check counts."""
    cold = ~frame["user_id"].isin(users_with_history) & frame["history_length"].isna()
    lengths = frame["history_length"].where(~cold, 0)
    return frame.assign(cold_start=cold.to_numpy(), history_length=lengths)


def validate_training_set(
    cfg: VistaConfig, as_of: Snapshot, train: pd.DataFrame, test: pd.DataFrame
) -> dict[str, Any]:
    """The critical training-set suite on the Feast frames, before any training. A
    coverage below features.min_summary_coverage fails with a first line that says what
    was found and the value this data needs."""
    from validation.checkpoints import DataQualityError, run_suite
    from validation.suites import summary_coverage_problem, training_frame, training_set_suite

    frame = pd.concat([train.assign(split="train"), test.assign(split="eval")],
                      ignore_index=True)  # fmt: skip
    checked = training_frame(frame)
    width, minimum = cfg.summarizer.n_seeds * cfg.summarizer.dim, cfg.features.min_summary_coverage
    with_history = int(checked["summary_joined"].notna().sum())
    suite = training_set_suite(width, minimum, check_coverage=with_history > 0)
    try:
        outcome = run_suite(suite, checked, report_dir(cfg, as_of)).to_dict()
    except DataQualityError as exc:
        problem = summary_coverage_problem(checked, minimum, as_of, cfg.features.ttl_days)
        if problem is None:
            raise
        raise DataQualityError(f"{problem}\n{exc}") from None
    cold = int(len(checked) - with_history)
    return {**outcome, "cold_start_rows": cold, "rows_with_history": with_history}


def ttl_problem(cfg: VistaConfig, as_of: Snapshot, days: list[str], rows: int) -> str:
    """One line: no impression of a user with a history found a summary in time."""
    needed = (dt.date.fromisoformat(days[-1]) - as_of.date()).days + 1
    return (
        f"none of the {rows} evaluation impressions ({days[0]} .. {days[-1]}) of users with a "
        f"history has a summary from as_of {as_of.iso}: features.ttl_days="
        f"{cfg.features.ttl_days} is shorter than their distance from the snapshot; this data "
        f"needs features.ttl_days >= {needed} (or an as_of just before the impressions)"
    )


def train_and_evaluate_ranker(
    cfg: VistaConfig, as_of: Snapshot, progress: bool = True
) -> dict[str, Any]:
    """ranker_v1 (the VISTA ranker on the summary tokens alone), trained on the training
    days and evaluated on the later ``eval_days``; ``vista evaluate-and-report`` compares
    baselines.

    Reads ``training_set`` frames, one row per impression: its columns (impression_id,
    user_id, item_id, category, event_timestamp, label, the oracle's probabilities) and
    ranker_v1's features (``summary``: K*D float32 token-major, or None; history_length,
    is_empty_history, summarizer_version), plus ``cold_start``. Writes the artifact and
    ``current.json`` under ``<state>/models/ranker/`` (``save_ranker_artifact``)."""
    from models.evaluation import ranking_metrics
    from models.ranker import score

    train_days, eval_days = impression_windows(cfg, as_of)
    train, test = training_set(cfg, train_days, as_of), training_set(cfg, eval_days, as_of)
    quality = validate_training_set(cfg, as_of, train, test)
    # cold-start users have no summary to find; everyone else should have found one
    with_history = test[~test["cold_start"]]
    if len(with_history) and with_history["summary"].isna().all():
        raise SettingError(ttl_problem(cfg, as_of, eval_days, len(with_history)))
    started = time.perf_counter()
    # ranker_v1's feature service holds the summaries only, no raw items; it picks its
    # pooling as the report's VISTA does (lowest validation loss, first seed), so that
    # with recent_items 0 the served model is the report's first VISTA seed
    spec = dataclasses.replace(ranker_spec(cfg, "vista"), recent_items=0)
    spec, model, curve, pooling_losses = choose_pooling(train, cfg, spec, progress,
                                                        frozen_summarizer(cfg))  # fmt: skip
    train_seconds = time.perf_counter() - started
    coverage = float(test["summary"].notna().mean())
    labels, users = test["label"].to_numpy(), test["user_id"].to_numpy()
    metrics = {"ranker_v1": ranking_metrics(labels, score(model, test), users)}
    oracle = test["oracle_prob"].to_numpy(dtype=float)
    if np.isfinite(oracle).all():  # synthetic data knows the true click probability
        metrics["oracle"] = ranking_metrics(labels, oracle, users)
    artifact = save_ranker_artifact(cfg, as_of, model, metrics["ranker_v1"])
    return {
        "artifact": artifact,
        "train_days": train_days,
        "eval_days": eval_days,
        "training_set_quality": quality,
        "train_rows": len(train),
        "eval_rows": len(test),
        "summary_coverage": coverage,
        "eval_cold_start_rows": int(test["cold_start"].sum()),
        "pooling": spec.pooling,
        "validation_loss_by_pooling": pooling_losses,
        "training_curve": curve.to_dict(),
        "train_seconds": round(train_seconds, 2),
        "metrics": metrics,
    }


def save_ranker_artifact(
    cfg: VistaConfig, as_of: Snapshot, model, metrics: dict[str, Any]
) -> dict[str, Any]:
    """Save ranker_v1 with the summarizer version it read, and point serving at it.

    The version travels with the weights so that serving can refuse summaries of
    another summarizer (their tokens mean something else to this ranker)."""
    from models.ranker import save_ranker

    version = current_summarizer(cfg)["version"]
    path = ranker_dir(cfg) / f"ranker_v1-{version}-{as_of.iso}.pt"
    pointer = {
        "name": "ranker_v1",
        "path": str(path),
        "summarizer_version": version,
        "as_of": as_of.iso,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
    }
    save_ranker(model, cfg.ranker, path, pointer)
    write_json(ranker_dir(cfg) / "current.json", pointer)
    return pointer


def evaluate_and_report(cfg: VistaConfig, as_of: Snapshot, progress: bool = True) -> dict[str, Any]:
    """Every ranker variant x seeds on the Feast evaluation set -> reports/<as_of>/report.md
    (tables and plots); returns the headline figures and the files written."""
    started = time.perf_counter()
    evaluation = evaluate_rankers(cfg, as_of, progress)
    title = f"Ranker evaluation: VISTA against raw-history baselines ({cfg.profile}, {as_of.iso})"
    files = write_report(report_dir(cfg, as_of), evaluation, title)
    headline = {
        name: {bucket: cell["auc"]["mean"] for bucket, cell in v["summary"].items()}
        for name, v in evaluation["variants"].items()
    }
    if "oracle" in evaluation:
        headline["oracle"] = {b: m["auc"] for b, m in evaluation["oracle"].items()}
    return {"auc_by_bucket": headline, "files": files,
            "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip


# ---------------------------------------------------------------- 7. the run's record
def write_run_summary(
    cfg: VistaConfig, as_of: Snapshot, steps: dict[str, Any] | None = None
) -> dict[str, Any]:
    """reports/<as_of>/run.json, copied to reports/latest/run.json: the date's headline
    figures, every step recorded for it (plus ``steps``) by step name, and the config.

    Returns ``{"path": <the date's run.json>}``."""
    steps = {**recorded_steps(cfg, as_of), **(steps or {})}
    ranker = steps.get("train_and_evaluate_ranker", {})
    metrics = ranker.get("metrics", {})
    payload = {
        "as_of": as_of.iso,
        "profile": cfg.profile,
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "headline": {
            "ranker_auc": metrics.get("ranker_v1", {}).get("auc"),
            "ranker_log_loss": metrics.get("ranker_v1", {}).get("log_loss"),
            "oracle_auc": metrics.get("oracle", {}).get("auc"),
            "summarizer_version": steps.get("summarize", {}).get("summarizer_version"),
            "evaluation_auc": {
                name: by_bucket.get("all")
                for name, by_bucket in steps.get("evaluate_and_report", {})
                .get("auc_by_bucket", {})
                .items()
            },
        },
        "steps": steps,
        "data_docs": str(report_dir(cfg, as_of) / "data_docs" / "index.html"),
        "config": cfg.to_dict(),
    }
    path = write_json(report_dir(cfg, as_of) / RUN_SUMMARY_FILE, payload)
    latest = cfg.paths.reports / "latest"
    latest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, latest / RUN_SUMMARY_FILE)
    # latest/ holds one run: an older copy under the old name would be stale
    (latest / OLD_RUN_SUMMARY_FILE).unlink(missing_ok=True)
    return {"path": str(path)}


def read_run_summary(folder: Path) -> dict[str, Any]:
    """The run summary in ``folder`` (reports/<as_of> or reports/latest): run.json, or
    the summary.json of a run before that name, its step keys renamed to step names."""
    path = folder / RUN_SUMMARY_FILE
    if not path.exists() and (folder / OLD_RUN_SUMMARY_FILE).exists():
        path = folder / OLD_RUN_SUMMARY_FILE
    if not path.exists():
        raise MissingStateError(
            f"no run summary at {folder / RUN_SUMMARY_FILE}: run `vista run`, `vista "
            "write-run-summary` or the DAG chain for that date first"
        )
    payload = json.loads(path.read_text())
    payload["steps"] = {OLD_STEP_KEYS.get(k, k): v for k, v in payload.get("steps", {}).items()}
    return payload


def format_run_summary(payload: dict[str, Any]) -> str:
    """A few lines for the terminal from a run summary (``read_run_summary``)."""
    head = payload["headline"]
    steps = payload["steps"]

    def fmt(x):
        return "n/a" if x is None else f"{x:.4f}"

    lines = [
        f"VISTA pipeline, as_of {payload['as_of']} (profile {payload['profile']})",
        f"  histories : {steps.get('build_histories', {}).get('users', '?')} users, "
        f"{steps.get('build_histories', {}).get('events', '?')} events",
        f"  summarizer: {head['summarizer_version']}",
        f"  ranker AUC: {fmt(head['ranker_auc'])}  log loss {fmt(head['ranker_log_loss'])}"
        f"  (oracle AUC {fmt(head['oracle_auc'])})",
        f"  data docs : {payload['data_docs']}",
    ]
    evaluation = steps.get("evaluate_and_report", {})
    if evaluation.get("files"):
        aucs = ", ".join(f"{k} {fmt(v)}" for k, v in head.get("evaluation_auc", {}).items())
        lines += [f"  evaluation: AUC {aucs}", f"  report    : {evaluation['files']['report']}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- the registry
# every step by name: the DAG tasks (vista.orchestration.run_step), the CLI and the tests
# reach a step through this table, which an editor or a type checker can follow
STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "ingest_events": ingest_events,
    "validate_events": validate_events,
    "build_histories": build_histories,
    "validate_histories": validate_histories,
    "build_raw_features": build_raw_features,
    "train_summarizer": train_summarizer,
    "summarize": summarize,
    "validate_summaries": validate_summaries,
    "publish_features": publish_features,
    "train_and_evaluate_ranker": train_and_evaluate_ranker,
    "evaluate_and_report": evaluate_and_report,
    "write_run_summary": write_run_summary,
}
