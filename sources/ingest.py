"""Ingest events files through a column mapping: parse, validate, quarantine, dedupe.

Every source row ends in exactly one place: the typed ``events`` rows, a quarantine row
(a reason code, a readable detail, the source file, its row number and the raw text), or
the count of exact duplicates. Files are read with every column as text (CSV, JSON
lines) or as stored (Parquet, Delta) and then parsed column by column, so one bad value
quarantines one row instead of failing the file:

- ids are read exactly from their digits, never through a float: out of int64 range,
  decimal and exponent forms each have their own reason;
- a byte that is not UTF-8 costs its row (``invalid_utf8``, raw kept with the bytes
  escaped as ``\\xNN``), not the file;
- gzip, bzip2, xz and zstd files are recognised by their first bytes, in every format;
  suffixes are matched in any case.

Only a file that cannot be read at all (truncated archive, not Parquet, no header) is
unreadable: ``vista.pipeline.ingest_source`` names it and records it in quarantine.

Pure functions: ``read_rows`` (a file -> its raw rows and the rows that could not be
split or decoded), ``validate_rows`` (raw rows -> good typed rows, quarantined rows) and
``dedupe`` (good rows -> unique rows, exact duplicates, conflicting duplicates).

Long because every check a source row goes through, with its quarantine reason
(``REASONS``), lives here: that every row ends in exactly one place can be checked by
reading one file.
"""

from __future__ import annotations

import bz2
import csv
import datetime as dt
import glob
import gzip
import hashlib
import io
import json
import lzma
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from sources.synthetic import EVENT_TYPES
from vista.core.config import SourceConfig
from vista.core.names import UNKNOWN_CATEGORY
from vista.core.snapshot import Snapshot

# reason code -> what it means; the quarantine table's ``reason`` is one of these
REASONS = {
    "malformed_row": "the line could not be read as a row of the file (wrong field count, "
    "bad quoting, not a JSON object, a duplicate key)",
    "invalid_utf8": "a mapped value holds bytes that are not UTF-8 text (raw keeps them "
    "escaped as \\xNN)",
    "missing_id": "user_id or item_id is empty",
    "negative_id": "user_id or item_id is below 0",
    "id_out_of_range": "user_id or item_id is above 9223372036854775807 (int64)",
    "id_not_integer": "user_id or item_id is written in decimal or exponent form "
    "(10.5, 1e18), which an id never is",
    "missing_timestamp": "the timestamp is empty",
    "unparsable": "a value could not be parsed as its column's type",
    "wrong_type": "a value parsed but is of the wrong type (e.g. true or a list as an id)",
    "negative_timestamp": "the timestamp is before 1970-01-01",
    "future_timestamp": "the timestamp is later than the ingest time plus the allowed skew",
    "unknown_event_type": "the event type is empty or not one of source.event_types",
    "missing_label": "the label column (source.label_column) is empty",
    "conflicting_duplicate": "same user, item, time and event type as an earlier row, with "
    "a different label or category: the earlier row is kept",
    "conflicts_with_stored": "same user, item, time and event type as an event stored by an "
    "earlier ingest, with a different category (or label, for an impression): the stored "
    "one is kept",
    "unreadable_file": "the whole file could not be read (row_number 0; detail says why)",
    "rejected_by_suite": "a row already in events that the events suite rejects, moved here "
    "by `vista quarantine evict` (stored by an older version or by hand)",
}
DEDUPE_KEY = ["user_id", "item_id", "event_timestamp", "event_type"]
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row_number", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
        # a delivery is (source_file, file_key, ingest_run): a changed file under the same
        # name is a new delivery, and its rows are added beside the earlier ones
        ("file_key", pa.string()),
        ("ingest_run", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("ingest_date", pa.string()),
    ]
)
FORMAT_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".inter": "csv",
                   ".dat": "csv", ".data": "csv",
                   ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                   ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd",
                        ".zstd": "zstd", ".xz": "xz"}  # fmt: skip
# compression is told by the first bytes, not the name: a misnamed file still reads
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"))
_MAX_RAW_CHARS = 2000
INT64_MAX = 2**63 - 1
_FLOAT_EXACT = 2**53  # a float holds every integer below this exactly, and no more
_SURROGATE = re.compile("[\ud800-\udfff]")


class SourceError(ValueError):
    """A source cannot be read as configured; the message names the file."""


