"""Every bad-input class of tests/bad_files.py through the real ingest (Delta tables), and
property tests: files of random mixes of good rows and every bad class, where every row
read is stored, quarantined or counted as a duplicate, every stored id equals its text,
and a rerun adds nothing."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sources.ingest import REASONS, dedupe
from sources.loaders import prepare_file
from tests.bad_files import CASES, COLUMNS, HEADER, START, BadFile
from tests.conftest import tiny_config
from vista import pipeline
from vista.core import lake
from vista.core.config import SourceConfig
from vista.core.snapshot import Snapshot

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AS_OF = Snapshot.of("2026-01-03")
NOW = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
_spec = importlib.util.spec_from_file_location("bad_input_table",
                                               PROJECT_ROOT / "bench" / "bad_input_table.py")  # fmt: skip
bad_input_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bad_input_table)


def config(tmp_path, events_path, **source):
    base = {"events_path": str(events_path), "columns": COLUMNS, "cutoff_date": "2026-01-03",
            "format": "auto"}  # fmt: skip
    return tiny_config(tmp_path, source={**base, **source})


def frame_of(cfg, name) -> pd.DataFrame:
    path = cfg.paths.table(name)
    return lake.read_arrow(path).to_pandas() if lake.table_exists(path) else pd.DataFrame()


def versions(cfg) -> dict[str, int | None]:
    return {n: lake.table_version(cfg.paths.table(n)) for n in ("events", "impressions",
                                                                "quarantine")}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_file_class_rows_end_where_the_table_says(tmp_path, case: BadFile):
    cfg = config(tmp_path, case.write(tmp_path), **case.source)
    result = pipeline.ingest_source(cfg, AS_OF)
    events, quarantine = frame_of(cfg, "events"), frame_of(cfg, "quarantine")
    rows = quarantine[quarantine.reason != "unreadable_file"] if len(quarantine) else quarantine
    duplicates = result.get("duplicates_in_files", 0) + result.get("duplicates_already_stored", 0)
    got = (result.get("rows_read", 0), len(events), len(rows), duplicates)
    assert got == (case.rows_in, case.stored, case.quarantined, case.duplicates)
    assert case.rows_in == case.stored + case.quarantined + case.duplicates
    by_reason = quarantine.reason.value_counts().to_dict() if len(quarantine) else {}
    assert by_reason == case.reasons
    assert set(by_reason) <= set(REASONS)
    if len(quarantine):
        assert quarantine.detail.str.len().gt(0).all()
        assert set(quarantine.ingest_run) == {result["ingest_run"]}
    if case.check is not None:
        stored_ids = events.user_id.tolist() if len(events) else []
        case.check({**result, "stored_user_ids": stored_ids}, quarantine)
    # a rerun reads nothing again and commits nothing (files that added nothing included)
    before = versions(cfg)
    again = pipeline.ingest_source(cfg, AS_OF)
    assert not again["generated"]
    assert versions(cfg) == before


def test_bad_input_table_lists_every_ingest_case():
    assert bad_input_table.TABLE.read_text() == bad_input_table.render(), (
        "run: .venv/bin/python bench/bad_input_table.py"
    )
    text = bad_input_table.TABLE.read_text()
    for case in CASES:
        assert f"| {case.name} |" in text


# ---------------------------------------------------------------- property tests
# Each bad class as a CSV row for a given row index (ids unique per row, so only the
# duplicate classes make duplicates); (text, reason or "good"/"duplicate"/"conflict").
B63 = 2**63


def good_row(i: int) -> tuple[str, str]:
    return f"{i},{i % 7},{START + i},view,{i % 5 + 1}", "good"


BAD_CLASSES = {
    "id_out_of_range": lambda i: f"{B63 + i},1,{START},view,5",
    "id_29_digits": lambda i: f"{10**28 + i},1,{START},view,5",
    "id_exponent": lambda i: f"1e{18 + i % 3},1,{START},view,5",
    "id_fraction": lambda i: f"{i}.5,1,{START},view,5",
    "id_negative": lambda i: f"-{i + 1},1,{START},view,5",
    "id_empty": lambda i: f",1,{START},view,5",
    "id_text": lambda i: f"u{i},1,{START},view,5",
    "invalid_utf8": lambda i: f"{i}\udcff,1,{START},view,5",
    "empty_label": lambda i: f"{i},1,{START},view,",
    "far_future": lambda i: f"{i},1,{32503680000 + i},view,5",
    "negative_ts": lambda i: f"{i},1,-{i + 1},view,5",
    "unknown_event": lambda i: f"{i},1,{START},teleport,5",
    "too_few_fields": lambda i: f"{i},1,{START}",
    "bad_quoting": lambda i: f'{i},"1"x,{START},view,5',
}
EXPECTED_REASON = {"id_out_of_range": "id_out_of_range", "id_29_digits": "id_out_of_range",
                   "id_exponent": "id_not_integer", "id_fraction": "id_not_integer",
                   "id_negative": "negative_id", "id_empty": "missing_id",
                   "id_text": "unparsable", "invalid_utf8": "invalid_utf8",
                   "empty_label": "missing_label", "far_future": "future_timestamp",
                   "negative_ts": "negative_timestamp", "unknown_event": "unknown_event_type",
                   "too_few_fields": "malformed_row", "bad_quoting": "malformed_row"}  # fmt: skip
KINDS = ["good", "good", "good", "near_2_53", "multiline", "blank", *BAD_CLASSES, "duplicate",
         "conflict"]  # fmt: skip


def build_file(kinds: list[str]) -> tuple[bytes, dict[str, int], dict[int, str]]:
    """A CSV (UTF-8, a bad byte where asked) from row kinds; the expected outcome counts
    and, per stored user id, the text it was written as."""
    lines = [HEADER + ",note"]
    expected = {"stored": 0, "quarantined": 0, "duplicates": 0}
    reasons: dict[str, int] = {}
    ids: dict[int, str] = {}
    last_good: tuple[str, int] | None = None
    for i, kind in enumerate(kinds, start=1):
        if kind == "blank":
            lines.append("")
            continue
        if kind in ("duplicate", "conflict") and last_good is not None:
            text, uid = last_good
            if kind == "duplicate":
                lines.append(text)
                expected["duplicates"] += 1
            else:
                lines.append(text.rsplit(",", 2)[0] + ",9,")  # same event, rating 9
                expected["quarantined"] += 1
                reasons["conflicting_duplicate"] = reasons.get("conflicting_duplicate", 0) + 1
            continue
        if kind in BAD_CLASSES:
            lines.append(BAD_CLASSES[kind](i) + ("" if kind == "too_few_fields" else ","))
            expected["quarantined"] += 1
            reason = EXPECTED_REASON[kind]
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        uid = 2**53 + i if kind == "near_2_53" else i
        note = '"x\ny"' if kind == "multiline" else ""
        text = f"{uid},{i % 7},{START + i},view,{i % 5 + 1},{note}"
        lines.append(text)
        expected["stored"] += 1
        ids[uid] = str(uid)
        last_good = (text, uid)
    data = "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n"
    return data, {**expected, "reasons": reasons}, ids


def source_of(path: Path) -> SourceConfig:
    return SourceConfig(events_path=path, columns=COLUMNS, cutoff_date="2026-01-03",
                        format="auto")  # fmt: skip


PROPERTY_EXAMPLES = 150


def test_every_row_is_stored_quarantined_or_a_duplicate(tmp_path):
    """The parsing layer (pure pandas, no tables) on generated files of random mixes of
    good rows and every bad class, plain and compressed: rows in = stored + quarantined +
    duplicates, each reason as planted, every stored id equal to its text."""
    import bz2
    import gzip

    from hypothesis.configuration import set_hypothesis_home_dir

    from tests.bad_files import zstd

    # Hypothesis caches under ./.hypothesis by default: keep the repo clean
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    pack = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress, ".zst": zstd}
    counter = iter(range(10**6))

    @settings(
        max_examples=PROPERTY_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=40),
        compression=st.sampled_from(list(pack)),
    )
    def check(kinds, compression):
        data, expected, ids = build_file(kinds)
        path = tmp_path / f"e{next(counter)}" / f"events.CSV{compression.upper()}"
        path.parent.mkdir()
        path.write_bytes(pack[compression](data))
        prepared = prepare_file(path, source_of(path), None, NOW)
        unique, exact, conflicts = dedupe(prepared.good)
        quarantined = len(prepared.bad) + len(conflicts)
        assert prepared.rows.rows_in == len(unique) + quarantined + exact
        assert (len(unique), quarantined, exact) == (
            expected["stored"],
            expected["quarantined"],
            expected["duplicates"],
        )
        reasons = [*prepared.bad.reason, *["conflicting_duplicate"] * len(conflicts)]
        assert pd.Series(reasons, dtype=object).value_counts().to_dict() == expected["reasons"]
        assert {int(u): str(u) for u in unique.user_id} == ids
        # each stored row's raw line holds its id as written
        lines = prepared.rows.raw_of(unique.row_number)
        assert [line.split(",", 1)[0] for line in lines] == [str(u) for u in unique.user_id]

    try:
        check()
    finally:
        set_hypothesis_home_dir(None)


def test_mixed_file_end_to_end_and_its_rerun(tmp_path):
    """One file of every class through the real ingest into Delta, validated; the rerun
    adds nothing; a changed re-delivery under the same name keeps the first delivery's
    quarantine rows."""
    kinds = ["good", "near_2_53", "multiline", "blank", *BAD_CLASSES, "good", "duplicate",
             "good", "conflict"]  # fmt: skip
    data, expected, ids = build_file(kinds)
    path = tmp_path / "events.csv.gz"
    import gzip

    path.write_bytes(gzip.compress(data))
    cfg = config(tmp_path, path)
    result = pipeline.ingest_source(cfg, AS_OF)
    events, quarantine = frame_of(cfg, "events"), frame_of(cfg, "quarantine")
    assert result["rows_read"] == len(events) + len(quarantine) + result["duplicates_in_files"]
    assert (len(events), len(quarantine), result["duplicates_in_files"]) == (
        expected["stored"], expected["quarantined"], expected["duplicates"])  # fmt: skip
    assert quarantine.reason.value_counts().to_dict() == expected["reasons"]
    assert sorted(events.user_id) == sorted(ids)
    assert pipeline.validate_events(cfg, AS_OF)["success"]
    before = versions(cfg)
    assert not pipeline.ingest_source(cfg, AS_OF)["generated"]
    assert versions(cfg) == before
    # a changed file under the same name: a new delivery; the first one's rows stay
    path.write_bytes(gzip.compress(data + b"u9,1,1767225600,view,5,\n"))
    second = pipeline.ingest_source(cfg, AS_OF)
    assert second["quarantined_by_reason"] == {**expected["reasons"], "unparsable":
                                               expected["reasons"].get("unparsable", 0) + 1}  # fmt: skip
    quarantine = frame_of(cfg, "quarantine")
    assert len(quarantine) == 2 * expected["quarantined"] + 1
    assert quarantine.groupby("file_key").ingest_run.nunique().tolist() == [1, 1]
    assert quarantine.ingest_run.nunique() == 2
