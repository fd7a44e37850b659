"""Stage 1, ingest: the ``events`` and ``impressions`` tables, from the generator or
from the profile's source files, with every bad row set aside in ``quarantine``.

Synthetic data is written once per generator settings (their fingerprint rides on the
commit). A source is ingested exactly once per delivery: each file's content key is a
Delta application transaction on the events commit (``ingest_source``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.names import (
    EVENT_DATE,
    EVENTS,
    IMPRESSION_DATE,
    IMPRESSIONS,
    INGEST_DATE,
    QUARANTINE,
)
from vista.core.snapshot import Snapshot
from vista.pipeline.partitions import default_as_of

GENERATOR_META_KEY = "vista.generator"


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
    found = find_source_files(cfg.source, as_of)
    return ingest_files(cfg, as_of, found.files, found.skipped)


def new_ingest_run(as_of: Snapshot, now: dt.datetime) -> str:
    """An id for one ingest run: the run date, the time and a random suffix."""
    import uuid

    return f"{as_of.iso}/{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _quarantine_txn(key: str) -> str:
    return f"quarantine:{key}"


def append_quarantine(path, rows: pa.Table, keys: list[str], metadata: dict[str, str]) -> None:
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
        append_quarantine(quarantine_path, quarantined, [keys[p] for p in new_deliveries], meta)
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
