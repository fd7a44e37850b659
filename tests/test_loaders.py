"""Any events file + a column mapping -> events and impressions, with no code change."""

import json

import pandas as pd
import pytest

from sources.loaders import SourceError, load_events, split_tables, stable_category
from vista.core.config import ConfigError, SourceConfig, load_config


def source(tmp_path, **kw) -> SourceConfig:
    base = {
        "events_path": tmp_path / "events.csv",
        "columns": {"user_id": "uid", "item_id": "iid", "timestamp": "ts", "rating": "stars"},
        "cutoff_date": "2026-01-03",
    }
    return SourceConfig(**{**base, **kw})


def write_csv(tmp_path):
    day = 86_400
    start = 1767225600  # 2026-01-01
    pd.DataFrame({
        "uid": [1, 1, 1, 2, 2], "iid": [10, 11, 12, 20, 21], "stars": [5, 2, 4, 1, 5],
        "ts": [start, start + day, start + 3 * day, start, start + 4 * day],
    }).to_csv(tmp_path / "events.csv", index=False)  # fmt: skip


def test_csv_with_mapping_becomes_events_and_labelled_later_impressions(tmp_path):
    write_csv(tmp_path)
    cfg = source(tmp_path)
    events, impressions = split_tables(load_events(cfg), cfg)
    assert events.num_rows == 5
    assert events.column("event_type").to_pylist() == ["view"] * 5
    imp = impressions.to_pandas()
    assert imp.item_id.tolist() == [12, 21]  # at or after the cutoff
    assert imp.label.tolist() == [1, 1]  # 4 and 5 stars >= 4
    assert imp.oracle_prob.isna().all()
    assert imp.impression_date.tolist() == ["2026-01-04", "2026-01-05"]


def test_parquet_and_jsonl_read_the_same(tmp_path):
    write_csv(tmp_path)
    frame = pd.read_csv(tmp_path / "events.csv")
    frame.to_parquet(tmp_path / "events.parquet")
    frame.to_json(tmp_path / "events.jsonl", orient="records", lines=True)
    csv = load_events(source(tmp_path))
    for fmt in ("parquet", "jsonl"):
        other = load_events(source(tmp_path, events_path=tmp_path / f"events.{fmt}", format=fmt))
        pd.testing.assert_frame_equal(csv, other)


def test_missing_column_and_unreadable_file_are_named(tmp_path):
    write_csv(tmp_path)
    with pytest.raises(SourceError, match=r"no column\(s\) \['userid'\]"):
        load_events(source(tmp_path, columns={"user_id": "userid", "item_id": "iid",
                                              "timestamp": "ts"}))  # fmt: skip
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SourceError, match=r"cannot read .*bad\.parquet as parquet"):
        load_events(source(tmp_path, events_path=tmp_path / "bad.parquet", format="parquet"))


def test_mapping_must_name_the_key_columns(tmp_path):
    with pytest.raises(ValueError, match=r"must map \['timestamp'\]"):
        source(tmp_path, columns={"user_id": "uid", "item_id": "iid"})


def test_string_categories_hash_stably():
    assert stable_category("Comedy") == stable_category("Comedy")
    assert stable_category("Comedy") != stable_category("Drama")
    assert stable_category(7) == 7
    assert stable_category(None) == -1


def test_movielens_profile_reads_the_real_file():
    try:
        cfg = load_config("movielens", environ={})
    except ConfigError as exc:  # pragma: no cover - the profile itself must be valid
        raise AssertionError(exc) from exc
    if not cfg.source.events_path.exists():
        pytest.skip("MovieLens-100K not installed: run `make movielens`")
    frame = load_events(cfg.source)
    assert len(frame) == 100_000
    assert frame.user_id.nunique() == 943
    assert frame.item_id.nunique() == 1682
    assert frame.category.nunique() > 10  # first genre of each movie
    _, impressions = split_tables(frame, cfg.source)
    imp = impressions.to_pandas()
    assert imp.event_timestamp.min() >= pd.Timestamp("1998-02-15", tz="UTC")
    assert 0.3 < imp.label.mean() < 0.8
    assert json.dumps(cfg.to_dict())  # serialisable into run.json


def test_nanosecond_timestamps_are_read_exactly(tmp_path):
    """Epoch nanoseconds (~1.7e18) are past a float's exact integers: written as integers,
    in text or an int64 Parquet column, they become the same microsecond, rounded half up."""
    ns = [1767225600_000_000_499, 1767225600_000_000_500, 1767312000_123_456_789]
    micros = [1767225600_000_000, 1767225600_000_001, 1767312000_123_457]
    frame = pd.DataFrame({"uid": [1, 1, 2], "iid": [10, 11, 12], "ts": ns, "stars": [5, 4, 1]})
    frame.to_csv(tmp_path / "events.csv", index=False)
    frame.to_parquet(tmp_path / "events.parquet")
    for fmt in ("csv", "parquet"):
        cfg = source(tmp_path, events_path=tmp_path / f"events.{fmt}", format=fmt,
                     timestamp_unit="ns")  # fmt: skip
        stamps = load_events(cfg).event_timestamp
        got = stamps.dt.tz_localize(None).to_numpy("datetime64[us]").astype("int64")
        assert got.tolist() == micros, fmt
