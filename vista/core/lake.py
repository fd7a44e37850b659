"""Delta tables on the lake: read and write with delta-rs, from Arrow or from Spark.

JVM Spark cannot load the Delta jars offline, so Spark never talks Delta itself:
- to read, it gets the parquet files of a snapshot from the Delta log
  (``DeltaTable.file_uris()``), never the folder, which also holds removed files;
- to write, executors write plain parquet into a staging folder, the driver moves
  the files into the partition folder and commits them as one Delta transaction
  that replaces exactly that partition. A crash before the commit leaves the table
  at its last version; the stray files are invisible to readers (vacuum removes them).

A table lives in a local folder (a Path) or in object storage (a ``TableLocation``: URI
plus delta-rs storage options, see infra/s3/README.md); every function takes either.
"""

from __future__ import annotations

import contextlib
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
from deltalake import Field as DeltaField
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction, create_table_with_add_actions

from vista.core.config import TableLocation

Location = Path | TableLocation
# Hadoop's connector for S3 is s3a; delta-rs names the same objects s3://
SPARK_SCHEMES = {"s3": "s3a"}


class TableNotFoundError(FileNotFoundError):
    """A Delta table that a step needs has not been written yet."""


class ObjectStoreError(RuntimeError):
    """Spark cannot reach the lake's object store (its Hadoop connector is missing)."""


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


def is_local(location: Location) -> bool:
    """A folder on this machine (not an object-store URI)."""
    return not isinstance(location, TableLocation)


def table_uri(location: Location) -> str:
    """The location as delta-rs takes it: a path or a URI."""
    return str(location)


def storage_options(location: Location) -> dict[str, str] | None:
    """delta-rs storage options of an object-store table; None for a local one."""
    return None if is_local(location) else dict(location.storage_options)


def _make_room(location: Location) -> None:
    # object stores have no folders to create
    if is_local(location):
        Path(location).mkdir(parents=True, exist_ok=True)


def _table_fs(location: Location) -> pa_fs.FileSystem:
    """The table's folder as an Arrow filesystem whose paths are relative to it."""
    if is_local(location):
        return pa_fs.SubTreeFileSystem(str(location), pa_fs.LocalFileSystem())
    handler = DeltaStorageHandler(table_uri(location), storage_options(location))
    return pa_fs.PyFileSystem(handler)


def table_exists(path: Location) -> bool:
    """Whether a Delta table (its log) is at ``path``."""
    return DeltaTable.is_deltatable(table_uri(path), storage_options(path))


def open_table(path: Location, version: int | None = None) -> DeltaTable:
    """The table at ``path`` (at ``version``, else the latest); TableNotFoundError if none."""
    if not table_exists(path):
        raise TableNotFoundError(f"Delta table {path} does not exist (run the step that writes it)")
    return DeltaTable(table_uri(path), version=version, storage_options=storage_options(path))


def delete_table(path: Location) -> None:
    """Remove a table with its log and data files (nothing if it is not there)."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    fs = _table_fs(path)
    # the log first: stopped halfway, what is left is stray files, not a broken table
    top = fs.get_file_info(pa_fs.FileSelector("", allow_not_found=True))
    for entry in sorted(top, key=lambda e: e.base_name != "_delta_log"):
        remove = fs.delete_dir if entry.type == pa_fs.FileType.Directory else fs.delete_file
        remove(entry.path)


def read_arrow(path: Location, version: int | None = None, filters=None, columns=None) -> pa.Table:
    """The table's rows as Arrow, with partition ``filters`` (DNF tuples) and ``columns``."""
    return arrow_of(open_table(path, version), filters=filters, columns=columns)


def arrow_of(table: DeltaTable, filters=None, columns=None) -> pa.Table:
    """The table's rows. Local tables are scanned through Arrow's native filesystem: with
    delta-rs's Python filesystem handler, Arrow's I/O threads call into Python and the
    interpreter sometimes aborts at exit ("terminate called without an active
    exception", about 1 run in 6). Remote tables have only that handler."""
    return table.to_pyarrow_table(filters=filters, columns=columns, filesystem=_scan_fs(table))


def arrow_batches(path: Location, columns: list[str], batch_rows: int = 1 << 20):
    """The table's ``columns`` in record batches of at most ``batch_rows`` rows, for a
    pass over a large table in bounded memory (scanned as ``arrow_of`` scans)."""
    table = open_table(path)
    dataset = table.to_pyarrow_dataset(filesystem=_scan_fs(table))
    yield from dataset.to_batches(columns=columns, batch_size=batch_rows)


