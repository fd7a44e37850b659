import subprocess
import sys

import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from vista.core import lake
from vista.core.config import PROJECT_ROOT


def test_arrow_write_read_and_partition_replace(tmp_path):
    path = tmp_path / "t"
    data = pa.table({"k": [1, 2, 3], "d": ["a", "a", "b"]})
    lake.write_arrow(path, data, ["d"], mode="overwrite")
    lake.write_arrow(path, pa.table({"k": [9], "d": ["a"]}), ["d"], replace_where="d = 'a'")
    got = lake.read_arrow(path).to_pandas().sort_values("k")
    assert got.k.tolist() == [3, 9]
    assert lake.read_arrow(path, version=0).num_rows == 3  # time travel


def test_missing_table_error_names_the_path(tmp_path):
    with pytest.raises(lake.TableNotFoundError, match="nothing_here"):
        lake.read_arrow(tmp_path / "nothing_here")


def test_spark_partition_replace_is_idempotent_and_isolated(spark, tmp_path):
    path = tmp_path / "snap"
    df = spark.range(50).withColumn("v", F.col("id") * 2)
    v0 = lake.spark_replace_partition(df, path, "as_of_date", "2026-01-01")
    lake.spark_replace_partition(df.where("id < 5"), path, "as_of_date", "2026-01-02")
    first = lake.read_arrow(path).to_pandas().sort_values(["as_of_date", "id"])
    v2 = lake.spark_replace_partition(df, path, "as_of_date", "2026-01-01")  # rerun
    again = lake.read_arrow(path).to_pandas().sort_values(["as_of_date", "id"])
    assert v2 == v0 + 2
    assert len(first) == 55
    assert first.reset_index(drop=True).equals(again.reset_index(drop=True))
    back = lake.spark_read(spark, path).where("as_of_date = '2026-01-02'")
    assert sorted(r.id for r in back.collect()) == list(range(5))


def test_a_partition_with_a_new_column_evolves_the_table(spark, tmp_path):
    """A table written before a column existed keeps working: the column is added to its
    schema, and the older partitions read it as null (in Spark and in Arrow)."""
    path = tmp_path / "snap"
    old = spark.range(3).withColumn("v", F.col("id") * 2)
    lake.spark_replace_partition(old, path, "as_of_date", "2026-01-01")
    new = old.withColumn("extra", F.array(F.col("id")))
    lake.spark_replace_partition(new, path, "as_of_date", "2026-01-02")
    rows = {(r.as_of_date, r.id): r.extra for r in lake.spark_read(spark, path).collect()}
    assert rows[("2026-01-01", 1)] is None
    assert rows[("2026-01-02", 1)] == [1]
    arrow = lake.read_arrow(path).to_pandas()
    assert arrow[arrow.as_of_date == "2026-01-01"].extra.isna().all()


def test_failed_spark_write_leaves_table_at_last_version(spark, tmp_path):
    path = tmp_path / "snap"
    good = spark.range(10)
    lake.spark_replace_partition(good, path, "as_of_date", "2026-01-01")
    before = lake.table_version(path)

    @F.udf("long")
    def explode(x):
        raise ValueError("boom in the executor")

    with pytest.raises(Exception, match="boom in the executor"):
        lake.spark_replace_partition(
            spark.range(10).select(explode("id").alias("id")), path, "as_of_date", "2026-01-01"
        )
    assert lake.table_version(path) == before
    assert lake.read_arrow(path).num_rows == 10


CONCURRENT_WRITER = """
import sys
import pyarrow as pa
from pathlib import Path
from vista.core import lake

path, worker = Path(sys.argv[1]), int(sys.argv[2])
for batch in range(10):
    # half of each batch is shared by every writer, half is the writer's own
    keys = [batch * 100 + i for i in range(20)] + [10**6 * (worker + 1) + batch * 100 + i
                                                  for i in range(20)]
    day = [f"2026-01-0{1 + k % 3}" for k in keys]
    lake.merge_new_rows(path, pa.table({"k": keys, "d": day}), ["k"], ["d"])
"""


def test_concurrent_merges_neither_lose_nor_duplicate_rows(tmp_path):
    """Writers racing to create and to merge into one table: delta-rs refuses the stale
    commits, and the retries land every row exactly once."""
    path = tmp_path / "t"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, str(path), str(w)],
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 4, "\n".join(errors)[-3000:]
    keys = lake.read_arrow(path).column("k").to_pylist()
    assert len(keys) == len(set(keys)) == 10 * 20 + 4 * 10 * 20
