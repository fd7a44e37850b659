"""Every class of bad input file tried against the ingest, with where its rows must end
up. tests/test_ingest_bad_files.py ingests each one through the real pipeline (Delta
tables) and checks the counts, the reasons and that a rerun adds nothing;
bench/bad_input_table.py renders this list into docs/BAD_INPUT.md beside the serving
cases (tests/bad_requests.py)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

HEADER = "uid,iid,ts,kind,stars"
START = 1767225600  # 2026-01-01, before the tests' ingest date
GOOD = f"1,10,{START},view,5"
GOOD_JSON = {"uid": 1, "iid": 10, "ts": START, "kind": "view", "stars": 5}
COLUMNS = {"user_id": "uid", "item_id": "iid", "timestamp": "ts", "event_type": "kind",
           "rating": "stars"}  # fmt: skip


@dataclass(frozen=True)
class BadFile:
    name: str
    what: str  # the class of bad input, in words
    shown: str  # the bad part as the table shows it
    write: Callable[[Path], Path]  # writes the file(s) into a folder; returns events_path
    rows_in: int
    stored: int
    quarantined: int  # rows set aside (file-level records are in ``files``)
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    source: dict = field(default_factory=dict)  # source settings besides the defaults
    files: str = ""  # what happens to whole files, as the table says it
    check: Callable[[dict, object], None] | None = None  # (result, quarantine frame)


def csv_bytes(*rows: str | bytes, header: str = HEADER, newline: bytes = b"\n") -> bytes:
    lines = [r if isinstance(r, bytes) else r.encode() for r in (header, *rows)]
    return newline.join(lines) + newline


def file(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return path

    return write


def folder(**files: bytes) -> Callable[[Path], Path]:
    """A landing folder of several files (keys: names, ``__`` for a dot)."""

    def write(root: Path) -> Path:
        landing = root / "landing"
        landing.mkdir()
        for name, data in files.items():
            (landing / name.replace("__", ".")).write_bytes(data)
        return landing

    return write


def glob_of(files: Callable[[Path], Path], pattern: str) -> Callable[[Path], Path]:
    """The source is a glob over the folder that ``files`` writes."""

    def write(root: Path) -> Path:
        return files(root) / pattern

    return write


def csv_case(name, what, shown, *rows, **expected) -> BadFile:
    """A CSV of the good row and ``rows``."""
    return BadFile(name, what, shown, file("events.csv", csv_bytes(GOOD, *rows)), **expected)


def jsonl(*records: dict | str | bytes) -> bytes:
    lines = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode()
             for r in (GOOD_JSON, *records)]  # fmt: skip
    return b"\n".join(lines) + b"\n"


def json_case(name, what, shown, *records, **expected) -> BadFile:
    return BadFile(name, what, shown, file("events.jsonl", jsonl(*records)), **expected)


def parquet(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


def good_table(**override) -> pa.Table:
    columns = {"uid": pa.array([1, 2], pa.int64()), "iid": pa.array([10, 11], pa.int64()),
               "ts": pa.array([START, START + 60], pa.int64()), "kind": ["view", "click"],
               "stars": pa.array([5.0, 2.0])}  # fmt: skip
    return pa.table({**columns, **override})


def _row_numbers(expected: list[int]) -> Callable[[dict, object], None]:
    def check(result: dict, quarantine) -> None:
        assert sorted(quarantine.row_number) == expected, sorted(quarantine.row_number)

    return check


def _raw_has(text: str) -> Callable[[dict, object], None]:
    def check(result: dict, quarantine) -> None:
        assert any(text in raw for raw in quarantine.raw), list(quarantine.raw)

    return check


def _exact_ids(*ids: int) -> Callable[[dict, object], None]:
    def check(result: dict, quarantine) -> None:
        assert set(ids) <= set(result["stored_user_ids"]), result["stored_user_ids"]

    return check


B53 = 2**53
I64 = 2**63 - 1
CASES: list[BadFile] = [
    # ids: exact from their digits
    csv_case("ids_2_53_apart_by_one", "ids 2**53 and 2**53+1 (one float64)",
             f"{B53},10,... / {B53 + 1},10,...", f"{B53},10,{START},view,5",
             f"{B53 + 1},10,{START},view,5", rows_in=3, stored=3, quarantined=0,
             check=_exact_ids(B53, B53 + 1)),
    csv_case("id_int64_max", "id 2**63-1 (the largest int64)", f"{I64},10,...",
             f"{I64},10,{START},view,5", rows_in=2, stored=2, quarantined=0,
             check=_exact_ids(I64)),
    csv_case("id_2_63", "id 2**63 (past int64)", f"{I64 + 1},10,...",
             f"{I64 + 1},10,{START},view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"id_out_of_range": 1}),
    csv_case("id_29_digits", "a 29-digit id", "12345678901234567890123456789,10,...",
             f"12345678901234567890123456789,10,{START},view,5", rows_in=2, stored=1,
             quarantined=1, reasons={"id_out_of_range": 1}),
    csv_case("id_1e19", "id in exponent form past int64", "1e19,10,...",
             f"1e19,10,{START},view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"id_not_integer": 1}),
    csv_case("id_1e18", "id in exponent form within int64", "1e18,10,...",
             f"1e18,10,{START},view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"id_not_integer": 1}),
    csv_case("id_fraction", "fractional id", "1,10.5,...", f"1,10.5,{START},view,5",
             rows_in=2, stored=1, quarantined=1, reasons={"id_not_integer": 1}),
    csv_case("id_whole_decimal", "whole decimal id (an export of a float column)", "1,11.0,...",
             f"1,11.0,{START},view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"id_not_integer": 1}),
    csv_case("id_whole_decimal_allowed", "whole decimal id with source.integral_decimal_ids",
             "1,11.0,...", f"1,11.0,{START},view,5", rows_in=2, stored=2, quarantined=0,
             source={"integral_decimal_ids": True}),
    csv_case("id_negative", "negative id", "-4,10,...", f"-4,10,{START},view,5", rows_in=2,
             stored=1, quarantined=1, reasons={"negative_id": 1}),
    csv_case("id_empty", "empty id", ",10,...", f",10,{START},view,5", rows_in=2, stored=1,
             quarantined=1, reasons={"missing_id": 1}),
    csv_case("id_text", "text id", "u-17,10,...", f"u-17,10,{START},view,5", rows_in=2,
             stored=1, quarantined=1, reasons={"unparsable": 1}),
    csv_case("id_hex", "hexadecimal id", "0x1F,10,...", f"0x1F,10,{START},view,5", rows_in=2,
             stored=1, quarantined=1, reasons={"unparsable": 1}),
    csv_case("id_arabic_digits", "id in non-ASCII digits", "١٢,10,...",
             f"١٢,10,{START},view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"unparsable": 1}),
    csv_case("id_nul_byte", "NUL byte inside an id", "1\\x002,10,...",
             f"1\x002,10,{START},view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"unparsable": 1}),
    csv_case("id_padded_and_signed", "id with spaces and a plus sign (read as 12)",
             '" +12 ",11,...', f'" +12 ",11,{START},view,5', rows_in=2, stored=2,
             quarantined=0, check=_exact_ids(12)),
    json_case("json_id_true", "JSON true for an id", '{"uid": true, ...}',
              {**GOOD_JSON, "uid": True}, rows_in=2, stored=1, quarantined=1,
              reasons={"wrong_type": 1}),
    json_case("json_id_list", "JSON list for an id", '{"iid": [1, 2], ...}',
              {**GOOD_JSON, "iid": [1, 2]}, rows_in=2, stored=1, quarantined=1,
              reasons={"wrong_type": 1}),
    json_case("json_id_nan", "JSON NaN for an id", '{"uid": NaN, ...}',
              '{"uid": NaN, "iid": 10, "ts": ' + str(START) + ', "kind": "view", "stars": 5}',
              rows_in=2, stored=1, quarantined=1, reasons={"unparsable": 1}),
    json_case("json_id_1e400", "JSON number past float range for an id", '{"uid": 1e400, ...}',
              '{"uid": 1e400, "iid": 10, "ts": ' + str(START) + ', "kind": "view", "stars": 5}',
              rows_in=2, stored=1, quarantined=1, reasons={"id_not_integer": 1}),
    json_case("json_id_2_63", "JSON id 2**63", '{"uid": 9223372036854775808, ...}',
              {**GOOD_JSON, "uid": 2**63}, rows_in=2, stored=1, quarantined=1,
              reasons={"id_out_of_range": 1}),
    BadFile("parquet_uint64_id", "Parquet uint64 id past int64", "uid: uint64 2**64-1",
            file("events.parquet", parquet(good_table(uid=pa.array([1, 2**64 - 1], pa.uint64())))),
            rows_in=2, stored=1, quarantined=1, reasons={"id_out_of_range": 1}),
    BadFile("parquet_float_id", "Parquet double id column", "uid: double 2**53+1",
            file("events.parquet", parquet(good_table(uid=pa.array([1.0, 2.0**53 + 2])))),
            rows_in=2, stored=0, quarantined=2, reasons={"id_not_integer": 2}),
    # bytes and encodings
    csv_case("invalid_utf8_in_id", "invalid UTF-8 byte in a mapped value", "1\\xff,10,...",
             b"1\xff,11,%d,view,5" % START, rows_in=2, stored=1, quarantined=1,
             reasons={"invalid_utf8": 1}, check=_raw_has("1\\xff,11")),
    BadFile("invalid_utf8_past_8kb", "invalid UTF-8 byte after 8 KB of good rows",
            "(400 rows) then \\xff",
            file("events.csv", csv_bytes(*(f"{u},10,{START},view,5" for u in range(400)),
                                         b"\xff,10,%d,view,5" % START)),
            rows_in=401, stored=400, quarantined=1, reasons={"invalid_utf8": 1}),
    BadFile("invalid_utf8_unmapped_column", "invalid UTF-8 in a column that is not mapped",
            "note: \\xff", file("events.csv", csv_bytes(GOOD + ",ok", b"2,10,%d,view,5,\xff" % START,
                                                       header=HEADER + ",note")),
            rows_in=2, stored=2, quarantined=0),
    json_case("invalid_utf8_json", "invalid UTF-8 byte in a JSON line", '{"kind": "vi\\xffew"}',
              b'{"uid": 2, "iid": 10, "ts": %d, "kind": "vi\xffew", "stars": 5}' % START,
              rows_in=2, stored=1, quarantined=1, reasons={"invalid_utf8": 1}),
    json_case("lone_surrogate_json", "lone surrogate escape in a JSON value",
              '{"kind": "\\ud800"}', {**GOOD_JSON, "kind": "\ud800"}, rows_in=2, stored=1,
              quarantined=1, reasons={"invalid_utf8": 1}),
    BadFile("utf8_bom", "UTF-8 byte-order mark", "\\xef\\xbb\\xbfuid,iid,...",
            file("events.csv", b"\xef\xbb\xbf" + csv_bytes(GOOD)), rows_in=1, stored=1,
            quarantined=0),
    BadFile("utf16", "UTF-16 file (with its byte-order mark)", "uid,iid,... in UTF-16",
            file("events.csv", csv_bytes(GOOD).decode().encode("utf-16")), rows_in=1, stored=1,
            quarantined=0),
    BadFile("crlf", "Windows line ends (CRLF)", "...\\r\\n",
            file("events.csv", csv_bytes(GOOD, f"2,10,{START},view,5", newline=b"\r\n")),
            rows_in=2, stored=2, quarantined=0),
    # compression and names
    BadFile("gzip_single_file", "a single gzip CSV", "events.csv.gz",
            file("events.csv.gz", gzip.compress(csv_bytes(GOOD))), rows_in=1, stored=1,
            quarantined=0),
    BadFile("bzip2_jsonl", "bzip2 JSON lines", "events.jsonl.bz2",
            file("events.jsonl.bz2", bz2.compress(jsonl())), rows_in=1, stored=1,
            quarantined=0),
    BadFile("zstd_parquet", "zstd-compressed Parquet file", "events.parquet.zst",
            file("events.parquet.zst", zstd(parquet(good_table()))), rows_in=2, stored=2,
            quarantined=0),
    BadFile("xz_csv", "xz CSV", "events.csv.xz", file("events.csv.xz", lzma.compress(csv_bytes(GOOD))),
            rows_in=1, stored=1, quarantined=0),
    BadFile("folder_gz_and_upper_case", "folder with b.csv.gz and C.CSV", "landing/{a.csv, b.csv.gz, C.CSV}",
            folder(a__csv=csv_bytes(GOOD), b__csv__gz=gzip.compress(csv_bytes(f"2,10,{START},view,5")),
                   C__CSV=csv_bytes(f"3,10,{START},view,5")),
            rows_in=3, stored=3, quarantined=0, files="3 ingested"),
    BadFile("glob_any_case", "glob *.csv over a.csv, C.CSV and b.Csv.GZ", "landing/*.csv",
            glob_of(folder(a__csv=csv_bytes(GOOD), C__CSV=csv_bytes(f"3,10,{START},view,5"),
                           b__Csv__GZ=gzip.compress(csv_bytes(f"2,10,{START},view,5"))), "*.csv"),
            rows_in=2, stored=2, quarantined=0, files="2 ingested (the .gz is another suffix)"),
    BadFile("truncated_gzip", "truncated gzip beside a good file (unreadable_files: skip)",
            "landing/{a.csv, b.csv.gz cut in half}",
            folder(a__csv=csv_bytes(GOOD), b__csv__gz=gzip.compress(csv_bytes(GOOD))[:30]),
            rows_in=1, stored=1, quarantined=0, reasons={"unreadable_file": 1},
            source={"unreadable_files": "skip"}, files="1 ingested, 1 unreadable (listed, recorded)"),
    BadFile("unknown_suffix_and_marker", "unknown suffix and a _SUCCESS marker in a folder",
            "landing/{a.csv, events.log, _SUCCESS}",
            folder(a__csv=csv_bytes(GOOD), events__log=b"x", _SUCCESS=b""), rows_in=1, stored=1,
            quarantined=0, reasons={"unreadable_file": 1},
            files="1 ingested, 2 skipped (listed; events.log recorded)"),
    BadFile("header_only", "header only (recorded as ingested)", "uid,iid,ts,kind,stars",
            file("events.csv", csv_bytes()), rows_in=0, stored=0, quarantined=0,
            files="1 ingested (adds nothing)"),
    BadFile("all_rows_bad", "every row bad (recorded as ingested)", "u1,10,... / u2,10,...",
            file("events.csv", csv_bytes(f"u1,10,{START},view,5", f"u2,10,{START},view,5")),
            rows_in=2, stored=0, quarantined=2, reasons={"unparsable": 2}),
    # labels and duplicates
    csv_case("empty_label", "empty label", "2,10,...,view,", f"2,10,{START},view,", rows_in=2,
             stored=1, quarantined=1, reasons={"missing_label": 1}),
    csv_case("nan_label", "NaN label", "2,10,...,view,nan", f"2,10,{START},view,nan",
             rows_in=2, stored=1, quarantined=1, reasons={"unparsable": 1}),
    csv_case("exact_duplicate", "exact duplicate row", "(the good row twice)", GOOD, rows_in=2,
             stored=1, quarantined=0, duplicates=1),
    csv_case("conflicting_duplicate", "duplicate event with a different rating (first kept)",
             "1,10,...,view,5 / 1,10,...,view,2", f"1,10,{START},view,2", rows_in=2, stored=1,
             quarantined=1, reasons={"conflicting_duplicate": 1}),
    # rows and quoting
    BadFile("multiline_quoted_then_bad", "quoted value over 3 lines, then a bad row (its number)",
            '...,"a\\nb\\nc" / x,10,... (line 6)',
            file("events.csv", csv_bytes(GOOD + ",", f'2,10,{START},view,5,"a\nb\nc"',
                                         f"x,10,{START},view,5,", header=HEADER + ",note")),
            rows_in=3, stored=2, quarantined=1, reasons={"unparsable": 1},
            check=_row_numbers([6])),
    csv_case("blank_lines", "blank lines between rows (not rows)", "\\n\\n",
             "", "", f"2,10,{START},view,5", rows_in=2, stored=2, quarantined=0),
    csv_case("too_few_fields", "too few fields", f"1,11,{START}", f"1,11,{START}", rows_in=2,
             stored=1, quarantined=1, reasons={"malformed_row": 1}),
    csv_case("too_many_fields", "too many fields", "1,12,...,5,extra",
             f"1,12,{START},view,5,extra", rows_in=2, stored=1, quarantined=1,
             reasons={"malformed_row": 1}),
    csv_case("bad_quoting", "text after a closing quote", '1,"12"x,...',
             f'1,"12"x,{START},view,5', rows_in=2, stored=1, quarantined=1,
             reasons={"malformed_row": 1}),
    json_case("json_duplicate_key", "duplicate key in a JSON object", '{"uid": 1, "uid": 2, ...}',
              '{"uid": 1, "uid": 2, "iid": 10, "ts": ' + str(START) + ', "kind": "view", "stars": 5}',
              rows_in=2, stored=1, quarantined=1, reasons={"malformed_row": 1}),
    json_case("json_not_object", "JSON array line", "[1, 10, ...]", f"[1, 10, {START}]",
              rows_in=2, stored=1, quarantined=1, reasons={"malformed_row": 1}),
    json_case("json_truncated", "truncated JSON line", '{"uid": 1, "iid":', '{"uid": 1, "iid":',
              rows_in=2, stored=1, quarantined=1, reasons={"malformed_row": 1}),
    # timestamps and event types
    BadFile("iso_far_future", "ISO timestamp in 2999 (past pandas' range)",
            "2999-01-01T00:00:00Z",
            file("events.csv", csv_bytes("1,10,2026-01-01T00:00:00Z,view,5",
                                         "2,10,2999-01-01T00:00:00Z,view,5")),
            rows_in=2, stored=1, quarantined=1, reasons={"future_timestamp": 1},
            source={"timestamp_unit": "iso"}),
    BadFile("iso_year_1500", "ISO timestamp in 1500", "1500-01-01T00:00:00Z",
            file("events.csv", csv_bytes("1,10,2026-01-01T00:00:00Z,view,5",
                                         "2,10,1500-01-01T00:00:00Z,view,5")),
            rows_in=2, stored=1, quarantined=1, reasons={"negative_timestamp": 1},
            source={"timestamp_unit": "iso"}),
    BadFile("iso_offsets", "ISO timestamps with offsets and without a zone", "+05:30, naive",
            file("events.csv", csv_bytes("1,10,2026-01-01T05:30:00+05:30,view,5",
                                         "2,10,2026-01-01 00:00:00,view,5")),
            rows_in=2, stored=2, quarantined=0, source={"timestamp_unit": "iso"}),
    csv_case("epoch_future", "epoch seconds in 2100", "...,4102444800,...",
             "2,10,4102444800,view,5", rows_in=2, stored=1, quarantined=1,
             reasons={"future_timestamp": 1}),
    csv_case("epoch_negative", "negative epoch seconds", "...,-60,...", "2,10,-60,view,5",
             rows_in=2, stored=1, quarantined=1, reasons={"negative_timestamp": 1}),
    csv_case("timestamp_text", "text timestamp", "...,yesterday,...", "2,10,yesterday,view,5",
             rows_in=2, stored=1, quarantined=1, reasons={"unparsable": 1}),
    csv_case("timestamp_empty", "empty timestamp", "2,10,,view,5", "2,10,,view,5", rows_in=2,
             stored=1, quarantined=1, reasons={"missing_timestamp": 1}),
    csv_case("unknown_event_type", "unknown event type", "...,teleport,...",
             f"2,10,{START},teleport,5", rows_in=2, stored=1, quarantined=1,
             reasons={"unknown_event_type": 1}),
]  # fmt: skip
