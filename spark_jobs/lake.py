"""Delta tables on the lake: read and write with delta-rs, from Arrow or from Spark.

JVM Spark cannot load the Delta jars offline, so Spark never talks Delta itself:
- to read, it gets the parquet files of a snapshot from the Delta log
  (``DeltaTable.file_uris()``), never the folder, which also holds removed files;
- to write, executors write plain parquet into a staging folder, the driver moves
  the files into the partition folder and commits them as one Delta transaction
  that replaces exactly that partition. A crash before the commit leaves the table
  at its last version; the stray files are invisible to readers (vacuum removes them).
"""

from __future__ import annotations

import json
import random
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, create_table_with_add_actions


class TableNotFoundError(FileNotFoundError):
    """A Delta table that a step needs has not been written yet."""


T = TypeVar("T")
COMMIT_ATTEMPTS = 8


def with_commit_retries(commit: Callable[[], T], attempts: int = COMMIT_ATTEMPTS) -> T:
    """Run ``commit`` again when another writer committed first.

    Two runs (two dates, or a backfill beside the schedule) may write one table at the
    same time. delta-rs refuses a merge or a replace whose snapshot went stale ("a
    concurrent transaction added new data") and the second of two table creations;
    each such ``commit`` re-reads the table, so rerunning it is correct. Randomised
    exponential backoff keeps the writers from colliding again in lock step."""
    for attempt in range(1, attempts + 1):
        try:
            return commit()
        except CommitFailedError:
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
    raise AssertionError("unreachable")


def table_exists(path: Path) -> bool:
    return DeltaTable.is_deltatable(str(path))


def open_table(path: Path, version: int | None = None) -> DeltaTable:
    if not table_exists(path):
        raise TableNotFoundError(f"Delta table {path} does not exist (run the step that writes it)")
    return DeltaTable(str(path), version=version)


def read_arrow(path: Path, version: int | None = None, filters=None, columns=None) -> pa.Table:
    return arrow_of(open_table(path, version), filters=filters, columns=columns)


def arrow_of(table: DeltaTable, filters=None, columns=None) -> pa.Table:
    """The table's rows. Local tables are scanned through Arrow's native filesystem: with
    delta-rs's Python filesystem handler, Arrow's I/O threads call into Python and the
    interpreter sometimes aborts at exit ("terminate called without an active
    exception", about 1 run in 6)."""
    uri = table.table_uri
    local = None
    if uri.startswith("file://") or "://" not in uri:
        root = uri.removeprefix("file://")
        local = pa_fs.SubTreeFileSystem(root, pa_fs.LocalFileSystem())
    return table.to_pyarrow_table(filters=filters, columns=columns, filesystem=local)


def table_version(path: Path) -> int | None:
    return open_table(path).version() if table_exists(path) else None


def write_arrow(
    path: Path,
    data: pa.Table,
    partition_by: list[str] | None = None,
    mode: str = "append",
    replace_where: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write an Arrow table as one Delta commit; ``replace_where`` replaces matching rows."""
    path.mkdir(parents=True, exist_ok=True)
    with_commit_retries(
        lambda: write_deltalake(
            str(path),
            data,
            partition_by=partition_by,
            mode="overwrite" if replace_where else mode,
            predicate=replace_where,
            commit_properties=CommitProperties(custom_metadata=metadata) if metadata else None,
        )
    )
    return DeltaTable(str(path)).version()


def merge_new_rows(
    path: Path,
    data: pa.Table,
    key: list[str],
    partition_by: list[str],
    commit: CommitProperties | None = None,
) -> int:
    """Insert the rows of ``data`` whose ``key`` is not in the table yet, as one commit
    (creating the table if needed); returns how many were inserted. Reruns add nothing,
    and concurrent writers neither lose nor duplicate a row."""
    if not table_exists(path):
        # an empty first commit, so that a writer racing this one merges instead of
        # appending the same rows twice
        path.mkdir(parents=True, exist_ok=True)
        empty = data.schema.empty_table()
        with_commit_retries(
            lambda: write_deltalake(str(path), empty, partition_by=partition_by, mode="ignore")
        )
    # the partition columns first, so delta-rs prunes the files it reads
    on = " AND ".join(f"t.{c} = s.{c}" for c in [*partition_by, *key])

    def merge() -> dict:
        merger = DeltaTable(str(path)).merge(
            data, predicate=on, source_alias="s", target_alias="t", commit_properties=commit
        )
        return merger.when_not_matched_insert_all().execute()

    return int(with_commit_retries(merge).get("num_target_rows_inserted", 0))


def spark_read(spark, path: Path, version: int | None = None):
    """A Spark DataFrame over one Delta snapshot (partition columns included)."""
    table = open_table(path, version)
    uris = table.file_uris()
    schema = pa.schema(table.schema().to_arrow())
    if not uris:
        from pyspark.sql.pandas.types import from_arrow_schema

        return spark.createDataFrame([], from_arrow_schema(schema))
    return spark.read.option("basePath", table.table_uri).parquet(*uris)


def _add_action(root: Path, file: Path, partition_values: dict[str, str]) -> AddAction:
    meta = pq.read_metadata(file)
    stat = file.stat()
    return AddAction(
        path=file.relative_to(root).as_posix(),
        size=stat.st_size,
        partition_values=partition_values,
        modification_time=int(stat.st_mtime * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": meta.num_rows}),
    )


PARTITION_KEY = "vista.partition"


def partition_commit(path: Path, partition_col: str, partition_value: str) -> dict | None:
    """The newest commit that replaced this partition (its commit info, with the
    custom metadata the writer gave it and its ``version``), or None."""
    if not table_exists(path):
        return None
    wanted = f"{partition_col}={partition_value}"
    for commit in DeltaTable(str(path)).history():  # newest first
        if commit.get(PARTITION_KEY) == wanted:
            return commit
    return None


def spark_replace_partition(
    df, path: Path, partition_col: str, partition_value: str, metadata: dict[str, str] | None = None
) -> int:
    """Write ``df`` (without ``partition_col``) as partition ``partition_value``, atomically.

    Rerunning with the same data leaves the table's content unchanged.
    """
    path.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex
    staging = path / "_staging" / run_id
    df.write.mode("errorifexists").parquet(str(staging))
    partition_dir = path / f"{partition_col}={partition_value}"
    partition_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for src in sorted(staging.glob("*.parquet")):
        dest = partition_dir / f"{run_id}-{src.name}"
        src.rename(dest)
        files.append(dest)
    shutil.rmtree(staging, ignore_errors=True)
    part_values = {partition_col: partition_value}
    actions = [_add_action(path, f, part_values) for f in files]
    metadata = {**(metadata or {}), PARTITION_KEY: f"{partition_col}={partition_value}"}
    data_schema = (
        pq.read_schema(files[0]) if files else _arrow_schema_of_spark(df.schema)
    ).remove_metadata()
    schema = DeltaSchema.from_arrow(data_schema.append(pa.field(partition_col, pa.string())))
    props = CommitProperties(custom_metadata=metadata)

    def replace() -> None:
        if not table_exists(path):  # a writer that loses this race retries as a replace
            create_table_with_add_actions(
                str(path), schema, actions, mode="append", partition_by=[partition_col],
                commit_properties=props,
            )  # fmt: skip
            return
        DeltaTable(str(path)).create_write_transaction(
            actions,
            mode="overwrite",
            schema=schema,
            partition_by=[partition_col],
            partition_filters=[(partition_col, "=", partition_value)],
            commit_properties=props,
        )

    with_commit_retries(replace)
    return DeltaTable(str(path)).version()


def _arrow_schema_of_spark(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema)
