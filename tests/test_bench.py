"""The benchmark scripts run end to end on tiny data and their checks can fail."""

import importlib.util
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vista.core.config import PROJECT_ROOT

from .conftest import tiny_config


def bench_module(name):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def histories(users, items):
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "item_ids": pa.array(items, pa.list_(pa.int64())),
            "categories": pa.array([[0] * len(i) for i in items], pa.list_(pa.int64())),
            "event_timestamps": pa.array(
                [list(range(len(i))) for i in items], pa.list_(pa.int64())
            ),
        }
    )


def test_history_comparison_finds_a_changed_order_and_a_missing_user(tmp_path):
    compare = bench_module("history_bench").compare
    spark, duck = tmp_path / "spark.parquet", tmp_path / "duck.parquet"
    pq.write_table(histories([1, 2, 3], [[1, 2], [3], [4, 5]]), spark)
    pq.write_table(histories([1, 2, 3], [[1, 2], [3], [4, 5]]), duck)
    assert compare([str(spark)], duck)["identical"]
    pq.write_table(histories([1, 2], [[2, 1], [3]]), duck)
    check = compare([str(spark)], duck)
    assert not check["identical"]
    assert check["different_sequences"] == 1
    assert check["only_in_spark"] == 1


@pytest.mark.slow
def test_history_bench_builds_the_same_histories_with_spark_and_duckdb(tmp_path):
    cfg = tiny_config(tmp_path)
    env = {**os.environ, **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
                            for k in ("state", "lake", "reports")}}  # fmt: skip
    out = tmp_path / "history.json"
    script = PROJECT_ROOT / "bench" / "history_bench.py"
    run = subprocess.run([sys.executable, str(script), "-p", "tiny", "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "spark / duckdb: time" in run.stdout
    result = json.loads(out.read_text())
    assert result["check"]["identical"]
    assert result["check"]["users_compared"] == 120
    rows = result["rows"]
    full, duck = rows["spark full build"], rows["duckdb full build"]
    later = rows["spark incremental (+1 day)"]
    # the day before the cutoff misses the last day's events; the cutoff snapshot has all
    assert full["events"] == duck["events"] < later["events"] == result["generated"]["events"]
    assert full["peak_rss_bytes"] > 0
    assert duck["peak_rss_bytes"] > 0
    assert result["ratios"]["spark_over_duckdb_seconds"] > 0