def _scan_fs(table: DeltaTable) -> pa_fs.FileSystem | None:
    """Arrow's native filesystem for a local table (see ``arrow_of``); None for remote."""
    uri = table.table_uri
    if uri.startswith("file://") or "://" not in uri:
        return pa_fs.SubTreeFileSystem(uri.removeprefix("file://"), pa_fs.LocalFileSystem())
    return None


def table_version(path: Location) -> int | None:
    """The latest version of the table at ``path``; None when there is no table."""
    return open_table(path).version() if table_exists(path) else None


def write_arrow(
    path: Location,
    data: pa.Table,
    partition_by: list[str] | None = None,
    mode: str = "append",
    replace_where: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write an Arrow table as one Delta commit; ``replace_where`` replaces matching rows."""
    _make_room(path)
    with_commit_retries(
        lambda: write_deltalake(
            table_uri(path),
            data,
            partition_by=partition_by,
            mode="overwrite" if replace_where else mode,
            predicate=replace_where,
            storage_options=storage_options(path),
            commit_properties=CommitProperties(custom_metadata=metadata) if metadata else None,
        )
    )
    return open_table(path).version()


def merge_new_rows(
    path: Location,
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
        _make_room(path)
        empty = data.schema.empty_table()
        with_commit_retries(
            lambda: write_deltalake(table_uri(path), empty, partition_by=partition_by,
                                    mode="ignore", storage_options=storage_options(path))
        )  # fmt: skip
    # the partition columns first, so delta-rs prunes the files it reads
    on = " AND ".join(f"t.{c} = s.{c}" for c in [*partition_by, *key])

    def merge() -> dict:
        merger = open_table(path).merge(
            data, predicate=on, source_alias="s", target_alias="t", commit_properties=commit
        )
        return merger.when_not_matched_insert_all().execute()

    return int(with_commit_retries(merge).get("num_target_rows_inserted", 0))


def spark_uri(uri: str) -> str:
    """The URI under which Spark (Hadoop) reads what delta-rs calls ``uri``."""
    scheme, sep, rest = uri.partition("://")
    return f"{SPARK_SCHEMES.get(scheme, scheme)}{sep}{rest}" if sep else uri


def require_spark_connector(spark, location: Location) -> None:
    """Fail before any work when Spark has no Hadoop filesystem for a remote lake.

    hadoop-aws (and the AWS SDK bundle it was built with) is not in pyspark's jars, so
    by default Spark cannot open s3a:// at all; the message says what to configure."""
    jvm = getattr(spark, "_jvm", None)
    if is_local(location) or jvm is None:  # Spark Connect: the server's classpath decides
        return
    scheme = spark_uri(table_uri(location)).partition("://")[0]
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    try:
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, hadoop_conf)
    except Exception as exc:
        hadoop = jvm.org.apache.hadoop.util.VersionInfo.getVersion()
        raise ObjectStoreError(
            f"Spark has no Hadoop filesystem for {scheme}:// (the lake is {location}). For S3,"
            f" put hadoop-aws-{hadoop}.jar and the AWS SDK bundle it was built with on Spark's"
            " classpath (the image's $SPARK_HOME/jars, or spark.conf 'spark.jars') and set"
            " spark.conf 'spark.hadoop.fs.s3a.endpoint' and 'spark.hadoop.fs.s3a.path.style"
            ".access' for a non-AWS endpoint: see conf/s3.yaml and infra/s3/README.md"
        ) from exc


def spark_read(spark, path: Location, version: int | None = None):
    """A Spark DataFrame over one Delta snapshot (partition columns included)."""
    table = open_table(path, version)
    uris = [spark_uri(uri) for uri in table.file_uris()]
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(pa.schema(table.schema().to_arrow()))
    if not uris:
        return spark.createDataFrame([], schema)
    require_spark_connector(spark, path)
    # the table's schema, not the files': a column added after older partitions were
    # written (``_add_new_columns``) reads as null there instead of vanishing
    return spark.read.schema(schema).option("basePath", spark_uri(table.table_uri)).parquet(*uris)