@dataclass
class RawRows:
    """One file's rows as read: ``frame`` (every column text for CSV; JSON values for
    JSON lines; typed for Parquet and Delta) indexed by row number (the physical line a
    row starts on for text files, header = line 1; 1-based position for Parquet and
    Delta), plus the rows that could not be split into the file's columns."""

    source_file: str
    frame: pd.DataFrame
    rejected: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # n, reason, detail, raw
    lines: dict[int, str] | None = None  # text formats: row number -> the row's raw text

    @property
    def rows_in(self) -> int:
        return len(self.frame) + len(self.rejected)

    def raw_of(self, numbers) -> list[str]:
        """The raw text of rows: their lines (bytes that are not UTF-8 escaped as \\xNN),
        or for Parquet and Delta the row's values as JSON."""
        if self.lines is not None:
            return [self.lines[int(n)] for n in numbers]
        records = self.frame.loc[list(numbers)].to_dict(orient="records")
        return [escaped(json.dumps(r, default=str))[:_MAX_RAW_CHARS] for r in records]


def escaped(text: str) -> str:
    """Text with undecodable bytes (read as surrogates) written as \\xNN and lone
    surrogate escapes as \\uXXXX, so that it can be stored and shown."""
    return _SURROGATE.sub(_escape_one, text)


def _escape_one(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


@dataclass(frozen=True)
class SourceFiles:
    """What ``source.events_path`` names: the files to read and, by name, every file
    found but not read with why (never skipped in silence)."""

    files: list[Path]
    skipped: list[tuple[str, str]]


# ---------------------------------------------------------------- finding files
def find_source_files(source: SourceConfig, as_of: dt.date | None = None) -> SourceFiles:
    """The files (or one Delta table) that ``source.events_path`` names: a file, a
    folder of files, or a glob; ``{date}`` in the path is the snapshot's date
    (YYYY-MM-DD), ``{snapshot}`` the snapshot itself (YYYY-MM-DD at midnight, else
    YYYY-MM-DDTHH: one landing folder per 2-hourly snapshot).

    In a folder or a glob, names starting with ``.`` or ``_`` (``_SUCCESS``, ``.crc``)
    are markers, not events; with ``source.format: auto`` a name whose format is not
    known from its suffix (compression suffixes and case aside) is not read either.
    Both are listed in ``skipped`` with why."""
    pattern = str(source.events_path)
    if "{date}" in pattern or "{snapshot}" in pattern:
        if as_of is None:
            raise SourceError(
                f"events_path {pattern} names a snapshot's files but no run date was given"
            )
        snapshot = Snapshot.of(as_of)
        pattern = pattern.replace("{date}", snapshot.date().isoformat())
        pattern = pattern.replace("{snapshot}", snapshot.iso)
    path = Path(pattern)
    if source.format == "delta" or (path / "_delta_log").is_dir() or path.is_file():
        return SourceFiles([path], [])
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        found = sorted(Path(p) for p in glob.glob(caseless_name(pattern), recursive=True)
                       if Path(p).is_file())  # fmt: skip
    files, skipped = [], []
    for file in found:
        why = _not_events_file(source, file)
        if why is None:
            files.append(file)
        else:
            skipped.append((str(file), why))
    if not files:
        listed = "; ".join(f"{name}: {why}" for name, why in skipped[:5])
        raise SourceError(f"no events files at {pattern}" + (f" ({listed})" if listed else ""))
    return SourceFiles(files, skipped)


def caseless_name(pattern: str) -> str:
    """The glob with its last component matched in any case (``*.csv`` finds ``C.CSV``
    and ``b.Csv.GZ``), as suffixes are everywhere else; folders keep the file system's
    case. A component that has its own ``[...]`` classes is left as written."""
    head, sep, name = pattern.rpartition("/")
    if "[" in name:
        return pattern
    name = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name)
    return f"{head}{sep}{name}"


def source_files(source: SourceConfig, as_of: dt.date | None = None) -> list[Path]:
    return find_source_files(source, as_of).files


def _not_events_file(source: SourceConfig, path: Path) -> str | None:
    if path.name.startswith((".", "_")):
        return "a hidden or marker file (its name starts with . or _)"
    if source.format == "auto" and format_of_name(path) is None:
        return (f"the format is not known from the name {path.name!r} (known: "
                f"{', '.join(sorted(FORMAT_SUFFIXES))}, optionally compressed: "
                f"{', '.join(sorted(COMPRESSION_SUFFIXES))}); set source.format to read it")  # fmt: skip
    return None


