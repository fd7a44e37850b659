import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from spark_jobs import lake


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