def _add_action(fs: pa_fs.FileSystem, file: str, partition_values: dict[str, str]) -> AddAction:
    meta = pq.read_metadata(file, filesystem=fs)
    info = fs.get_file_info(file)
    return AddAction(
        path=file,
        size=info.size,
        partition_values=partition_values,
        modification_time=int(info.mtime.timestamp() * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": meta.num_rows}),
    )


PARTITION_KEY = "vista.partition"
# where Spark's executors write a partition's files before the driver commits them
STAGING = "_staging"


def partition_commit(path: Location, partition_col: str, partition_value: str) -> dict | None:
    """The newest commit that replaced this partition (its commit info, with the
    custom metadata the writer gave it and its ``version``), or None."""
    if not table_exists(path):
        return None
    wanted = f"{partition_col}={partition_value}"
    for commit in open_table(path).history():  # newest first
        if commit.get(PARTITION_KEY) == wanted:
            return commit
    return None


def spark_replace_partition(
    df,
    path: Location,
    partition_col: str,
    partition_value: str,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write ``df`` (without ``partition_col``) as partition ``partition_value``, atomically.

    Rerunning with the same data leaves the table's content unchanged.
    """
    require_spark_connector(df.sparkSession, path)
    _make_room(path)
    staging = f"{STAGING}/{uuid.uuid4().hex}"
    df.write.mode("errorifexists").parquet(spark_uri(f"{table_uri(path).rstrip('/')}/{staging}"))
    return commit_staged_partition(
        path,
        staging,
        partition_col,
        partition_value,
        metadata,
        empty_schema=lambda: _arrow_schema_of_spark(df.schema),
    )


def commit_staged_partition(
    path: Location,
    staging: str,
    partition_col: str,
    partition_value: str,
    metadata: dict[str, str] | None,
    empty_schema: Callable[[], pa.Schema],
) -> int:
    """Move the parquet files under ``staging`` (relative to the table) into the partition
    folder and commit them as the partition's only content, in one transaction.

    The driver's half of ``spark_replace_partition``; ``empty_schema`` gives the data's
    schema when there are no files (an empty partition)."""
    fs = _table_fs(path)
    run_id = staging.rstrip("/").rsplit("/", 1)[-1]
    partition_dir = f"{partition_col}={partition_value}"
    fs.create_dir(partition_dir)
    staged = fs.get_file_info(pa_fs.FileSelector(staging, allow_not_found=True))
    files = []
    for src in sorted(f.path for f in staged if f.path.endswith(".parquet")):
        dest = f"{partition_dir}/{run_id}-{src.rsplit('/', 1)[-1]}"
        fs.move(src, dest)
        files.append(dest)
    with contextlib.suppress(FileNotFoundError):  # an object store has no empty folders
        fs.delete_dir(staging)
    part_values = {partition_col: partition_value}
    actions = [_add_action(fs, f, part_values) for f in files]
    metadata = {**(metadata or {}), PARTITION_KEY: f"{partition_col}={partition_value}"}
    data_schema = pq.read_schema(files[0], filesystem=fs) if files else empty_schema()
    data_schema = data_schema.remove_metadata()
    schema = DeltaSchema.from_arrow(data_schema.append(pa.field(partition_col, pa.string())))
    props = CommitProperties(custom_metadata=metadata)

    def replace() -> None:
        if table_exists(path):
            _add_new_columns(path, data_schema)
        if not table_exists(path):  # a writer that loses this race retries as a replace
            create_table_with_add_actions(
                table_uri(path), schema, actions, mode="append", partition_by=[partition_col],
                storage_options=storage_options(path), commit_properties=props,
            )  # fmt: skip
            return
        open_table(path).create_write_transaction(
            actions,
            mode="overwrite",
            schema=schema,
            partition_by=[partition_col],
            partition_filters=[(partition_col, "=", partition_value)],
            commit_properties=props,
        )

    with_commit_retries(replace)
    return open_table(path).version()


def _add_new_columns(path: Location, data_schema: pa.Schema) -> None:
    """Columns the new partition's files have and the table has not yet, added (nullable)
    to the table's schema first: a table written before a column existed keeps working,
    its older partitions reading the column as null."""
    have = {field.name for field in open_table(path).schema().fields}
    new = [DeltaField.from_arrow(f.with_nullable(True)) for f in data_schema if f.name not in have]
    if new:
        open_table(path).alter.add_columns(new)


def _arrow_schema_of_spark(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema)