def format_of_name(path: Path) -> str | None:
    """csv, jsonl or parquet from a name like ``b.CSV.gz`` (suffixes in any case)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return FORMAT_SUFFIXES.get(suffixes[-1]) if suffixes else None


def source_format(source: SourceConfig, path: Path) -> str:
    if source.format != "auto":
        return source.format
    if (path / "_delta_log").is_dir():
        return "delta"
    fmt = format_of_name(path)
    if fmt is None:
        raise SourceError(f"cannot tell the format of {path} from its name; set source.format")
    return fmt


def file_key(path: Path, fmt: str) -> str:
    """Content identity of a source: a re-delivered identical file is the same source."""
    if fmt == "delta":
        from deltalake import DeltaTable

        return f"delta:{path.resolve()}@{DeltaTable(str(path)).version()}"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:32]}"


# ---------------------------------------------------------------- reading
def compression_of(head: bytes) -> str | None:
    """gzip, bz2, xz or zstd from a file's first bytes; None for a plain file."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bz2"
    return None


def file_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip, bzip2, xz or zstd."""
    data = path.read_bytes()
    kind = compression_of(data[:6])
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "bz2":
        return bz2.decompress(data)
    if kind == "xz":
        return lzma.decompress(data)
    if kind == "zstd":  # pyarrow's codec: no extra package
        return pa.CompressedInputStream(pa.BufferReader(data), "zstd").read()
    return data


def read_rows(path: Path, fmt: str, separator: str = ",") -> RawRows:
    """A file's raw rows; a file that cannot be read at all raises SourceError."""
    if not path.exists():
        raise SourceError(f"events file {path} does not exist (source.events_path)")
    try:
        if fmt == "delta":
            rows = _read_table(path, fmt)
        elif fmt in ("csv", "jsonl", "parquet"):
            data = file_bytes(path)
            reader = {"csv": lambda: _read_csv(data, separator, str(path)),
                      "jsonl": lambda: _read_jsonl(data, str(path)),
                      "parquet": lambda: _read_parquet(data, str(path))}[fmt]  # fmt: skip
            rows = reader()
        else:
            raise SourceError(f"unknown format {fmt!r} for {path}")
    except SourceError:
        raise
    except (ValueError, OSError, EOFError, pa.ArrowException, UnicodeError, lzma.LZMAError,
            csv.Error) as exc:  # fmt: skip
        raise SourceError(f"cannot read {path} as {fmt}: {exc}") from exc
    # JSON lines have no header to tell a wrong format (a JSON array, a binary file) from
    # bad rows: no line at all that parses means the file is not JSON lines. A CSV with
    # its header has its columns, so each of its rows counts on its own
    if fmt == "jsonl" and rows.frame.empty and rows.rejected:
        number, _, _, text = rows.rejected[0]
        raise SourceError(
            f"cannot read {path} as {fmt}: none of its {len(rows.rejected)} rows parses "
            f"(row {number}: {text[:200]!r})"
        )
    return rows


