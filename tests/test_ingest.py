"""Ingest through a column mapping: each class of bad row lands in quarantine with its
reason, good rows go on, duplicates are dropped, and reruns commit nothing new."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sources.ingest import REASONS, SourceError
from tests.conftest import tiny_config
from vista import pipeline, state
from vista.core import lake
from vista.core.snapshot import Snapshot

COLUMNS = {"user_id": "uid", "item_id": "iid", "timestamp": "ts", "event_type": "kind",
           "rating": "stars"}  # fmt: skip
DAY = 86_400
START = 1767225600  # 2026-01-01
AS_OF = Snapshot.of("2026-01-03")
GOOD = {"uid": 1, "iid": 10, "ts": START, "kind": "view", "stars": 5}


def config(tmp_path, events_path, **source):
    base = {"events_path": str(events_path), "columns": COLUMNS, "cutoff_date": "2026-01-03",
            "format": "auto"}  # fmt: skip
    return tiny_config(tmp_path, source={**base, **source})


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def table(cfg, name) -> pd.DataFrame:
    return lake.read_arrow(cfg.paths.table(name)).to_pandas()


# one row per class of bad input: (the bad field values, expected reason, words in detail)
BAD_ROWS = {
    "missing user id": ({"uid": None}, "missing_id", "user_id is empty"),
    "missing item id": ({"iid": ""}, "missing_id", "item_id is empty"),
    "negative id": ({"uid": -4}, "negative_id", "user_id -4 is negative"),
    "unparsable id": ({"uid": "u-17"}, "unparsable", "user_id 'u-17' does not parse"),
    "unparsable timestamp": ({"ts": "yesterday"}, "unparsable", "timestamp 'yesterday'"),
    "fractional id": ({"iid": 10.5}, "id_not_integer", "item_id 10.5 is not written as"),
    "boolean id": ({"uid": True}, "wrong_type", "user_id true has the wrong type"),
    "list as id": ({"iid": [1, 2]}, "wrong_type", "item_id [1, 2] has the wrong type"),
    "missing timestamp": ({"ts": None}, "missing_timestamp", "timestamp is empty"),
    "negative timestamp": ({"ts": -60}, "negative_timestamp", "before 1970-01-01"),
    "future timestamp": ({"ts": 4102444800}, "future_timestamp", "later than the ingest"),
    "unknown event type": ({"kind": "teleport"}, "unknown_event_type", "'teleport' is not"),
    "empty event type": ({"kind": ""}, "unknown_event_type", "event_type '' is not"),
    "unparsable label": ({"stars": "five"}, "unparsable", "rating 'five' does not parse"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_each_bad_row_class_is_quarantined_with_its_reason(tmp_path, case):
    change, reason, words = BAD_ROWS[case]
    path = write_jsonl(tmp_path / "events.jsonl", [GOOD, {**GOOD, "iid": 11, **change}])
    cfg = config(tmp_path, path)
    result = pipeline.ingest_source(cfg, AS_OF)
    quarantine = table(cfg, "quarantine")
    assert quarantine.reason.tolist() == [reason]
    assert words in quarantine.detail[0]
    assert quarantine.source_file[0] == str(path)
    assert quarantine.row_number[0] == 2  # the second line of the file
    assert json.loads(quarantine.raw[0])["iid"] == change.get("iid", 11)
    assert quarantine.ingest_date[0] == "2026-01-03"
    # the good row went on
    assert table(cfg, "events")[["user_id", "item_id"]].values.tolist() == [[1, 10]]
    assert result["quarantined_by_reason"] == {reason: 1}
    assert reason in REASONS


def test_malformed_csv_lines_are_quarantined_and_the_rest_ingested(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "uid,iid,ts,kind,stars\n"
        f"1,10,{START},view,5\n"
        f"1,11,{START}\n"  # too few fields
        f"1,12,{START},view,4,extra\n"  # too many
        f"2,13,{START + DAY},click,2\n"
    )
    cfg = config(tmp_path, path)
    pipeline.ingest_source(cfg, AS_OF)
    quarantine = table(cfg, "quarantine").sort_values("row_number")
    assert quarantine.reason.tolist() == ["malformed_row", "malformed_row"]
    assert quarantine.row_number.tolist() == [3, 4]
    assert quarantine.raw.tolist() == [f"1,11,{START}", f"1,12,{START},view,4,extra"]
    assert sorted(table(cfg, "events").item_id) == [10, 13]


def test_duplicates_are_dropped_within_and_across_files_and_runs(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [GOOD, GOOD, {**GOOD, "kind": "click"}])
    write_jsonl(folder / "b.jsonl", [GOOD, {**GOOD, "iid": 12}])
    cfg = config(tmp_path, folder)
    first = pipeline.ingest_source(cfg, AS_OF)
    assert first["events"] == 3  # (1, 10, view), (1, 10, click), (1, 12, view)
    assert first["duplicates_in_files"] == 2
    # a later file repeats a stored event: only the new one is inserted
    write_jsonl(folder / "c.jsonl", [GOOD, {**GOOD, "iid": 13}])
    second = pipeline.ingest_source(cfg, AS_OF)
    assert second["files_already_ingested"] == 2
    assert (second["events"], second["duplicates_already_stored"]) == (1, 1)
    events = table(cfg, "events")
    assert len(events) == len(events.drop_duplicates(["user_id", "item_id", "event_timestamp",
                                                      "event_type"]))  # fmt: skip
    assert sorted(events.item_id) == [10, 10, 12, 13]


def test_a_redelivered_event_whose_value_changed_is_quarantined_not_dropped(tmp_path):
    """A later file repeats stored events: the exact repeat is a duplicate; one whose
    category changed (a history event) or whose label changed (an impression: 5 stars
    then 1) is quarantined as conflicts_with_stored, naming both values; the stored
    rows stay as they were."""
    folder = tmp_path / "landing"
    folder.mkdir()
    seen = {**GOOD, "cat": 3}
    shown = {**GOOD, "iid": 11, "ts": START + 3 * DAY, "cat": 4}  # after the cutoff
    again = {**GOOD, "iid": 13, "cat": 3}
    write_jsonl(folder / "a.jsonl", [seen, shown, again])
    cfg = config(tmp_path, folder, columns={**COLUMNS, "category": "cat"})
    assert pipeline.ingest_source(cfg, AS_OF)["events"] == 3
    before = (table(cfg, "events"), table(cfg, "impressions"))
    write_jsonl(folder / "b.jsonl", [again, {**seen, "cat": 7}, {**shown, "stars": 1},
                                     {**GOOD, "iid": 12, "cat": 5}])  # fmt: skip
    second = pipeline.ingest_source(cfg, AS_OF)
    assert second["events"] == 1
    assert second["duplicates_already_stored"] == 1
    assert second["quarantined_by_reason"] == {"conflicts_with_stored": 2}
    assert second["rows_read"] == 4 == second["events"] + second["quarantined"] + \
        second["duplicates_already_stored"] + second["duplicates_in_files"]  # fmt: skip
    quarantined = table(cfg, "quarantine").sort_values("row_number")
    assert quarantined.row_number.tolist() == [2, 3]
    assert "which is kept (category 3); this row has category 7" in quarantined.detail.iloc[0]
    assert "which is kept (label 1); this row has label 0" in quarantined.detail.iloc[1]
    events = table(cfg, "events")
    assert events.set_index("item_id").category.to_dict() == {10: 3, 11: 4, 12: 5, 13: 3}
    pd.testing.assert_frame_equal(table(cfg, "impressions"), before[1])


def test_rerun_commits_nothing_and_a_redelivered_file_is_skipped(tmp_path):
    path = write_jsonl(tmp_path / "events.jsonl", [GOOD, {**GOOD, "uid": "x"}])
    cfg = config(tmp_path, path)
    pipeline.ingest_source(cfg, AS_OF)
    versions = {t: lake.table_version(cfg.paths.table(t)) for t in ("events", "quarantine")}
    again = pipeline.ingest_source(cfg, AS_OF)
    assert again["files_already_ingested"] == 1
    assert not again["generated"]
    assert {t: lake.table_version(cfg.paths.table(t)) for t in versions} == versions
    assert len(table(cfg, "events")) == 1
    assert len(table(cfg, "quarantine")) == 1


def test_unreadable_file_fails_with_its_name_and_only_its_record_is_committed(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [GOOD])
    (folder / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    cfg = config(tmp_path, folder)
    with pytest.raises(SourceError, match=r"cannot read .*b\.parquet as parquet: .*"
                       r"source\.unreadable_files=skip"):  # fmt: skip
        pipeline.ingest_source(cfg, AS_OF)
    for name in ("events", "impressions"):
        assert not lake.table_exists(cfg.paths.table(name))
    # recorded once for the Data Docs, however often the run is retried
    with pytest.raises(SourceError):
        pipeline.ingest_source(cfg, AS_OF)
    quarantine = table(cfg, "quarantine")
    assert quarantine[["source_file", "row_number", "reason"]].values.tolist() == [
        [str(folder / "b.parquet"), 0, "unreadable_file"]]  # fmt: skip


def test_skip_mode_ingests_the_readable_files_and_lists_the_unreadable(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [GOOD])
    (folder / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    (folder / "_SUCCESS").write_text("")
    (folder / "notes.md").write_text("# not events")
    cfg = config(tmp_path, folder, unreadable_files="skip")
    result = pipeline.ingest_source(cfg, AS_OF)
    assert result["files_ingested"] == [str(folder / "a.jsonl")]
    assert [f["file"] for f in result["files_unreadable"]] == [str(folder / "b.parquet")]
    assert {f["file"] for f in result["files_skipped"]} == {str(folder / "_SUCCESS"),
                                                            str(folder / "notes.md")}  # fmt: skip
    assert "set source.format" in next(f["why"] for f in result["files_skipped"]
                                       if f["file"].endswith("notes.md"))  # fmt: skip
    quarantine = table(cfg, "quarantine").sort_values("source_file")
    assert quarantine.source_file.map(lambda f: f.rsplit("/", 1)[1]).tolist() == [
        "b.parquet", "notes.md"]  # fmt: skip
    assert set(quarantine.reason) == {"unreadable_file"}
    # the rerun reads nothing new, lists the unreadable file again, records nothing twice
    again = pipeline.ingest_source(cfg, AS_OF)
    assert not again["generated"]
    assert [f["file"] for f in again["files_unreadable"]] == [str(folder / "b.parquet")]
    assert len(table(cfg, "quarantine")) == 2


def test_a_file_with_no_parsable_line_is_unreadable(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("this is not json\nneither is this\n")
    with pytest.raises(SourceError, match=r"events\.jsonl as jsonl: none of its 2 rows"):
        pipeline.ingest_source(config(tmp_path, path), AS_OF)


def test_a_missing_mapped_column_is_named(tmp_path):
    path = write_jsonl(tmp_path / "events.jsonl", [{"uid": 1, "iid": 2, "ts": START}])
    with pytest.raises(SourceError, match=r"no column\(s\) \['kind', 'stars'\]"):
        pipeline.ingest_source(config(tmp_path, path), AS_OF)


def test_every_format_ingests_the_same_events(tmp_path):
    records = [GOOD, {**GOOD, "iid": 11, "ts": START + 2 * DAY, "stars": 2},
               {**GOOD, "uid": 2, "ts": START + 3 * DAY, "kind": "click", "stars": 4}]  # fmt: skip
    frame = pd.DataFrame(records)
    sources = {
        "csv": tmp_path / "e.csv",
        "parquet": tmp_path / "e.parquet",
        "jsonl": tmp_path / "e.jsonl",
        "delta": tmp_path / "e_delta",
    }
    frame.to_csv(sources["csv"], index=False)
    frame.to_parquet(sources["parquet"])
    write_jsonl(sources["jsonl"], records)
    lake.write_arrow(sources["delta"], __import__("pyarrow").Table.from_pandas(frame))
    got = {}
    for fmt, path in sources.items():
        cfg = config(tmp_path / fmt, path)
        result = pipeline.ingest_source(cfg, AS_OF)
        assert result["quarantined"] == 0, fmt
        got[fmt] = table(cfg, "events").sort_values(["user_id", "item_id"]).reset_index(drop=True)
        impressions = table(cfg, "impressions")
        assert sorted(impressions.label) == [0, 1], fmt  # rows on/after 2026-01-03
    for fmt in ("parquet", "jsonl", "delta"):
        pd.testing.assert_frame_equal(got["csv"], got[fmt], check_like=True)
    assert got["csv"].event_type.tolist() == ["view", "view", "click"]


def test_run_date_placeholder_picks_that_days_files(tmp_path):
    for day, item in (("2026-01-02", 10), ("2026-01-03", 11)):
        (tmp_path / day).mkdir()
        write_jsonl(tmp_path / day / "events.jsonl", [{**GOOD, "iid": item}])
    cfg = config(tmp_path, tmp_path / "{date}")
    pipeline.ingest_source(cfg, Snapshot.of("2026-01-02"))
    assert table(cfg, "events").item_id.tolist() == [10]
    pipeline.ingest_source(cfg, AS_OF)
    assert sorted(table(cfg, "events").item_id) == [10, 11]


def test_quarantine_counts_reach_the_data_quality_report(tmp_path):
    path = write_jsonl(tmp_path / "events.jsonl",
                       [GOOD, {**GOOD, "uid": "x"}, {**GOOD, "kind": "?"}, {**GOOD, "ts": -1}])  # fmt: skip
    cfg = config(tmp_path, path)
    pipeline.ingest_source(cfg, AS_OF)
    outcome = pipeline.validate_events(cfg, AS_OF)
    assert outcome["success"]  # the events themselves are clean
    quarantine = outcome["quarantine"]
    assert not quarantine["success"]
    assert not quarantine["critical"]
    assert quarantine["by_reason"] == {"unparsable": 1, "unknown_event_type": 1,
                                       "negative_timestamp": 1}  # fmt: skip
    docs = (state.report_dir(cfg, AS_OF) / "data_docs").rglob("*.html")
    page = next(p for p in docs if "quarantine" in p.read_text() and "validations" in str(p))
    text = page.read_text()
    assert "unknown_event_type" in text
    assert "negative_timestamp" in text


def test_file_names_with_quotes_are_quarantined_and_replaced_safely(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "o'brien.jsonl", [GOOD, {**GOOD, "uid": "x"}])
    cfg = config(tmp_path, folder)
    pipeline.ingest_source(cfg, AS_OF)
    write_jsonl(folder / "d'arcy.jsonl", [{**GOOD, "iid": 12}, {**GOOD, "ts": -1}])
    pipeline.ingest_source(cfg, AS_OF)  # replaces only the new file's quarantine rows
    quarantine = table(cfg, "quarantine").sort_values("source_file")
    assert quarantine.source_file.tolist() == [str(folder / "d'arcy.jsonl"),
                                               str(folder / "o'brien.jsonl")]  # fmt: skip
    assert quarantine.reason.tolist() == ["negative_timestamp", "unparsable"]


def test_an_unreadable_file_is_named_in_the_data_docs(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [GOOD])
    (folder / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    cfg = config(tmp_path, folder, unreadable_files="skip")
    pipeline.ingest_source(cfg, AS_OF)
    outcome = pipeline.validate_events(cfg, AS_OF)
    assert outcome["quarantine"]["files_unreadable"] == [str(folder / "b.parquet")]
    docs = (state.report_dir(cfg, AS_OF) / "data_docs").rglob("*.html")
    page = next(p for p in docs if "quarantine" in p.read_text() and "validations" in str(p))
    assert "b.parquet" in page.read_text()
