"""Ingest events files through a column mapping: parse, validate, quarantine, dedupe.

Every source row ends in exactly one place: the typed ``events`` rows, or a quarantine
row with a reason code, a readable detail, the source file, its row number and the raw
values. Files are read with every column as text (CSV, JSON lines) or as stored
(Parquet, Delta) and then parsed column by column, so one bad value quarantines one row
instead of failing the file. Only a file that cannot be read at all fails, with the
file's name and the parser's message.

Pure functions: ``read_rows`` (a file -> its raw rows and malformed lines) and
``validate_rows`` (raw rows -> good typed rows, quarantined rows). Committing them is
``vista.pipeline.ingest_source``'s job.
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from vista.config import SourceConfig

# reason code -> what it means; the quarantine table's ``reason`` is one of these
REASONS = {
    "malformed_row": "the line could not be read as a row of the file (wrong field count, "
    "bad quoting, not a JSON object)",
    "missing_id": "user_id or item_id is empty",
    "negative_id": "user_id or item_id is below 0",
    "missing_timestamp": "the timestamp is empty",
    "unparsable": "a value could not be parsed as its column's type",
    "wrong_type": "a value parsed but is of the wrong type (e.g. 1.5 or true as an id)",
    "negative_timestamp": "the timestamp is before 1970-01-01",
    "future_timestamp": "the timestamp is later than the ingest time plus the allowed skew",
    "unknown_event_type": "the event type is empty or not one of source.event_types",
}
DEDUPE_KEY = ["user_id", "item_id", "event_timestamp", "event_type"]
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row_number", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("ingest_date", pa.string()),
    ]
)
TEXT_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".inter": "csv",
                 ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                 ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip
_MAX_RAW_CHARS = 2000


class SourceError(ValueError):
    """A source cannot be read as configured; the message names the file."""


@dataclass
class RawRows:
    """One file's rows as read: ``frame`` indexed by row number (line number for text
    files, header = line 1; 1-based position for Parquet and Delta), plus the lines
    that could not be split into rows."""

    source_file: str
    frame: pd.DataFrame
    malformed: list[tuple[int, str]] = field(default_factory=list)


# ---------------------------------------------------------------- finding files
def source_files(source: SourceConfig, as_of: dt.date | None = None) -> list[Path]:
    """The files (or one Delta table) that ``source.events_path`` names: a file, a
    folder of files, or a glob; ``{date}`` in the path is the run date (YYYY-MM-DD)."""
    pattern = str(source.events_path)
    if "{date}" in pattern:
        if as_of is None:
            raise SourceError(f"events_path {pattern} has {{date}} but no run date was given")
        pattern = pattern.replace("{date}", as_of.isoformat())
    path = Path(pattern)
    if source.format == "delta" or (path / "_delta_log").is_dir() or path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    else:
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise SourceError(f"no events files at {pattern}")
    return files


def source_format(source: SourceConfig, path: Path) -> str:
    if source.format != "auto":
        return source.format
    if (path / "_delta_log").is_dir():
        return "delta"
    fmt = TEXT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SourceError(f"cannot tell the format of {path}; set source.format")
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
def read_rows(path: Path, fmt: str, separator: str = ",") -> RawRows:
    """A file's raw rows; a file that cannot be read at all raises SourceError."""
    if not path.exists():
        raise SourceError(f"events file {path} does not exist")
    try:
        if fmt == "csv":
            rows = _read_csv(path, separator)
        elif fmt == "jsonl":
            rows = _read_jsonl(path)
        elif fmt in ("parquet", "delta"):
            rows = _read_table(path, fmt)
        else:
            raise SourceError(f"unknown format {fmt!r} for {path}")
    except SourceError:
        raise
    except (ValueError, OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path} as {fmt}: {exc}") from exc
    if rows.frame.empty and rows.malformed:
        number, text = rows.malformed[0]
        raise SourceError(
            f"cannot read {path} as {fmt}: none of its {len(rows.malformed)} rows parses "
            f"(row {number}: {text[:200]!r})"
        )
    return rows


def _read_csv(path: Path, separator: str) -> RawRows:
    import pyarrow.csv as pcsv

    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader([handle.readline()], delimiter=separator), [])
    if not any(header):
        raise SourceError(f"cannot read {path} as csv: it has no header line")
    malformed: list[tuple[int, str]] = []

    def skip(row) -> str:
        malformed.append((int(row.number or -1), row.text))
        return "skip"

    table = pcsv.read_csv(
        path,
        # one thread: the parser then knows each invalid row's line number
        read_options=pcsv.ReadOptions(use_threads=False, block_size=1 << 24),
        parse_options=pcsv.ParseOptions(delimiter=separator, invalid_row_handler=skip),
        convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in header}),
    )
    bad_lines = {n for n, _ in malformed}
    lines, line = [], 2
    while len(lines) < table.num_rows:
        if line not in bad_lines:
            lines.append(line)
        line += 1
    frame = table.to_pandas()
    frame.index = pd.Index(lines, dtype="int64")
    return RawRows(str(path), frame, malformed)