def decoded(data: bytes) -> str:
    """Text of a file: UTF-16 when it starts with a UTF-16 byte-order mark, else UTF-8
    (a UTF-8 byte-order mark dropped) with each undecodable byte kept as a surrogate,
    so the row holding it can be quarantined and the rest read."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig", errors="surrogateescape")


def _read_csv(data: bytes, separator: str, name: str) -> RawRows:
    """Rows by Python's csv module: each row numbered by the physical line it starts on
    (a quoted value may span lines; blank lines are not rows)."""
    lines = io.StringIO(decoded(data), newline="").readlines()
    reader = csv.reader(lines, delimiter=separator, strict=True)
    header: list[str] | None = None
    records: list[list[str]] = []
    numbers: list[int] = []
    raw: dict[int, str] = {}
    rejected: list[tuple[int, str, str, str]] = []
    previous = 0
    while True:
        try:
            row = next(reader)
            error = None
        except StopIteration:
            break
        except csv.Error as exc:
            row, error = None, str(exc)
        start, previous = previous + 1, reader.line_num
        if row == []:  # a blank line
            continue
        text = escaped("".join(lines[start - 1 : previous]).rstrip("\r\n"))
        if header is None:
            if error is not None or not any(c.strip() for c in row):
                raise SourceError(f"cannot read {name} as csv: line {start} is not a header "
                                  f"({error or 'no column names'})")  # fmt: skip
            header = row
            continue
        if error is None and len(row) != len(header):
            error = f"{len(row)} fields where the header has {len(header)}"
        if error is not None:
            rejected.append((start, "malformed_row", f"line {start} does not split into the "
                             f"file's columns ({error})", text[:_MAX_RAW_CHARS]))  # fmt: skip
            continue
        records.append(row)
        numbers.append(start)
        raw[start] = text[:_MAX_RAW_CHARS]
    if header is None:
        raise SourceError(f"cannot read {name} as csv: it has no header line")
    frame = pd.DataFrame(records, columns=header, index=pd.Index(numbers, dtype="int64"),
                         dtype=object)  # fmt: skip
    return RawRows(name, frame, rejected, raw)


class JsonNumber(str):
    """A JSON number kept as its text, so an id is read exactly from its digits (and
    1e18 or 10.5 is seen as written), never through a float."""


def _json_object(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"duplicate key(s) {repeated}")
    return dict(pairs)


def _read_jsonl(data: bytes, name: str) -> RawRows:
    records, numbers, rejected, raw = [], [], [], {}
    text = decoded(data)
    for number, line in enumerate(io.StringIO(text, newline="").readlines(), start=1):
        if not line.strip():
            continue
        shown = escaped(line.rstrip("\r\n"))[:_MAX_RAW_CHARS]
        try:
            record = json.loads(line, parse_int=JsonNumber, parse_float=JsonNumber,
                                parse_constant=JsonNumber, object_pairs_hook=_json_object)  # fmt: skip
            problem = None if isinstance(record, dict) else "not a JSON object"
        except ValueError as exc:
            record, problem = None, str(exc)
        if problem is not None:
            rejected.append((number, "malformed_row", f"line {number} is not a JSON object "
                             f"({problem})", shown))  # fmt: skip
            continue
        records.append(record)
        numbers.append(number)
        raw[number] = shown
    if not records:
        return RawRows(name, pd.DataFrame(), rejected, raw)
    frame = pd.DataFrame.from_records(records, index=pd.Index(numbers, dtype="int64"))
    frame = frame.astype(object) if len(frame.columns) else frame
    return RawRows(name, frame, rejected, raw)


def _read_parquet(data: bytes, name: str) -> RawRows:
    import pyarrow.parquet as pq

    return _rows_of(pq.read_table(pa.BufferReader(data)), name)


def _read_table(path: Path, fmt: str) -> RawRows:
    from deltalake import DeltaTable

    from vista.core.lake import arrow_of

    return _rows_of(arrow_of(DeltaTable(str(path))), str(path))


def _rows_of(table: pa.Table, name: str) -> RawRows:
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return RawRows(name, frame)


# ---------------------------------------------------------------- parsing columns
@dataclass
class Parsed:
    """A parsed column: values (NaN/NaT/None where bad) and, per row, a reason."""

    values: pd.Series
    reason: pd.Series  # object: a REASONS key or None

    def detail(self, name: str, raw: pd.Series) -> pd.Series:
        return pd.Series(
            [None if not isinstance(r, str) else DETAILS[r].format(name=name, value=_show(v)) for r, v in
             zip(self.reason, raw, strict=True)], index=raw.index, dtype=object,
        )  # fmt: skip


DETAILS = {
    "invalid_utf8": "{name} {value} holds bytes that are not UTF-8 (shown as \\x escapes)",
    "missing_id": "{name} is empty",
    "negative_id": "{name} {value} is negative",
    "id_out_of_range": "{name} {value} is above 9223372036854775807, the largest id (int64)",
    "id_not_integer": "{name} {value} is not written as an integer (ids are read exactly "
    "from their digits; 10.0 is accepted with source.integral_decimal_ids)",
    "missing_timestamp": "{name} is empty",
    "unparsable": "{name} {value} does not parse as this column's type",
    "wrong_type": "{name} {value} has the wrong type (an integer id, a number or a "
    "timestamp is expected)",
    "negative_timestamp": "{name} {value} is before 1970-01-01",
    "future_timestamp": "{name} {value} is later than the ingest time plus "
    "source.max_clock_skew_seconds",
    "unknown_event_type": "{name} {value} is not one of the allowed event types "
    "(source.event_types)",
    "missing_label": "{name} is empty (the label column, source.label_column, must hold a "
    "number on every row)",
}


def _show(value) -> str:
    """A value as a detail shows it: text quoted, JSON numbers as written."""
    if isinstance(value, str) and not isinstance(value, JsonNumber):
        return escaped(repr(str(value)))[:80]
    return escaped(_json_text(value))[:80]


def _json_text(value) -> str:
    if isinstance(value, JsonNumber):
        return str(value)
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))}: {_json_text(v)}" for k, v in value.items())
            + "}"
        )
    return json.dumps(value, default=str)


def _missing(values: pd.Series) -> pd.Series:
    missing = values.isna()
    if values.dtype == object:
        missing |= values.map(lambda v: isinstance(v, str) and not v.strip())
    return missing


def _types(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(is a JSON/Python bool, is a list or dict): values no number parses from."""
    if values.dtype == bool:
        return pd.Series(True, index=values.index), pd.Series(False, index=values.index)
    if values.dtype != object:
        false = pd.Series(False, index=values.index)
        return false, false
    kinds = values.map(type)
    return kinds.isin([bool, np.bool_]), kinds.isin([list, dict, tuple, np.ndarray])


