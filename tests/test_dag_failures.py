"""The chain stops where bad data is found: a failed critical suite or an unreadable
source file fails the ingest DAG with its cause, and nothing downstream runs or commits.

(Beside tests/test_dag.py, whose backfilled lake these do not need, so that `make test`'s
two processes can run them apart.)"""

import os
import subprocess
import sys

import pyarrow as pa
import pytest

from vista import pipeline, state
from vista.core import lake, names

from .conftest import tiny_config
from .test_dag import _dag_test


@pytest.mark.slow
def test_failing_critical_suite_stops_the_dag_and_commits_nothing_downstream(tmp_path):
    cfg = tiny_config(tmp_path)
    pipeline.ingest_events(cfg)
    events = cfg.paths.table(names.EVENTS)
    bad = lake.read_arrow(events).slice(0, 2)
    bad = bad.set_column(0, "user_id", pa.array([-7, -7], pa.int64()))
    lake.write_arrow(events, bad, ["event_date"], mode="append")
    events_version = lake.table_version(events)
    result = _dag_test(cfg, pipeline.default_as_of(cfg))
    assert result.returncode != 0
    assert "DAG vista_ingest failed" in result.stderr
    assert "running DAG vista_histories" not in result.stderr
    assert "critical suite 'events' failed" in result.stderr
    assert "column 'user_id'" in result.stderr
    assert lake.table_version(events) == events_version
    assert not lake.table_exists(cfg.paths.table(names.HISTORIES))
    assert state.summarizer_versions(cfg) == []


@pytest.mark.slow
def test_unreadable_source_file_fails_the_ingest_dag_with_its_name(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "good.jsonl").write_text('{"uid": 1, "iid": 2, "ts": 1767225600}\n')
    (landing / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    cfg = tiny_config(tmp_path)
    env = {
        **os.environ,
        **{f"VISTA__PATHS__{k.upper()}": str(getattr(cfg.paths, k))
           for k in ("state", "lake", "reports")},
        "VISTA__SOURCE__EVENTS_PATH": str(landing),
        "VISTA__SOURCE__FORMAT": "auto",
        "VISTA__SOURCE__COLUMNS": "{user_id: uid, item_id: iid, timestamp: ts}",
        "VISTA__SOURCE__CUTOFF_DATE": "2026-01-03",
    }  # fmt: skip
    vista = os.path.join(os.path.dirname(sys.executable), "vista")
    result = subprocess.run(
        [vista, "dag-test", "--profile", "tiny", "--as-of", "2026-01-03"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "DAG vista_ingest failed" in result.stderr
    assert f"cannot read {landing / 'broken.parquet'} as parquet" in result.stderr
    assert "running DAG vista_histories" not in result.stderr
    assert not lake.table_exists(cfg.paths.table(names.EVENTS))
    recorded = lake.read_arrow(cfg.paths.table(names.QUARANTINE)).to_pandas()
    assert recorded[["source_file", "reason"]].values.tolist() == [
        [str(landing / "broken.parquet"), "unreadable_file"]
    ]
