"""`vista quarantine`: nothing deleted, counted and exported, a corrected file replayed
through the same validation exactly once; the events suite checks the rows a run added,
names a bad stored row and `evict` repairs the table."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from sources.synthetic import EVENTS_SCHEMA
from tests.bad_files import COLUMNS, GOOD, HEADER, START, csv_bytes
from tests.conftest import tiny_config
from validation.checkpoints import DataQualityError
from vista import pipeline
from vista import quarantine as q
from vista.cli import app
from vista.core import lake
from vista.core.snapshot import Snapshot

D1, D2 = Snapshot.of("2026-01-03"), Snapshot.of("2026-01-04")


def config(tmp_path, events_path, **source):
    base = {"events_path": str(events_path), "columns": COLUMNS, "cutoff_date": "2026-01-03",
            "format": "auto"}  # fmt: skip
    return tiny_config(tmp_path, source={**base, **source})


def events(cfg) -> pd.DataFrame:
    return lake.read_arrow(cfg.paths.table("events")).to_pandas()


def test_list_count_export_and_replay_exactly_once(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_bytes(
        csv_bytes(GOOD, f"x7,11,{START},view,5", f"2,12,{START},view,", b"3\xff,13,1,view,5")
    )
    cfg = config(tmp_path, landing)
    pipeline.ingest_source(cfg, D1)
    rows = q.rows(cfg)
    assert rows.reason.tolist() == ["unparsable", "missing_label", "invalid_utf8"]
    assert rows.row_number.tolist() == [3, 4, 5]
    assert rows.raw.tolist()[2] == "3\\xff,13,1,view,5"  # the bad byte, escaped
    counted = q.counts(rows).set_index("reason")
    assert counted.loc["unparsable"].tolist() == [1, 1, 1]
    out = q.export_csv(q.rows(cfg, reason="missing_label"), tmp_path / "out" / "q.csv")
    exported = pd.read_csv(out)
    assert exported.raw.tolist() == [f"2,12,{START},view,"]
    # correct the rows and replay them: through the same validation, once
    fixed = tmp_path / "fixed.csv"
    fixed.write_bytes(csv_bytes(f"7,11,{START},view,5", f"2,12,{START},view,4", "3,13,x,view,5"))
    first = q.replay(cfg, fixed, D2)
    assert (first["events"], first["quarantined_by_reason"]) == (2, {"unparsable": 1})
    before = lake.table_version(cfg.paths.table("events")), len(q.rows(cfg))
    second = q.replay(cfg, fixed, D2)
    assert not second["generated"]
    assert second["files_already_ingested"] == 1
    assert (lake.table_version(cfg.paths.table("events")), len(q.rows(cfg))) == before
    # nothing was deleted: the first delivery's rows are all there beside the replay's
    assert len(q.rows(cfg, source_file=str(landing / "a.csv"))) == 3
    assert len(q.rows(cfg)) == 4
    assert sorted(events(cfg).user_id) == [1, 2, 7]


def test_cli_counts_export_and_replay(tmp_path, monkeypatch):
    path = tmp_path / "events.csv"
    path.write_bytes(csv_bytes(GOOD, f"x,11,{START},view,5"))
    env = {"STATE": "state", "LAKE": "lake", "REPORTS": "reports"}
    for key, folder in env.items():
        monkeypatch.setenv(f"VISTA__PATHS__{key}", str(tmp_path / folder))
    monkeypatch.setenv("VISTA__SOURCE__EVENTS_PATH", str(path))
    monkeypatch.setenv("VISTA__SOURCE__FORMAT", "auto")
    monkeypatch.setenv("VISTA__SOURCE__CUTOFF_DATE", "2026-01-03")
    for name, column in COLUMNS.items():
        monkeypatch.setenv(f"VISTA__SOURCE__COLUMNS__{name.upper()}", column)
    runner = CliRunner()
    assert runner.invoke(app, ["generate", "--profile", "tiny"]).exit_code == 0
    counts = runner.invoke(app, ["quarantine", "counts", "--profile", "tiny"])
    assert counts.exit_code == 0, counts.output
    assert '"reason": "unparsable"' in counts.output
    out = tmp_path / "q.csv"
    exported = runner.invoke(app, ["quarantine", "export", str(out), "--profile", "tiny"])
    assert exported.exit_code == 0
    assert len(pd.read_csv(out)) == 1
    fixed = tmp_path / "fixed.csv"
    fixed.write_bytes(csv_bytes(f"5,11,{START},view,5"))
    args = ["quarantine", "replay", str(fixed), "--profile", "tiny", "--as-of", "2026-01-03"]
    assert '"events": 1' in runner.invoke(app, args).output
    assert '"generated": false' in runner.invoke(app, args).output
    wrong = runner.invoke(app, ["quarantine", "fix", "--profile", "tiny"])
    assert wrong.exit_code == 2
    assert "unknown action 'fix'" in wrong.output


def _store_bad_row(cfg, as_of: dt.datetime) -> None:
    """A negative id in events, as an older ingest (ids through float64) stored it."""
    stamp = pd.Timestamp(START, unit="s", tz="UTC")
    row = pa.Table.from_pylist(
        [{"user_id": -(2**63), "item_id": 10, "category": -1, "event_type": "view",
          "event_timestamp": stamp, "event_date": "2026-01-01"}], schema=EVENTS_SCHEMA)  # fmt: skip
    lake.write_arrow(cfg.paths.table("events"), row, ["event_date"],
                     metadata={"vista.ingest_date": as_of.date().isoformat(),
                               "vista.ingested_files": '["old.csv"]'})  # fmt: skip


def test_suite_checks_the_rows_a_run_added_names_a_bad_one_and_evict_repairs(tmp_path):
    landing = tmp_path / "{date}"
    cfg = config(tmp_path, landing)
    for as_of, user in ((D1, 1), (D2, 2)):
        folder = tmp_path / as_of.date().isoformat()
        folder.mkdir()
        (folder / "e.csv").write_bytes(csv_bytes(f"{user},10,{START},view,5"))
    pipeline.ingest_source(cfg, D1)
    _store_bad_row(cfg, D1)
    # the date whose rows hold it fails, naming the row, its commit and the repair
    with pytest.raises(DataQualityError) as failed:
        pipeline.validate_events(cfg, D1)
    message = str(failed.value)
    assert "user_id=-9223372036854775808" in message
    assert "old.csv" in message
    assert "vista quarantine evict" in message
    # a later run checks only what it added: the old row does not stop it
    pipeline.ingest_source(cfg, D2)
    later = pipeline.validate_events(cfg, D2)
    assert later["success"]
    assert later["rows_checked"] == 1
    # evict: the row moves to quarantine (nothing lost), once
    assert q.evict(cfg, D1)["evicted"] == 1
    assert q.evict(cfg, D1)["evicted"] == 0
    moved = q.rows(cfg, reason="rejected_by_suite")
    assert len(moved) == 1
    assert "-9223372036854775808" in moved.raw[0]
    assert pipeline.validate_events(cfg, D1)["success"]
    assert sorted(events(cfg).user_id) == [1, 2]


def test_an_event_within_the_clock_skew_passes_the_suite(tmp_path):
    soon = int(dt.datetime.now(dt.UTC).timestamp()) + 1800  # the default skew is 3600 s
    path = tmp_path / "events.csv"
    path.write_bytes(csv_bytes(GOOD, f"2,10,{soon},view,5"))
    cfg = config(tmp_path, path)
    assert pipeline.ingest_source(cfg, D1)["events"] == 2
    assert pipeline.validate_events(cfg, D1)["success"]


def test_header_of_export_is_the_quarantine_schema(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "\n" + f"x,1,{START},view,5\n")
    cfg = config(tmp_path, path)
    pipeline.ingest_source(cfg, D1)
    frame = pd.read_csv(q.export_csv(q.rows(cfg), tmp_path / "q.csv"))
    from sources.ingest import QUARANTINE_SCHEMA

    assert list(frame.columns) == QUARANTINE_SCHEMA.names


def test_a_quarantine_table_of_the_older_schema_gains_the_delivery_columns(tmp_path):
    """Tables written before file_key and ingest_run keep their rows; new rows add them."""
    from sources.ingest import QUARANTINE_SCHEMA

    old_schema = pa.schema([f for f in QUARANTINE_SCHEMA if f.name not in ("file_key",
                                                                          "ingest_run")])  # fmt: skip
    old = pa.Table.from_pylist(
        [{"source_file": "old.csv", "row_number": 2, "reason": "unparsable", "detail": "d",
          "raw": "r", "ingested_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
          "ingest_date": "2025-01-01"}], schema=old_schema)  # fmt: skip
    path = tmp_path / "events.csv"
    path.write_bytes(csv_bytes(GOOD, f"x,11,{START},view,5"))
    cfg = config(tmp_path, path)
    lake.write_arrow(cfg.paths.table("quarantine"), old, ["ingest_date"])
    pipeline.ingest_source(cfg, D1)
    rows = q.rows(cfg)
    assert rows.source_file.tolist() == ["old.csv", str(path)]
    assert rows.file_key.isna().tolist() == [True, False]