def _read_jsonl(path: Path) -> RawRows:
    records, numbers, malformed = [], [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                malformed.append((number, line.rstrip("\n")))
                continue
            if not isinstance(record, dict):
                malformed.append((number, line.rstrip("\n")))
                continue
            records.append(record)
            numbers.append(number)
    if not records:
        return RawRows(str(path), pd.DataFrame(), malformed)
    frame = pd.DataFrame.from_records(records, index=pd.Index(numbers, dtype="int64"))
    frame = frame.astype(object) if len(frame.columns) else frame
    return RawRows(str(path), frame, malformed)


def _read_table(path: Path, fmt: str) -> RawRows:
    if fmt == "delta":
        from deltalake import DeltaTable

        from spark_jobs.lake import arrow_of

        table = arrow_of(DeltaTable(str(path)))
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return RawRows(str(path), frame)


# ---------------------------------------------------------------- parsing columns
@dataclass
class Parsed:
    """A parsed column: values (NaN/NaT where bad) and, per row, a reason and detail."""

    values: pd.Series
    reason: pd.Series  # object: a REASONS key or None

    def detail(self, name: str, raw: pd.Series) -> pd.Series:
        return pd.Series(
            [None if not isinstance(r, str) else DETAILS[r].format(name=name, value=_show(v)) for r, v in
             zip(self.reason, raw, strict=True)], index=raw.index, dtype=object,
        )  # fmt: skip


DETAILS = {
    "missing_id": "{name} is empty",
    "negative_id": "{name} {value} is negative",
    "missing_timestamp": "{name} is empty",
    "unparsable": "{name} {value} does not parse as this column's type",
    "wrong_type": "{name} {value} has the wrong type (an integer id, a number or a "
    "timestamp is expected)",
    "negative_timestamp": "{name} {value} is before 1970-01-01",
    "future_timestamp": "{name} {value} is later than the ingest time plus "
    "source.max_clock_skew_seconds",
    "unknown_event_type": "{name} {value} is not one of the allowed event types "
    "(source.event_types)",
}


def _show(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text[:80]


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
    return kinds.isin([bool, np.bool_]), kinds.isin([list, dict, tuple])


def _numbers(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(numbers as float64, missing, reason) for a column meant to hold numbers."""
    missing = _missing(values)
    boolean, container = _types(values)
    clean = values.where(~(missing | boolean | container))
    if clean.dtype == object:
        clean = clean.map(lambda v: v.strip() if isinstance(v, str) else v)
    numbers = pd.to_numeric(clean, errors="coerce").astype("float64")
    reason = pd.Series(None, index=values.index, dtype=object)
    reason[~missing & numbers.isna()] = "unparsable"
    reason[boolean | container] = "wrong_type"
    numbers[boolean | container] = np.nan
    return numbers, missing, reason


def parse_id(values: pd.Series) -> Parsed:
    if pd.api.types.is_integer_dtype(values) and not values.isna().any():
        numbers = values.astype("float64")
        reason = pd.Series(None, index=values.index, dtype=object)
        reason[numbers < 0] = "negative_id"
        return Parsed(numbers, reason)
    numbers, missing, reason = _numbers(values)
    fractional = numbers.notna() & (numbers % 1 != 0)
    reason[fractional] = "wrong_type"
    reason[numbers.notna() & ~fractional & (numbers < 0)] = "negative_id"
    reason[missing] = "missing_id"
    return Parsed(numbers.where(reason.isna()), reason)


_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}


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
        stamps = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        reason[~missing & stamps.isna()] = "unparsable"
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
        micros = (numbers.where(reason.isna()) * (1_000_000 // per_second)).round()
        stamps = pd.to_datetime(micros, unit="us", utc=True)
        return Parsed(stamps, reason)
    epoch = pd.Timestamp(0, tz="UTC")
    reason[reason.isna() & (stamps < epoch)] = "negative_timestamp"
    reason[reason.isna() & (stamps > latest)] = "future_timestamp"
    return Parsed(stamps.where(reason.isna()), reason)


def parse_event_type(values: pd.Series, allowed: list[str]) -> Parsed:
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    reason = pd.Series(None, index=values.index, dtype=object)
    reason[~text.isin(allowed)] = "unknown_event_type"
    return Parsed(text.where(reason.isna()), reason)


# ---------------------------------------------------------------- validating rows
def renamed(frame: pd.DataFrame, mapping: dict[str, str], source_file: str) -> pd.DataFrame:
    """Platform column names; a mapped column the file lacks is a SourceError."""
    missing = [column for column in mapping.values() if column not in frame.columns]
    if missing:
        raise SourceError(
            f"{source_file} has no column(s) {missing} named in source.columns; "
            f"it has {list(frame.columns)}"
        )
    return frame.rename(columns={v: k for k, v in mapping.items()})[list(mapping)]


def allowed_event_types(source: SourceConfig) -> list[str]:
    if source.event_types:
        return list(source.event_types)
    if "event_type" in source.columns:
        from datasets.synthetic import EVENT_TYPES

        return list(EVENT_TYPES)
    return [source.event_type]


def validate_rows(
    rows: RawRows, source: SourceConfig, now: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good, bad): good rows typed (user_id, item_id, event_type, event_timestamp,
    optional category and label column, row_number); bad rows as quarantine records
    (row_number, reason, detail, raw). The first failing check gives a row's reason."""
    frame = renamed(rows.frame, source.columns, rows.source_file)
    latest = pd.Timestamp(now).tz_convert("UTC") + pd.Timedelta(
        seconds=source.max_clock_skew_seconds
    )
    checks: list[tuple[str, Parsed]] = [
        ("user_id", parse_id(frame["user_id"])),
        ("item_id", parse_id(frame["item_id"])),
        ("timestamp", parse_timestamp(frame["timestamp"], source.timestamp_unit, latest)),
    ]
    if "event_type" in frame:
        checks.append(("event_type", parse_event_type(frame["event_type"],
                                                      allowed_event_types(source))))  # fmt: skip
    if source.label_column in frame:
        numbers, _missing_label, reason = _numbers(frame[source.label_column])
        checks.append((source.label_column, Parsed(numbers, reason)))
    reason = pd.Series(None, index=frame.index, dtype=object)
    detail = pd.Series(None, index=frame.index, dtype=object)
    for name, parsed in checks:
        first = reason.isna() & parsed.reason.notna()
        reason[first] = parsed.reason[first]
        detail[first] = parsed.detail(name, frame[name])[first]
    bad_mask = reason.notna().to_numpy()
    good = pd.DataFrame(
        {
            "user_id": checks[0][1].values[~bad_mask].astype("int64"),
            "item_id": checks[1][1].values[~bad_mask].astype("int64"),
            "event_timestamp": checks[2][1].values[~bad_mask].dt.floor("us"),
            "event_type": (frame["event_type"][~bad_mask].map(str.strip)
                           if "event_type" in frame else source.event_type),
        },
        index=frame.index[~bad_mask],
    )  # fmt: skip
    if "category" in frame:
        from datasets.loaders import stable_category

        good["category"] = frame["category"][~bad_mask].map(stable_category).astype("int64")
    if source.label_column in frame:
        good[source.label_column] = checks[-1][1].values[~bad_mask]
    good["row_number"] = good.index.to_numpy()
    bad = pd.DataFrame(
        {
            "row_number": frame.index[bad_mask].to_numpy(),
            "reason": reason[bad_mask].to_numpy(),
            "detail": detail[bad_mask].to_numpy(),
            "raw": [_raw_json(r) for r in rows.frame[bad_mask].to_dict(orient="records")],
        }
    )
    if rows.malformed:
        malformed = pd.DataFrame(
            {
                "row_number": [n for n, _ in rows.malformed],
                "reason": "malformed_row",
                "detail": [f"line {n} does not split into the file's columns"
                           for n, _ in rows.malformed],
                "raw": [text[:_MAX_RAW_CHARS] for _, text in rows.malformed],
            }
        )  # fmt: skip
        bad = pd.concat([malformed, bad], ignore_index=True)
    return good.reset_index(drop=True), bad.sort_values("row_number").reset_index(drop=True)


def _raw_json(record: dict) -> str:
    return json.dumps(record, default=str)[:_MAX_RAW_CHARS]


def dedupe(good: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows unique on DEDUPE_KEY (the first seen wins) and how many were dropped."""
    unique = good.drop_duplicates(subset=DEDUPE_KEY, keep="first")
    return unique.reset_index(drop=True), len(good) - len(unique)


def quarantine_table(bad: pd.DataFrame, source_file: str, ingested_at: dt.datetime,
                     ingest_date: str) -> pa.Table:  # fmt: skip
    frame = bad.assign(source_file=source_file, ingested_at=pd.Timestamp(ingested_at),
                       ingest_date=ingest_date)  # fmt: skip
    frame["row_number"] = frame["row_number"].astype("int64")
    return pa.Table.from_pandas(frame[QUARANTINE_SCHEMA.names], schema=QUARANTINE_SCHEMA,
                                preserve_index=False)  # fmt: skip
