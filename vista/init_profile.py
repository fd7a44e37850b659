"""`vista init-profile EVENTS_FILE`: a profile for one's own events, proposed from a
sample of the file and checked before it is written.

What it proposes, and from what:
- the column mapping (``source.columns``): user, item and timestamp columns from the
  header's names, confirmed by their values (integer ids, epoch numbers or ISO text);
  the category, event type and label columns when the header names them;
- ``source.timestamp_unit``: epoch seconds, milliseconds, microseconds or nanoseconds
  from the numbers' magnitude (the one unit that puts them between 1971 and next year),
  or ``iso`` for ISO 8601 text;
- the label rule: an explicit 0/1 label or click column (label = value >= 1), else a
  rating column with the top 30% of its scale as positive, else none (events only);
- the split: a global ``cutoff_date`` that leaves the last ~15% of events as the
  impressions, unless most of those events belong to users with no history before the
  cutoff (users active in different periods): then a per-user split;
- ``ranker.eval_days`` (the last third of the impression days) and
  ``features.ttl_days`` (from the snapshot to the last impression).

The proposal is written as YAML with a comment on every choice, after it has been
loaded with ``load_config`` as ``--profile`` will load it and the sample has gone
through the loader (validation, categories, the split) with the windows checked.
The file is read as the loader reads it; what each column holds is judged on a uniform
sample of its rows, the split on every row of a random set of users (about as many
rows: a row sample would thin each user's events). Files up to ``SAMPLE_ROWS`` rows are
profiled whole.

Long because each proposed setting carries the evidence it was drawn from and the
comment written beside it in the YAML; the proposals share one sample and one check.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from vista.core.errors import ExpectedError

SAMPLE_ROWS = 200_000
# the share of events a global cutoff leaves as impressions (aimed at; 10-20% is fine)
IMPRESSION_SHARE = 0.15
# below this share of the impressions' events from users with a history before the
# cutoff, users are active in different periods: a per-user split instead
MIN_USERS_WITH_HISTORY = 0.5
# a rating at or above this point of its scale (min + share x range) is a positive
RATING_TOP = 0.7
SEPARATORS = (",", "\t", ";", "|")
MAX_EVENT_TYPES = 50
EARLIEST = pd.Timestamp("1971-01-01", tz="UTC")
_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}

# header names (lower case, only letters and digits, RecBole's ":type" dropped) per role
NAMES = {
    "user_id": {"user", "userid", "uid", "users", "customer", "customerid", "custid",
                "visitor", "visitorid", "member", "memberid", "account", "accountid",
                "client", "clientid", "reviewerid", "buyer", "buyerid", "person", "personid",
                "viewer", "viewerid", "reader", "readerid", "listener", "listenerid"},
    "item_id": {"item", "itemid", "iid", "items", "product", "productid", "movie", "movieid",
                "sku", "skuid", "asin", "article", "articleid", "track", "trackid", "song",
                "songid", "video", "videoid", "content", "contentid", "business",
                "businessid", "book", "bookid", "isbn", "goods", "goodsid", "offer",
                "offerid", "recipe", "recipeid", "ad", "adid", "post", "postid", "news",
                "newsid", "doc", "docid", "poi", "poiid", "artist", "artistid"},
    "timestamp": {"timestamp", "ts", "time", "datetime", "date", "eventtime",
                  "eventtimestamp", "createdat", "created", "unixtime", "unixreviewtime",
                  "clicktime", "occurredat", "when", "epoch", "eventdate", "timeofevent"},
    "category": {"category", "categoryid", "cat", "catid", "categories", "genre", "genres",
                 "class", "department", "departmentid", "aisle", "aisleid", "section",
                 "topic", "topicid", "categorycode"},
    "event_type": {"eventtype", "event", "action", "actiontype", "behavior", "behaviour",
                   "behaviortype", "behaviourtype", "interaction", "interactiontype",
                   "eventname"},
    "label": {"label", "click", "clicked", "isclick", "clicks", "target", "y", "purchased",
              "ispurchase", "converted", "conversion", "reordered", "like", "liked",
              "isliked", "watched", "outcome"},
    "rating": {"rating", "ratings", "stars", "star", "score", "rate", "overall",
               "reviewscore", "grade"},
}  # fmt: skip


class InitProfileError(ExpectedError, ValueError):
    """The events file cannot be profiled as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Choice:
    """One proposed setting (dotted name, as in the profile) and why it was chosen."""

    setting: str
    value: Any
    why: str


