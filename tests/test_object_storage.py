"""The lake in object storage: the same Delta operations and the same ingest on s3://
tables, against a real S3-compatible server (moto's) in its own process on loopback."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake.exceptions import CommitFailedError

from devservers.s3_server import CREDENTIALS, REGION, local_s3_server, storage_options
from vista import pipeline
from vista.core import lake, names
from vista.core.config import PROJECT_ROOT, ConfigError, TableLocation, load_config
from vista.core.snapshot import Snapshot

from .conftest import tiny_config

BUCKET = "vista-lake"


@pytest.fixture(scope="module")
def s3():
    """The server's endpoint URL; each test writes under a prefix of its own."""
    with local_s3_server(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def s3_root(s3) -> TableLocation:
    return TableLocation(f"s3://{BUCKET}/{uuid.uuid4().hex}", storage_options(s3))


def object_keys(endpoint: str, location: TableLocation) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)
    prefix = location.uri.removeprefix(f"s3://{BUCKET}/") + "/"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"].removeprefix(prefix) for page in pages for o in page.get("Contents", []))


def test_delta_operations_on_s3(s3, s3_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a URI mistaken for a folder would show up here
    path = s3_root / "t"
    lake.write_arrow(
        path, pa.table({"k": [1, 2, 3], "d": ["a", "a", "b"]}), ["d"], mode="overwrite"
    )
    lake.write_arrow(path, pa.table({"k": [9], "d": ["a"]}), ["d"], replace_where="d = 'a'")
    assert sorted(lake.read_arrow(path).column("k").to_pylist()) == [3, 9]
    assert lake.read_arrow(path, version=0).num_rows == 3  # time travel
    assert lake.read_arrow(path, filters=[("d", "=", "b")]).column("k").to_pylist() == [3]

    merged = s3_root / "m"
    rows = pa.table({"k": [1, 2, 3], "d": ["x", "y", "x"]})
    assert lake.merge_new_rows(merged, rows, ["k"], ["d"]) == 3
    assert lake.merge_new_rows(merged, rows, ["k"], ["d"]) == 0  # a rerun adds nothing
    assert sorted(lake.read_arrow(merged).column("k").to_pylist()) == [1, 2, 3]

    keys = object_keys(s3, s3_root)
    assert "t/_delta_log/00000000000000000001.json" in keys
    assert any(k.startswith("m/d=x/") and k.endswith(".parquet") for k in keys)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(lake.TableNotFoundError, match=f"{s3_root.uri}/nothing_here"):
        lake.read_arrow(s3_root / "nothing_here")


def stage(path: TableLocation, run: str, parts: list[pa.Table]) -> str:
    """Parquet files where Spark's executors would leave them before the commit."""
    fs = lake._table_fs(path)
    for i, part in enumerate(parts):
        with fs.open_output_stream(f"{lake.STAGING}/{run}/part-{i:05d}.parquet") as out:
            pq.write_table(part, out)
    return f"{lake.STAGING}/{run}"


def test_staged_partition_commit_on_s3(s3, s3_root):
    """The driver's half of a Spark partition write: files moved out of staging, the
    partition replaced in one commit carrying its metadata, reruns content-neutral."""
    path = s3_root / "snap"
    day1 = [pa.table({"id": [1, 2]}), pa.table({"id": [3]})]

    def commit(run: str, parts: list[pa.Table], day: str, inputs: str) -> int:
        staged = stage(path, run, parts)
        return lake.commit_staged_partition(path, staged, "as_of_date", day,
                                            {"vista.inputs": inputs}, lambda: parts[0].schema)  # fmt: skip

    v0 = commit("r0", day1, "2026-01-01", "first")
    commit("r1", [pa.table({"id": [7]})], "2026-01-02", "other day")
    v2 = commit("r2", day1, "2026-01-01", "rerun")
    rows = lake.read_arrow(path).to_pandas().sort_values(["as_of_date", "id"])
    assert rows.values.tolist() == [[1, "2026-01-01"], [2, "2026-01-01"], [3, "2026-01-01"],
                                    [7, "2026-01-02"]]  # fmt: skip
    assert v2 == v0 + 2
    done = lake.partition_commit(path, "as_of_date", "2026-01-01")
    assert (done["version"], done["vista.inputs"]) == (v2, "rerun")
    assert lake.partition_commit(path, "as_of_date", "2026-01-02")["vista.inputs"] == "other day"
    keys = object_keys(s3, path)
    assert not [k for k in keys if k.startswith(lake.STAGING)]
    day = "as_of_date=2026-01-01/"
    live = {uri.removeprefix(f"{path.uri}/") for uri in lake.open_table(path).file_uris()}
    live = {f for f in live if f.startswith(day)}
    assert live == {f"{day}r2-part-00000.parquet", f"{day}r2-part-00001.parquet"}
    assert {k for k in keys if k.startswith(day)} > live  # r0's files stay until a vacuum


def test_a_commit_from_a_stale_snapshot_is_refused_not_written_over(s3_root):
    """S3 commits are put-if-absent (delta-rs's default; the store must honour
    If-None-Match): the loser of a race is refused instead of replacing the winner."""
    path = s3_root / "t"
    lake.write_arrow(path, pa.table({"k": [0]}))
    first, second = lake.open_table(path), lake.open_table(path)

    def merge(table, key: int) -> None:
        rows = pa.table({"k": [key]})
        table.merge(rows, "s.k = t.k", source_alias="s", target_alias="t") \
            .when_not_matched_insert_all().execute()  # fmt: skip

    merge(first, 1)
    with pytest.raises(CommitFailedError):
        merge(second, 2)
    assert sorted(lake.read_arrow(path).column("k").to_pylist()) == [0, 1]


RACING_WRITER = """
import sys
import pyarrow as pa
from vista.core import lake
from vista.core.config import TableLocation
from devservers.s3_server import storage_options

path = TableLocation(sys.argv[1], storage_options(sys.argv[2]))
worker = int(sys.argv[3])
for batch in range(4):
    # half of each batch is shared by every writer, half is the writer's own
    keys = [batch * 100 + i for i in range(10)] + [10**6 * (worker + 1) + batch * 100 + i
                                                  for i in range(10)]
    lake.merge_new_rows(path, pa.table({"k": keys, "d": [str(k % 2) for k in keys]}), ["k"], ["d"])
"""


def test_racing_writers_on_s3_land_every_row_once(s3, s3_root):
    path = s3_root / "race"
    writers = [
        subprocess.Popen([sys.executable, "-c", RACING_WRITER, path.uri, s3, str(w)],
                         cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
        for w in range(3)
    ]  # fmt: skip
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 3, "\n".join(errors)[-3000:]
    keys = lake.read_arrow(path).column("k").to_pylist()
    assert len(keys) == len(set(keys)) == 4 * 10 + 3 * 4 * 10


START = 1767225600  # 2026-01-01
CSV = (
    "uid,iid,ts,kind,stars\n"
    f"1,10,{START},view,5\n"
    f"1,10,{START},view,5\n"  # a duplicate
    f"1,11,{START + 86_400},click,2\n"
    f"2,12,{START + 2 * 86_400},view,4\n"
    f"x,13,{START},view,3\n"  # quarantined: unparsable user id
    f"3,14,{START + 3 * 86_400},purchase,1\n"
)


def source(events_path) -> dict:
    return {"events_path": str(events_path), "format": "auto", "cutoff_date": "2026-01-03",
            "columns": {"user_id": "uid", "item_id": "iid", "timestamp": "ts",
                        "event_type": "kind", "rating": "stars"}}  # fmt: skip


def frame(cfg, name: str) -> pd.DataFrame:
    # when and in which run a row came in differ between two ingests of the same file
    rows = lake.read_arrow(cfg.paths.table(name)).to_pandas().drop(
        columns=["ingested_at", "ingest_run"], errors="ignore")  # fmt: skip
    return rows.sort_values(list(rows.columns)).reset_index(drop=True)


def test_ingest_to_s3_equals_ingest_to_local_disk(s3, s3_root, tmp_path):
    events_path = tmp_path / "events.csv"
    events_path.write_text(CSV)
    local = tiny_config(tmp_path / "local", source=source(events_path))
    paths = {"state": str(tmp_path / "state"), "reports": str(tmp_path / "reports"),
             "lake": s3_root.uri, "storage_options": storage_options(s3)}  # fmt: skip
    remote = tiny_config(tmp_path, paths=paths, source=source(events_path))
    as_of = Snapshot.of("2026-01-03")

    on_disk = pipeline.ingest_source(local, as_of)
    on_s3 = pipeline.ingest_source(remote, as_of)
    drop = {"seconds", "ingest_run"}
    assert {k: v for k, v in on_s3.items() if k not in drop} == {
        k: v for k, v in on_disk.items() if k not in drop
    }
    assert (on_s3["events"], on_s3["quarantined"], on_s3["impressions"]) == (4, 1, 2)
    for name in (names.EVENTS, names.IMPRESSIONS, names.QUARANTINE):
        pd.testing.assert_frame_equal(frame(remote, name), frame(local, name))
        assert f"{name}/_delta_log/00000000000000000000.json" in object_keys(s3, s3_root)
    assert not (tmp_path / "state" / "lake").exists()

    versions = {t: lake.table_version(remote.paths.table(t)) for t in ("events", "quarantine")}
    assert not pipeline.ingest_source(remote, as_of)["generated"]  # the file is already in
    assert {t: lake.table_version(remote.paths.table(t)) for t in versions} == versions
    # force drops the tables on S3 and ingests afresh: a new table, at version 0
    again = pipeline.ingest_source(remote, as_of, force=True)
    assert again["events"] == 4
    assert lake.table_version(remote.paths.table("quarantine")) == 0
    pd.testing.assert_frame_equal(frame(remote, "events"), frame(local, "events"))


@pytest.mark.slow
def test_spark_without_the_s3a_connector_names_what_to_set(spark, s3_root):
    path = s3_root / "t"
    lake.write_arrow(path, pa.table({"k": [1]}))
    with pytest.raises(lake.ObjectStoreError, match=r"no Hadoop filesystem for s3a://") as err:
        lake.spark_read(spark, path)
    hadoop = spark.sparkContext._jvm.org.apache.hadoop.util.VersionInfo.getVersion()
    for words in (f"hadoop-aws-{hadoop}.jar", "spark.jars", "spark.hadoop.fs.s3a.endpoint",
                  "infra/s3/README.md"):  # fmt: skip
        assert words in str(err.value)
    with pytest.raises(lake.ObjectStoreError):
        lake.spark_replace_partition(spark.range(3), path, "as_of_date", "2026-01-01")
    assert lake.table_version(path) == 0


def test_s3_profile_and_storage_options_from_the_environment():
    cfg = load_config("s3", environ={"VISTA__PATHS__STORAGE_OPTIONS__AWS_SECRET_ACCESS_KEY": "sh",
                                     "VISTA__PATHS__STORAGE_OPTIONS__AWS_ALLOW_HTTP": "true"})  # fmt: skip
    events = cfg.paths.table("events")
    assert events.uri == "s3://vista-lake/lake/events"
    assert events.storage_options["aws_secret_access_key"] == "sh"
    assert events.storage_options["aws_allow_http"] == "true"  # text, as object_store wants
    assert cfg.to_dict()["paths"]["storage_options"]["aws_secret_access_key"] == "***"
    assert cfg.spark.conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    one_version = cfg.paths.table("user_summaries") / "v1"
    assert one_version.uri == "s3://vista-lake/lake/user_summaries/v1"
    with pytest.raises(ConfigError, match=r"paths.lake .*schemes: s3"):
        load_config("s3", overrides={"paths": {"lake": "http://vista-lake/lake"}}, environ={})
    local = load_config("local", environ={})
    assert local.paths.table("events") == local.paths.lake / "events"  # still a Path