def parse_text(values: pd.Series) -> Parsed:
    """invalid_utf8 where a text value holds undecodable bytes (or a lone surrogate)."""
    reason = pd.Series(None, index=values.index, dtype=object)
    if values.dtype == object:
        bad = values.map(lambda v: isinstance(v, str) and _SURROGATE.search(v) is not None)
        reason[bad.astype(bool)] = "invalid_utf8"
    return Parsed(values, reason)


def _numbers(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(numbers as float64, missing, reason) for a column meant to hold numbers."""
    missing = _missing(values)
    boolean, container = _types(values)
    clean = values.where(~(missing | boolean | container))
    if clean.dtype == object:
        clean = clean.map(lambda v: str(v).strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(clean, errors="coerce").astype("float64")
    reason = pd.Series(None, index=values.index, dtype=object)
    reason[~missing & numbers.isna()] = "unparsable"
    reason[boolean | container] = "wrong_type"
    numbers[boolean | container] = np.nan
    return numbers, missing, reason


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?")
_ZERO_FRACTION = re.compile(r"\+?([0-9]+)\.0*")


def id_of(value, integral_decimals: bool = False) -> tuple[int | None, str | None]:
    """(the id, None) or (None, reason) for one value: exact from its digits.

    Text and JSON numbers are matched as written (ASCII digits only: no float, no
    rounding); Python and NumPy integers are exact already; a float (a Parquet double
    column) is an id only when ``integral_decimals`` and it is whole and below 2**53,
    the last integer a float holds exactly."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None, "missing_id"
    if isinstance(value, bool | np.bool_ | list | dict | tuple | np.ndarray | bytes):
        return None, "wrong_type"
    if isinstance(value, int | np.integer):
        number = int(value)
    elif isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return None, "unparsable"
        if not integral_decimals or value != int(value) or abs(value) >= _FLOAT_EXACT:
            return None, "id_not_integer"
        number = int(value)
    else:
        text = str(value).strip()
        if not text:
            return None, "missing_id"
        if _INTEGER.fullmatch(text):
            number = int(text)
        elif integral_decimals and (whole := _ZERO_FRACTION.fullmatch(text)):
            number = int(whole.group(1))
        elif _DECIMAL.fullmatch(text):
            return None, "id_not_integer"
        else:
            return None, "unparsable"
    if number < 0:
        return None, "negative_id"
    if number > INT64_MAX:
        return None, "id_out_of_range"
    return number, None


def _plain_digits(values: pd.Series) -> pd.Series | None:
    """The common case in Arrow's C kernels: every value is text of 1 to 18 ASCII digits
    (always within int64), read exactly by Arrow's integer cast. None otherwise."""
    import pyarrow.compute as pc

    if values.dtype != object or not len(values):
        return None
    try:
        text = pa.array(values.to_numpy(), type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):  # not all text, or bad bytes
        return None
    if text.null_count or not pc.all(pc.match_substring_regex(text, r"^[0-9]{1,18}$")).as_py():
        return None
    return pd.Series(pc.cast(text, pa.int64()).to_numpy(), index=values.index)


def parse_id(values: pd.Series, integral_decimals: bool = False) -> Parsed:
    """Ids as exact int64 (None where bad) and the reason of each bad one."""
    if pd.api.types.is_signed_integer_dtype(values.dtype):  # int64 Parquet: exact already
        numbers = values.astype("int64")
        reason = pd.Series(np.where(numbers < 0, "negative_id", None), index=values.index,
                           dtype=object)  # fmt: skip
        return Parsed(numbers.astype(object).where(reason.isna(), None), reason)
    fast = _plain_digits(values)
    if fast is not None:
        return Parsed(fast, pd.Series(None, index=values.index, dtype=object))
    pairs = [id_of(v, integral_decimals) for v in values.astype(object)]
    ids = pd.Series([p[0] for p in pairs], index=values.index, dtype=object)
    reason = pd.Series([p[1] for p in pairs], index=values.index, dtype=object)
    return Parsed(ids, reason)


_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _micros_of(values: pd.Series, numbers: pd.Series, unit: str) -> pd.Series:
    """Epoch numbers in ``unit`` as whole microseconds. Nanoseconds (~1.7e18) are past a
    float's exact integers (2**53): integers (an int64 column, digits in text) are divided
    exactly, rounding half up; other forms (1.7e18, decimals) go through the float."""
    if unit != "ns":
        return (numbers * (1_000_000 // _UNIT_PER_SECOND[unit])).round()
    micros = (numbers / 1_000).round()
    valid = numbers.notna()
    if pd.api.types.is_integer_dtype(values.dtype):
        return micros.where(~valid, (values.astype("int64") + 500) // 1_000)
    text = values.map(lambda v: v.strip() if isinstance(v, str) else None)
    digits = valid & text.map(lambda v: v is not None and v.isascii() and v.isdigit())
    exact = pd.Series([(int(v) + 500) // 1_000 for v in text[digits]], index=text.index[digits],
                      dtype="int64")  # fmt: skip
    return micros.where(~digits, exact)


def _iso_outside(text: pd.Series, latest: pd.Timestamp) -> pd.Series:
    """For ISO texts pandas cannot hold (before 1677 or after 2262): future_timestamp or
    negative_timestamp when Python's parser reads them, else None (unparsable)."""

    def reason(value: str) -> str | None:
        try:
            stamp = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        if stamp > latest.to_pydatetime():
            return "future_timestamp"
        return "negative_timestamp" if stamp < dt.datetime(1970, 1, 1, tzinfo=dt.UTC) else None

    return text.map(reason)


def parse_timestamp(values: pd.Series, unit: str, latest: pd.Timestamp) -> Parsed:
    """Timestamps as UTC; negative (before 1970) and later than ``latest`` are flagged."""
    reason = pd.Series(None, index=values.index, dtype=object)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        reason[stamps.isna()] = "missing_timestamp"
    elif unit == "iso":
        missing = _missing(values)
        boolean, container = _types(values)
        text = values.where(~(missing | boolean | container)).astype(object)
        text = text.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        text = text.map(lambda v: str(v) if isinstance(v, str) else v)
        stamps = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        failed = ~missing & ~boolean & ~container & stamps.isna()
        reason[failed] = "unparsable"
        if failed.any():
            outside = _iso_outside(text[failed], latest)
            reason[outside.index] = outside.where(outside.notna(), "unparsable")
        reason[boolean | container] = "wrong_type"
        reason[missing] = "missing_timestamp"
    else:
        numbers, missing, reason = _numbers(values)
        per_second = _UNIT_PER_SECOND[unit]
        # compared as numbers first: a huge value would overflow datetime64
        limit = latest.timestamp() * per_second
        reason[numbers.notna() & (numbers < 0)] = "negative_timestamp"
        reason[numbers.notna() & (numbers > limit)] = "future_timestamp"
        reason[missing] = "missing_timestamp"
        micros = _micros_of(values, numbers.where(reason.isna()), unit)
        stamps = pd.to_datetime(micros, unit="us", utc=True)
        return Parsed(stamps, reason)
    epoch = pd.Timestamp(0, tz="UTC")
    reason[reason.isna() & (stamps < epoch)] = "negative_timestamp"
    reason[reason.isna() & (stamps > latest)] = "future_timestamp"
    return Parsed(stamps.where(reason.isna()), reason)


def parse_event_type(values: pd.Series, allowed: list[str]) -> Parsed:
    text = values.map(lambda v: str(v).strip() if isinstance(v, str) else v)
    reason = pd.Series(None, index=values.index, dtype=object)
    reason[~text.isin(allowed)] = "unknown_event_type"
    return Parsed(text.where(reason.isna()), reason)


def parse_label(values: pd.Series) -> Parsed:
    """A number on every row: empty is missing_label (never 0), NaN and infinities are
    unparsable."""
    numbers, missing, reason = _numbers(values)
    reason[numbers.notna() & ~np.isfinite(numbers)] = "unparsable"
    reason[missing] = "missing_label"
    return Parsed(numbers.where(reason.isna()), reason)


# ---------------------------------------------------------------- validating rows
def renamed(frame: pd.DataFrame, mapping: dict[str, str], source_file: str) -> pd.DataFrame:
    """Platform column names; a mapped column the file lacks is a SourceError."""
    missing = [column for column in mapping.values() if column not in frame.columns]
    if missing:
        raise SourceError(
            f"{source_file} has no column(s) {missing} named in source.columns; "
            f"it has {[escaped(str(c)) for c in frame.columns]}"
        )
    return frame.rename(columns={v: k for k, v in mapping.items()})[list(mapping)]


def stable_category(value) -> int:
    """Integers (and integer text) stay; other strings hash (crc32) to the same integer
    on every machine."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return UNKNOWN_CATEGORY
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, str) and not value.strip():
        return UNKNOWN_CATEGORY
    return zlib.crc32(str(value).encode()) & 0x7FFFFFFF


def allowed_event_types(source: SourceConfig) -> list[str]:
    if source.event_types:
        return list(source.event_types)
    if "event_type" in source.columns:
        return list(EVENT_TYPES)
    return [source.event_type]


def validate_rows(
    rows: RawRows, source: SourceConfig, now: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good, bad): good rows typed (user_id, item_id, event_type, event_timestamp,
    optional category and label column, row_number); bad rows as quarantine records
    (row_number, reason, detail, raw). The first failing check gives a row's reason;
    undecodable bytes in any mapped column come first."""
    if rows.frame.empty and not len(rows.frame.columns):  # no row at all (JSON lines)
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in source.columns})
    else:
        frame = renamed(rows.frame, source.columns, rows.source_file)
    latest = pd.Timestamp(now).tz_convert("UTC") + pd.Timedelta(
        seconds=source.max_clock_skew_seconds
    )
    checks: list[tuple[str, Parsed]] = [(name, parse_text(frame[name])) for name in frame]
    ids = {name: parse_id(frame[name], source.integral_decimal_ids)
           for name in ("user_id", "item_id")}  # fmt: skip
    stamps = parse_timestamp(frame["timestamp"], source.timestamp_unit, latest)
    checks += [*ids.items(), ("timestamp", stamps)]
    if "event_type" in frame:
        checks.append(("event_type", parse_event_type(frame["event_type"],
                                                      allowed_event_types(source))))  # fmt: skip
    label = parse_label(frame[source.label_column]) if source.label_column in frame else None
    if label is not None:
        checks.append((source.label_column, label))
    reason = pd.Series(None, index=frame.index, dtype=object)
    detail = pd.Series(None, index=frame.index, dtype=object)
    for name, parsed in checks:
        first = reason.isna() & parsed.reason.notna()
        if first.any():
            reason[first] = parsed.reason[first]
            detail[first] = parsed.detail(name, frame[name])[first]
    ok = reason.isna().to_numpy()
    good = pd.DataFrame(
        {
            "user_id": ids["user_id"].values[ok].astype("int64"),
            "item_id": ids["item_id"].values[ok].astype("int64"),
            "event_timestamp": stamps.values[ok].dt.floor("us"),
            "event_type": (frame["event_type"][ok].map(lambda v: str(v).strip())
                           if "event_type" in frame else source.event_type),
        },
        index=frame.index[ok],
    )  # fmt: skip
    if "category" in frame:
        good["category"] = frame["category"][ok].map(stable_category).astype("int64")
    if label is not None:
        good[source.label_column] = label.values[ok].astype("float64")
    good["row_number"] = good.index.to_numpy()
    numbers = frame.index[~ok]
    bad = pd.DataFrame(
        {
            "row_number": numbers.to_numpy(dtype="int64"),
            "reason": reason[~ok].to_numpy(),
            "detail": detail[~ok].to_numpy(),
            "raw": rows.raw_of(numbers),
        }
    )
    if rows.rejected:
        rejected = pd.DataFrame(rows.rejected, columns=["row_number", "reason", "detail", "raw"])
        bad = pd.concat([rejected, bad], ignore_index=True) if len(bad) else rejected
    bad["row_number"] = bad["row_number"].astype("int64")
    return good.reset_index(drop=True), bad.sort_values("row_number").reset_index(drop=True)


def value_columns(good: pd.DataFrame) -> list[str]:
    """Columns besides the key that two rows of one event must agree on."""
    skip = {*DEDUPE_KEY, "row_number", "source_file", "event_date"}
    return [c for c in good.columns if c not in skip]


def dedupe(good: pd.DataFrame) -> tuple[pd.DataFrame, int, pd.DataFrame]:
    """(unique rows, exact duplicates dropped, conflicting duplicates).

    Rows are one event when they agree on DEDUPE_KEY; the first seen (file order, then
    row order) is kept. A later row that agrees on every value too is an exact duplicate
    and only counted; one whose label or category differs is returned with the row it
    lost to (``kept_row``, ``kept_file``), for quarantine as conflicting_duplicate, so
    no value is dropped unseen."""
    repeated = good.duplicated(subset=DEDUPE_KEY, keep="first")
    unique = good[~repeated]
    later = good[repeated]
    values = value_columns(good)
    if later.empty or not values:
        return unique.reset_index(drop=True), len(later), later.iloc[0:0]
    first = unique[[*DEDUPE_KEY, *values, "row_number", *(["source_file"] if "source_file"
                   in good else [])]]  # fmt: skip
    joined = later.merge(first, on=DEDUPE_KEY, how="left", suffixes=("", "_kept"))
    joined.index = later.index
    differs = pd.Series(False, index=later.index)
    for column in values:
        differs |= ~_same(joined[column], joined[f"{column}_kept"])
    conflicts = later[differs.to_numpy()].assign(
        kept_row=joined.loc[differs, "row_number_kept"].to_numpy(),
        kept_values=[
            ", ".join(f"{c} {joined.at[i, c + '_kept']!r}" for c in values)
            for i in joined.index[differs.to_numpy()]
        ],
        this_values=[
            ", ".join(f"{c} {later.at[i, c]!r}" for c in values)
            for i in later.index[differs.to_numpy()]
        ],
    )
    if "source_file" in good:
        conflicts["kept_file"] = joined.loc[differs, "source_file_kept"].to_numpy()
    exact = int(len(later) - len(conflicts))
    return unique.reset_index(drop=True), exact, conflicts.reset_index(drop=True)


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a == b) | (a.isna() & b.isna())


def stored_conflicts(
    good: pd.DataFrame, stored: pd.DataFrame, key: list[str], values: dict[str, str]
) -> pd.DataFrame:
    """Rows of ``good`` (row_number, source_file) whose ``key`` a table already holds
    from an earlier ingest with other values: ``values`` maps a column of ``good`` to the
    stored column it must equal. The stored row is kept; each row comes with ``detail``
    (both values), for quarantine as conflicts_with_stored, so a re-delivered event whose
    value changed is seen, not dropped as a duplicate."""
    if good.empty or stored.empty:
        return good.iloc[0:0].assign(detail=pd.Series(dtype=str))
    mine = good[[*key, *values, "row_number", "source_file"]]
    theirs = stored[[*key, *values.values()]].rename(
        columns={v: f"{v}__stored" for v in values.values()}
    )
    joined = mine.merge(theirs, on=key, how="inner")
    differs = pd.Series(False, index=joined.index)
    for column, stored_column in values.items():
        differs |= ~_same(joined[column], joined[f"{stored_column}__stored"])
    rows = joined[differs]
    named = " and ".join([", ".join(key[:-1]), key[-1]] if len(key) > 1 else key)
    detail = [
        f"same {named} as a row stored by an earlier ingest, which is kept ("
        + ", ".join(f"{s} {r[f'{s}__stored']!r}" for s in values.values())
        + "); this row has "
        + ", ".join(f"{s} {r[c]!r}" for c, s in values.items())
        for _, r in rows.iterrows()
    ]
    return rows[["row_number", "source_file"]].assign(detail=detail).reset_index(drop=True)


def conflict_rows(conflicts: pd.DataFrame, raw: list[str]) -> pd.DataFrame:
    """Quarantine records (row_number, reason, detail, raw) of conflicting duplicates."""
    where = (conflicts["kept_file"] if "kept_file" in conflicts
             else pd.Series("this file", index=conflicts.index))  # fmt: skip
    detail = [
        f"same user_id, item_id, event_timestamp and event_type as row {int(row)} of "
        f"{file}, which is kept ({kept}); this row has {this}"
        for row, file, kept, this in zip(conflicts["kept_row"], where, conflicts["kept_values"],
                                         conflicts["this_values"], strict=True)
    ]  # fmt: skip
    return pd.DataFrame({"row_number": conflicts["row_number"].astype("int64").to_numpy(),
                         "reason": "conflicting_duplicate", "detail": detail, "raw": raw})  # fmt: skip


def quarantine_table(bad: pd.DataFrame, source_file: str, ingested_at: dt.datetime,
                     ingest_date: str, file_key: str = "", ingest_run: str = "") -> pa.Table:  # fmt: skip
    frame = bad.assign(source_file=source_file, ingested_at=pd.Timestamp(ingested_at),
                       ingest_date=ingest_date, file_key=file_key, ingest_run=ingest_run)  # fmt: skip
    frame["row_number"] = frame["row_number"].astype("int64")
    frame["raw"] = frame["raw"].map(lambda v: escaped(str(v))[:_MAX_RAW_CHARS])
    frame["detail"] = frame["detail"].map(lambda v: escaped(str(v)))
    return pa.Table.from_pandas(frame[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA,
                                preserve_index=False)  # fmt: skip