@dataclass
class Proposal:
    settings: dict[str, Any]  # the profile file's content
    choices: list[Choice] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # printed, and written at the top

    def choose(self, setting: str, value: Any, why: str) -> None:
        node = self.settings
        *parents, last = setting.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        self.choices.append(Choice(setting, value, why))


# ---------------------------------------------------------------- reading the sample
def sniff_separator(text: str) -> str:
    """The separator that splits the first lines into the same number (> 1) of fields,
    the most fields winning; a comma when none does."""
    lines = [line for line in text.splitlines()[:50] if line.strip()][:20]
    best, best_fields = ",", 1
    for sep in SEPARATORS:
        counts = {len(row) for row in csv.reader(lines, delimiter=sep)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = sep, fields
    return best


def read_file(path: Path, fmt: str | None, separator: str | None):
    """(the file's rows as the loader reads them, its format, its separator)."""
    from sources.ingest import decoded, file_bytes, format_of_name, read_rows

    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise InitProfileError(f"events file {path} {what}: give init-profile one file of "
                               "the data (the profile's source.events_path may then name "
                               "its folder or a glob)")  # fmt: skip
    fmt = fmt or format_of_name(path)
    if fmt is None:
        raise InitProfileError(f"cannot tell the format of {path} from its name: pass "
                               "--format csv, jsonl or parquet")  # fmt: skip
    if fmt == "csv" and separator is None:
        separator = sniff_separator(decoded(file_bytes(path)[: 1 << 20]))
    return read_rows(path, fmt, separator or ","), fmt, separator or ","


def row_sample(rows, n: int, seed: int = 0):
    """Up to ``n`` rows drawn uniformly (for what each column holds), in file order, with
    their row numbers and raw lines as the loader reports them."""
    from sources.ingest import RawRows

    frame = rows.frame
    if len(frame) > n:
        frame = frame.sample(n=n, random_state=seed).sort_index()
    return RawRows(rows.source_file, frame, [], rows.lines)


def user_sample(rows, user_column: str, n: int):
    """Every row of a random set of users, about ``n`` rows in all: the split is judged
    on whole users (a row sample would thin each user's events and hide their history)."""
    from sources.ingest import RawRows

    frame = rows.frame
    if len(frame) <= n:
        return RawRows(rows.source_file, frame, [], rows.lines)
    users = frame[user_column].map(lambda v: str(v).strip())
    counts = users.value_counts()
    # a stable shuffle of the users: the same file gives the same sample
    order = pd.util.hash_pandas_object(counts.index.to_series(), index=False).argsort()
    shuffled = counts.iloc[order.to_numpy()]
    keep = shuffled.index[: max(1, int(np.searchsorted(shuffled.cumsum().to_numpy(), n)) + 1)]
    return RawRows(rows.source_file, frame[users.isin(keep)], [], rows.lines)


# ---------------------------------------------------------------- what each column holds
def normalized(name: str) -> str:
    """A header name as NAMES holds it: RecBole's ``:type`` dropped, lower case, only
    letters and digits (``user_id:token`` -> ``userid``, ``UserId`` -> ``userid``)."""
    return re.sub(r"[^a-z0-9]", "", str(name).split(":")[0].lower())


def _present(values: pd.Series) -> pd.Series:
    kinds = values.map(type)
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    empty = text.map(lambda v: v is None or v == "" or (isinstance(v, float) and np.isnan(v)))
    return values[~empty.astype(bool) & ~kinds.isin([bool, list, dict, tuple, np.ndarray])]


def numbers(values: pd.Series) -> pd.Series:
    """The present values as float64 (NaN where one is not a number)."""
    present = _present(values)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.Series(np.nan, index=present.index)
    cleaned = present.map(lambda v: v.strip() if isinstance(v, str) else v)
    return pd.to_numeric(cleaned, errors="coerce").astype("float64")


def id_share(values: pd.Series) -> float:
    """Share of the present values that the loader reads as ids (integers 0..2**63-1)."""
    from sources.ingest import parse_id

    present = _present(values)
    if present.empty:
        return 0.0
    return float(parse_id(present.reset_index(drop=True)).reason.isna().mean())


def iso_share(values: pd.Series) -> float:
    """Share of the present values that are ISO 8601 times (all of a datetime column)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return 1.0
    present = _present(values)
    text = present[present.map(lambda v: isinstance(v, str))].astype(str).str.strip()
    if present.empty or text.empty or numbers(text).notna().mean() > 0.5:
        return 0.0
    stamps = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    return float(stamps.notna().sum() / len(present))


def example(values: pd.Series) -> str:
    present = _present(values)
    return repr(present.iloc[0]) if len(present) else "nothing"


def timestamp_unit(values: pd.Series, now: pd.Timestamp) -> tuple[str, str] | None:
    """(unit, why) for a timestamp column, or None when its values are no epoch numbers
    (in a unit that puts them between 1971 and a year from now) nor ISO 8601 text."""
    if iso_share(values) >= 0.99:
        kind = ("a timestamp column" if pd.api.types.is_datetime64_any_dtype(values.dtype)
                else f"ISO 8601 text, e.g. {example(values)}")  # fmt: skip
        return "iso", kind
    found = numbers(values).dropna()
    if found.empty or len(found) < 0.99 * len(_present(values)):
        return None
    median = float(found.median())
    latest = now + pd.Timedelta(days=365)
    for unit, per_second in _UNITS.items():
        if EARLIEST.timestamp() * per_second <= median <= latest.timestamp() * per_second:
            when = pd.Timestamp(median / per_second, unit="s", tz="UTC")
            why = f"median {median:,.0f} is {when:%Y-%m-%d} in {_UNIT_WORDS[unit]}"
            finer = {"s": "ms", "ms": "us", "us": "ns"}.get(unit)
            if finer is not None:  # the unit a reader could take it for by mistake
                there = pd.Timestamp(median / _UNITS[finer], unit="s", tz="UTC")
                why += f" (in {_UNIT_WORDS[finer]} it would be {there:%Y-%m-%d})"
            return unit, why
    return None


# ---------------------------------------------------------------- the column mapping
def _named(columns: Iterable[str], role: str, taken: set[str]) -> str | None:
    return next((c for c in columns if c not in taken and normalized(c) in NAMES[role]), None)


def _id_column(frame: pd.DataFrame, role: str, taken: set[str]) -> tuple[str, str]:
    """(column, why) for user_id or item_id: a column the header names, whose values are
    integer ids; else the first integer column left, for the user to review."""
    what = role.removesuffix("_id")
    named = _named(frame.columns, role, taken)
    if named is not None:
        share = id_share(frame[named])
        if share < 0.99:
            raise InitProfileError(
                f"column {named!r} names the {what} but {1 - share:.0%} of its sampled values "
                f"are no integer ids (e.g. {example(frame[named])}): the platform's ids are "
                f"integers 0..2**63-1; map the {what}s to integers in the file first"
            )
        return named, f"the header names the {what}; {share:.0%} integer ids"
    for column in frame.columns:
        if column in taken or _present(frame[column]).nunique() < 2:
            continue
        if id_share(frame[column]) >= 0.99:
            return column, (f"no header name says {what}: the first integer column left "
                            "(review this)")  # fmt: skip
    raise InitProfileError(
        f"no column of the file holds the {what} ids: none is named like one (e.g. "
        f"{sorted(NAMES[role])[:4]}) and holds integers; the header has "
        f"{list(frame.columns)[:12]} (a file without a header line: add one)"
    )


def _timestamp_column(frame: pd.DataFrame, taken: set[str], now) -> tuple[str, str, str]:
    """(column, unit, why) of the event times."""
    named = _named(frame.columns, "timestamp", taken)
    candidates = [named] if named is not None else [c for c in frame.columns if c not in taken]
    for column in candidates:
        found = timestamp_unit(frame[column], now)
        if found is not None:
            how = "the header names the time" if column == named else \
                "no header name says time: the first column of epoch numbers or ISO text"  # fmt: skip
            return column, found[0], f"{how}; {found[1]}"
    if named is not None:
        raise InitProfileError(
            f"column {named!r} names the time but holds neither epoch numbers (seconds, ms, "
            f"us or ns since 1970, between 1971 and next year) nor ISO 8601 text (e.g. "
            f"{example(frame[named])}): convert the times, or set source.timestamp_unit "
            "yourself in a profile"
        )
    raise InitProfileError(f"no column holds event times (epoch numbers or ISO 8601 text); the "
                           f"header has {list(frame.columns)[:12]}")  # fmt: skip


def label_rule(frame: pd.DataFrame, taken: set[str]) -> tuple[str, str, float, str] | None:
    """(platform name, column, threshold, why): an explicit 0/1 label column (label =
    value >= 1), else a rating column (label = the top of its scale), else None."""
    for role in ("label", "rating"):
        column = _named(frame.columns, role, taken)
        if column is None:
            continue
        values = numbers(frame[column])
        present = len(_present(frame[column]))
        if values.notna().sum() < 0.99 * max(present, 1):
            continue  # not numbers: the loader could not read it as a label
        values = values.dropna()
        low, high = float(values.min()), float(values.max())
        if role == "label" or set(values.unique()) <= {0.0, 1.0}:
            positive = float((values >= 1).mean())
            return "label", column, 1.0, (f"an explicit label column (values "
                                          f"{low:g}..{high:g}): label = {column!r} >= 1; "
                                          f"{positive:.0%} of the sample positive")  # fmt: skip
        levels = np.sort(values.unique())
        point = low + RATING_TOP * (high - low)
        threshold = float(levels[levels >= point - 1e-9][0])
        positive = float((values >= threshold).mean())
        why = (f"a rating column (scale {low:g}..{high:g}): label = {column!r} >= "
               f"{threshold:g}, the top {1 - RATING_TOP:.0%} of the scale; {positive:.0%} of "
               "the sample positive")  # fmt: skip
        return "rating", column, threshold, why
    return None


def propose_columns(frame: pd.DataFrame, proposal: Proposal, now) -> dict[str, str]:
    """The mapping (platform name -> file column), each choice recorded with why."""
    names = [str(c).strip() for c in frame.columns]
    if sum(bool(re.fullmatch(r"[-+0-9.eE:]+", n)) for n in names) * 2 >= len(names):
        raise InitProfileError(f"the first line {names[:8]} is data, not a header: the loader "
                               "needs a header line naming the columns; add one")  # fmt: skip
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InitProfileError(f"the header names columns {repeated} more than once: give each "
                               "column its own name")  # fmt: skip
    taken: set[str] = set()
    mapping: dict[str, str] = {}
    for role in ("user_id", "item_id"):
        column, why = _id_column(frame, role, taken)
        mapping[role] = column
        taken.add(column)
        proposal.choose(f"source.columns.{role}", column, why)
    column, unit, why = _timestamp_column(frame, taken, now)
    mapping["timestamp"] = column
    taken.add(column)
    proposal.choose("source.columns.timestamp", column, "the event time")
    proposal.choose("source.timestamp_unit", unit, why)
    category = _named(frame.columns, "category", taken)
    if category is not None:
        distinct = _present(frame[category]).nunique()
        mapping["category"] = category
        taken.add(category)
        proposal.choose("source.columns.category", category,
                        f"the header names a category; {distinct:,} distinct values (text is "
                        "hashed to stable integers)")  # fmt: skip
    kind = _named(frame.columns, "event_type", taken)
    if kind is not None:
        types = sorted({str(v).strip() for v in _present(frame[kind])})
        if 0 < len(types) <= MAX_EVENT_TYPES:
            mapping["event_type"] = kind
            taken.add(kind)
            proposal.choose("source.columns.event_type", kind, "the header names the event type")
            proposal.choose("source.event_types", types,
                            "every event type in the sample (a type missing here is "
                            "quarantined as unknown_event_type: add it)")  # fmt: skip
    label = label_rule(frame, taken)
    if label is None:
        proposal.notes.append(
            "no label column (a 0/1 label or click column, or a rating): events only. "
            "Histories and summaries run; the ranker needs labelled impressions: map a "
            "numeric column in source.columns and name it in source.label_column"
        )
    else:
        name, column, threshold, why = label
        mapping[name] = column
        taken.add(column)
        proposal.choose(f"source.columns.{name}", column, "the label's column")
        proposal.choose("source.label_column", name, why)
        proposal.choose("source.label_threshold", threshold, f"positive: {name} >= {threshold:g}")
    if "event_type" not in mapping:
        constant = "rating" if label is not None and label[0] == "rating" else "view"
        proposal.choose("source.event_type", constant, "every row's event type (no column "
                        "holds one)")  # fmt: skip
    left = [c for c in frame.columns if c not in taken]
    if left:
        proposal.notes.append(f"left out (not mapped): {', '.join(map(str, left))}")
    return mapping


# ---------------------------------------------------------------- split and windows
@dataclass(frozen=True)
class SplitChoice:
    split: str  # global or per_user
    cutoff: dt.date | None
    impression_share: float  # of the events on or after the cutoff
    with_history: float  # share of those from users with an event before it
    impression_days: int  # days with events on or after the cutoff
    why: str


def global_cutoff(stamps: pd.Series, share: float = IMPRESSION_SHARE) -> dt.date:
    """The day (UTC) that leaves the share of events on or after it nearest ``share``,
    with at least one day of history before it and two days of impressions from it on."""
    dates = stamps.dt.tz_convert("UTC").dt.floor("D")
    per_day = dates.value_counts().sort_index()
    if len(per_day) < 3:
        first, last = per_day.index[0].date(), per_day.index[-1].date()
        raise InitProfileError(
            f"the sampled events fall on {len(per_day)} day(s) ({first} .. {last}): a split "
            "needs days of history before the snapshot and at least 2 days of impressions "
            "after it; profile a file with more days of events"
        )
    after = per_day[::-1].cumsum()[::-1] / per_day.sum()  # share on or after each day
    allowed = after.iloc[1:-1]  # history before it, 2 impression days from it on
    return allowed.index[int(np.argmin(np.abs(allowed.to_numpy() - share)))].date()


def choose_split(good: pd.DataFrame, has_label: bool) -> SplitChoice:
    """Global at the proposed cutoff, unless most impressions' events come from users
    with no history before it (and a label lets a per-user split make impressions)."""
    cutoff = global_cutoff(good["event_timestamp"])
    at = pd.Timestamp(cutoff, tz="UTC")
    later = good["event_timestamp"] >= at
    earlier_users = set(good.loc[~later, "user_id"].unique())
    with_history = float(good.loc[later, "user_id"].isin(earlier_users).mean())
    days = good.loc[later, "event_timestamp"].dt.floor("D").nunique()
    share = float(later.mean())
    spans = good.groupby("user_id")["event_timestamp"].agg(["min", "max"])
    user_days = float(((spans["max"] - spans["min"]) / pd.Timedelta(days=1)).median())
    data_days = (good["event_timestamp"].max() - good["event_timestamp"].min()) / pd.Timedelta(
        days=1
    )
    found = (f"a cutoff at {cutoff} leaves {share:.1%} of the events on or after it, "
             f"{with_history:.0%} of them from users with history before it")  # fmt: skip
    if with_history >= MIN_USERS_WITH_HISTORY or not has_label:
        why = f"{found}: one snapshot for everyone"
        if with_history < MIN_USERS_WITH_HISTORY:
            why += " (a per-user split would suit these users better, but needs a label column)"
        return SplitChoice("global", cutoff, share, with_history, days, why)
    why = (f"{found}: users are active in different periods (a user's events span a median "
           f"{user_days:,.1f} days of the data's {data_days:,.0f}), so each user's last "
           "events are that user's impressions instead")  # fmt: skip
    return SplitChoice("per_user", None, share, with_history, days, why)


def propose_split(good: pd.DataFrame, proposal: Proposal, has_label: bool) -> SplitChoice:
    """The split, the evaluation window and the ttl, recorded in ``proposal``."""
    choice = choose_split(good, has_label)
    proposal.choose("source.split", choice.split, choice.why)
    if choice.split == "global":
        last = good["event_timestamp"].max().tz_convert("UTC").date()
        ttl = (last - choice.cutoff).days + 1
        proposal.choose("source.cutoff_date", choice.cutoff.isoformat(),
                        "the snapshot: earlier events are the history, later ones the "
                        f"labelled impressions ({choice.impression_share:.1%} of the events)")  # fmt: skip
        eval_days = max(1, choice.impression_days // 3)
        proposal.choose("ranker.eval_days", eval_days,
                        f"the last third of the {choice.impression_days} days with impressions "
                        "evaluate, the rest train")  # fmt: skip
        proposal.choose("features.ttl_days", ttl,
                        f"the last event ({last}) falls within {ttl} days of the snapshot, "
                        "and a summary is joined to impressions within the ttl")  # fmt: skip
        return choice
    for setting, value, why in (
        ("source.per_user_share", 0.2, "each user's last 20% of events are held out"),
        ("source.min_user_events", 5, "users with fewer events are not split"),
        ("source.short_users", "history", "their events stay history (no labels from them)"),
        ("source.per_user_days", 5, "the held-out events are laid on 5 days after the "
         "snapshot, in each user's order"),
        ("source.cutoff_date", None, "the snapshot: the day after the last event kept as "
         "history"),
        ("ranker.eval_days", 1, "the last of those days (each user's last events) evaluates"),
        ("features.ttl_days", 14, "covers source.per_user_days"),
    ):  # fmt: skip
        proposal.choose(setting, value, why)
    return choice


# ---------------------------------------------------------------- writing the profile
def _scalar(value: Any) -> str:
    """A YAML scalar or flow list: plain when YAML reads it back as the same text, else
    JSON (which is YAML: quotes and escapes as needed)."""
    plain = isinstance(value, str) and re.fullmatch(r"[A-Za-z_./][A-Za-z0-9_./-]*", value)
    # yes, null or .inf would be read back as a bool, None or a float
    if plain and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def render_profile(settings: dict[str, Any], why: dict[str, str], header: list[str]) -> str:
    """The profile as YAML, each setting under a comment that says why it was chosen."""
    lines = [f"# {line}".rstrip() for text in header for line in textwrap.wrap(text, 86) or [""]]

    def emit(node: dict[str, Any], indent: int, path: str) -> None:
        pad = " " * indent
        for key, value in node.items():
            dotted = f"{path}.{key}" if path else key
            if why.get(dotted):
                lines.extend(f"{pad}# {line}" for line in textwrap.wrap(why[dotted], 88 - indent))
            if isinstance(value, dict):
                lines.append(f"{pad}{_scalar(key)}:")
                emit(value, indent + 2, dotted)
            else:
                lines.append(f"{pad}{_scalar(key)}: {_scalar(value)}")

    emit(settings, 0, "")
    return "\n".join(lines) + "\n"


def _relative(path: Path, folder: Path) -> str:
    """``path`` from ``folder`` when it lies below it (the profile moves with its data),
    else absolute."""
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())


# ---------------------------------------------------------------- the command
@dataclass(frozen=True)
class InitResult:
    out: Path
    profile: str
    rows_in_file: int
    rows_sampled: int
    file_format: str
    separator: str
    choices: list[Choice]
    notes: list[str]
    checked: dict[str, Any]

    def lines(self) -> list[str]:
        """What was chosen and why, as the CLI prints it."""
        sep = f", separator {json.dumps(self.separator)}" if self.file_format == "csv" else ""
        sampled = ("all of them" if self.rows_sampled == self.rows_in_file
                   else f"{self.rows_sampled:,}: every row of a random set of users")  # fmt: skip
        out = [f"read {self.rows_in_file:,} rows ({self.file_format}{sep}); profiled {sampled}"]
        out += [f"  {c.setting}: {_scalar(c.value)}" + (f"  ({c.why})" if c.why else "")
                for c in self.choices]  # fmt: skip
        out += [f"  note: {note}" for note in self.notes]
        c = self.checked
        out.append(
            f"checked: the profile loads, and the sample goes through the loader: "
            f"{c['history_events']:,} history events, {c['impressions']:,} labelled impressions"
            f" on {c['impression_days']} day(s), {c['quarantined']:,} row(s) quarantined"
            + (f" ({c['quarantined_by_reason']})" if c["quarantined"] else "")
        )
        out.append(f"wrote {self.out} (profile {self.profile!r}): review it, then "
                   f"`vista ingest-events -p {self.out}` ingests the file and `vista run -p "
                   f"{self.out}` runs the pipeline")  # fmt: skip
        return out


def check_profile(path: Path, sample, now: dt.datetime) -> dict[str, Any]:
    """Load the written profile as --profile does and put the sample through the loader:
    validation, categories, dedupe and the split, then the ranker's windows. Returns what
    the sample became."""
    from sources.ingest import dedupe, validate_rows
    from sources.loaders import read_items, split_source, with_categories
    from vista.core.config import load_config

    cfg = load_config(str(path), environ={})
    source = cfg.source
    good, bad = validate_rows(sample, source, now)
    if good.empty:
        reasons = bad["reason"].value_counts().head(3).to_dict()
        raise InitProfileError(f"no row of the sample passes the loader's checks ({reasons}): "
                               "the proposed mapping does not fit the file")  # fmt: skip
    frame, _, _ = dedupe(with_categories(good, read_items(source)))
    split = split_source(frame, source)
    impressions = split.impressions
    days = [] if impressions is None else sorted(impressions["impression_date"].unique())
    eval_days = cfg.ranker.eval_days
    if impressions is not None and len(days) <= eval_days:
        from vista.pipeline import windows_problem

        as_of = split.as_of or source.cutoff_date
        raise InitProfileError(f"the sample: {windows_problem(days, eval_days, as_of)}")
    return {
        "history_events": len(split.events),
        "impressions": 0 if impressions is None else len(impressions),
        "impression_days": len(days),
        "quarantined": len(bad),
        "quarantined_by_reason": bad["reason"].value_counts().to_dict(),
        "as_of": (split.as_of or source.cutoff_date),
    }


def init_profile(
    events_file: Path,
    out: Path | None = None,
    fmt: str | None = None,
    separator: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    force: bool = False,
    now: dt.datetime | None = None,
) -> InitResult:
    """Propose, check and write a profile for ``events_file`` (see the module docstring)."""
    from sources.ingest import validate_rows
    from vista.core.config import SourceConfig

    now = now or dt.datetime.now(dt.UTC)
    events_file = Path(events_file)
    out = Path(out) if out is not None else Path(f"{events_file.name.split('.')[0]}.yaml")
    if not out.name.endswith((".yaml", ".yml")):
        raise InitProfileError(f"--out {out} must end in .yaml or .yml (how --profile tells a "
                               "file from a name in conf/)")  # fmt: skip
    if out.exists() and not force:
        raise InitProfileError(f"{out} exists: pass --force to replace it, or another --out")
    given_format, given_separator = fmt, separator
    rows, fmt, separator = read_file(events_file, fmt, separator)
    if rows.frame.empty:
        raise InitProfileError(f"{events_file} holds no rows to profile")
    folder, name = out.resolve().parent, out.name.rsplit(".", 1)[0]
    proposal = Proposal({})
    proposal.choose("source.events_path", _relative(events_file, folder), "the events file")
    proposal.choose("source.format", fmt, "--format" if given_format else "from the file's name")
    if fmt == "csv":
        proposal.choose("source.separator", separator, "--separator" if given_separator else
                        "splits the first lines into the same number of fields")  # fmt: skip
    mapping = propose_columns(row_sample(rows, sample_rows).frame, proposal, pd.Timestamp(now))
    sample = user_sample(rows, mapping["user_id"], sample_rows)
    has_label = "source.label_column" in {c.setting for c in proposal.choices}
    label = proposal.settings["source"].get("label_column", "rating")
    # the split is chosen on the rows the loader keeps, typed as it types them
    provisional = SourceConfig(events_path=events_file, format=fmt, separator=separator,
                               columns=mapping, label_column=label,
                               timestamp_unit=proposal.settings["source"]["timestamp_unit"],
                               event_types=proposal.settings["source"].get("event_types"),
                               cutoff_date=dt.date(1970, 1, 1))  # fmt: skip
    good, _ = validate_rows(sample, provisional, now)
    if good.empty:
        raise InitProfileError(f"no sampled row of {events_file} passes the loader's checks "
                               "with the proposed mapping")  # fmt: skip
    propose_split(good, proposal, has_label)
    own = "this profile's own state, tables and reports (relative to this file's folder)"
    for setting, value, why in (("paths.state", f".state/{name}", own),
                                ("paths.lake", f".state/{name}/lake", ""),
                                ("paths.reports", f"reports/{name}", "")):  # fmt: skip
        proposal.choose(setting, value, why)
    rows_in = len(rows.frame)
    header = [
        f"Written by `vista init-profile {events_file}` on {now:%Y-%m-%d} from "
        f"{len(sample.frame):,} of its {rows_in:,} rows: review every choice below.",
        "",
        f"Use it with --profile {out} (or VISTA_PROFILE); it is laid over conf/local.yaml, "
        "and its relative paths are taken from this file's folder.",
        *[f"Note: {note}" for note in proposal.notes],
        "",
    ]
    text = render_profile(proposal.settings, {c.setting: c.why for c in proposal.choices}, header)
    out.parent.mkdir(parents=True, exist_ok=True)
    # checked under a temporary name beside the target, then moved: a profile that does
    # not load is never left at --out
    trial = out.with_name(f".{name}.init-profile-{os.getpid()}.yaml")
    trial.write_text(text)
    try:
        checked = check_profile(trial, sample, now)
        trial.replace(out)
    finally:
        trial.unlink(missing_ok=True)
    return InitResult(out, name, rows_in, len(sample.frame), fmt, separator, proposal.choices,
                      proposal.notes, checked)  # fmt: skip
