"""Great Expectations suites as code, one per table, and the frames they run on.

Array columns (summary tokens) are checked through derived scalar columns
(length, all-finite flag, L2 norm), which GX's column expectations can read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import great_expectations as gx
import numpy as np
import pandas as pd

from sources.synthetic import EVENT_TYPES
from vista.core.names import CATEGORY_HISTORIES, HISTORY_TAIL

# an L2 norm above this per token means the summarizer blew up
MAX_TOKEN_NORM = 1e3


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    critical: bool  # a failing critical suite stops the pipeline; others warn
    expectations: list


def events_suite(
    now: dt.datetime,
    event_types: list[str] | None = None,
    max_skew_seconds: int = 0,
    min_rows: int = 1,
) -> SuiteSpec:
    """``max_skew_seconds``: the ingest's allowance (source.max_clock_skew_seconds), so an
    event the ingest accepted is never one this suite rejects. ``min_rows`` 0: the
    frame is the rows one run added (the table's own size is checked apart)."""
    E = gx.expectations
    return SuiteSpec(
        name="events",
        critical=True,
        expectations=[
            E.ExpectTableRowCountToBeBetween(min_value=min_rows),
            *(E.ExpectColumnValuesToNotBeNull(column=c) for c in
              ("user_id", "item_id", "event_type", "event_timestamp")),
            E.ExpectColumnValuesToBeBetween(column="user_id", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="item_id", min_value=0),
            E.ExpectColumnValuesToBeInSet(
                column="event_type", value_set=list(event_types or EVENT_TYPES)
            ),
            E.ExpectColumnValuesToBeBetween(
                column="event_timestamp_s", min_value=0,
                max_value=int(now.timestamp()) + max_skew_seconds,
            ),
        ],
    )  # fmt: skip


def events_rejected(
    frame: pd.DataFrame,
    now: dt.datetime,
    event_types: list[str] | None = None,
    max_skew_seconds: int = 0,
) -> pd.Series:
    """Per row of ``events_frame`` output: True where ``events_suite``'s row checks fail
    (to name the rows in the error and to move them to quarantine)."""
    latest = int(now.timestamp()) + max_skew_seconds
    seconds = frame["event_timestamp_s"]
    return (
        frame[["user_id", "item_id", "event_type", "event_timestamp"]].isna().any(axis=1)
        | (frame["user_id"] < 0) | (frame["item_id"] < 0)
        | ~frame["event_type"].isin(list(event_types or EVENT_TYPES))
        | (seconds < 0) | (seconds > latest)
    )  # fmt: skip


def impressions_suite() -> SuiteSpec:
    E = gx.expectations
    return SuiteSpec(
        name="impressions",
        critical=True,
        # no row-count floor: a run may bring no labelled events yet (the training-set
        # suite stops a ranker that would train on nothing)
        expectations=[
            *(E.ExpectColumnValuesToNotBeNull(column=c) for c in
              ("impression_id", "user_id", "item_id", "event_timestamp", "label")),
            E.ExpectColumnValuesToBeUnique(column="impression_id"),
            E.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
            E.ExpectColumnValuesToBeBetween(column="oracle_prob", min_value=0, max_value=1),
        ],
    )  # fmt: skip


def raw_features_suite(tail_length: int, per_category: int) -> SuiteSpec:
    """The baselines' raw-history tables of one snapshot: one row per user (tails) and
    per (user, category), no list longer than configured (checks computed in Spark)."""
    E = gx.expectations
    return SuiteSpec(
        name="raw_history_features",
        critical=True,
        expectations=[
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToBeInSet(column="table", value_set=[HISTORY_TAIL, CATEGORY_HISTORIES]),
            E.ExpectColumnValuesToBeUnique(column="row_key"),
            E.ExpectColumnValuesToBeBetween(column="list_length", min_value=1,
                                            max_value=max(tail_length, per_category)),
            E.ExpectColumnValuesToBeInSet(column="within_limit", value_set=[True]),
        ],
    )  # fmt: skip


def quarantine_suite(reasons: list[str]) -> SuiteSpec:
    """The rows this run quarantined: warns (never stops the run) and shows in the Data
    Docs how many rows were set aside and for which reasons, and which files could not
    be read (frame from ``quarantine_frame``)."""
    E = gx.expectations
    return SuiteSpec(
        name="quarantine",
        critical=False,
        expectations=[
            E.ExpectTableRowCountToBeBetween(
                min_value=0, max_value=0,
                description="no source row of this run was quarantined (observed: how many were)",
            ),
            E.ExpectColumnValuesToBeInSet(
                column="reason", value_set=[],
                description="quarantined rows by reason (the unexpected values and their counts)",
            ),
            E.ExpectColumnValuesToBeInSet(column="reason", value_set=reasons),
            E.ExpectColumnValuesToBeInSet(
                column="unreadable_file", value_set=[],
                description="files that could not be read at all, by name (the unexpected "
                "values; each is also in the run's summary under files_unreadable)",
            ),
            *(E.ExpectColumnValuesToNotBeNull(column=c) for c in
              ("source_file", "row_number", "detail")),
        ],
    )  # fmt: skip


def quarantine_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """``unreadable_file``: the file's name on its unreadable_file record, else null."""
    names = rows["source_file"].where(rows["reason"] == "unreadable_file")
    return rows.assign(unreadable_file=names.astype(object))


def histories_suite(max_history: int) -> SuiteSpec:
    """One row per user: the checks are computed in Spark (``history_checks``)."""
    E = gx.expectations
    return SuiteSpec(
        name="user_histories",
        critical=True,
        expectations=[
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToNotBeNull(column="user_id"),
            E.ExpectColumnValuesToBeUnique(column="user_id"),
            E.ExpectColumnValuesToBeBetween(column="history_length", min_value=1,
                                            max_value=max_history),
            E.ExpectColumnValuesToBeInSet(
                column="arrays_match_length", value_set=[True],
                description="item_ids, categories and event_timestamps hold history_length "
                "entries each",
            ),
            E.ExpectColumnValuesToBeInSet(
                column="time_ordered", value_set=[True],
                description="event timestamps are oldest first",
            ),
            E.ExpectColumnValuesToBeInSet(
                column="before_as_of", value_set=[True],
                description="no event at or after the snapshot time leaks into a history",
            ),
        ],
    )  # fmt: skip


def training_set_suite(
    width: int, min_summary_coverage: float, check_coverage: bool = True
) -> SuiteSpec:
    """The Feast training and evaluation frames (``split`` says which; ``training_frame``
    derives the checked columns). Coverage counts the impressions of users who had a
    history before the snapshot (``summary_joined`` is null for cold-start users, who
    have nothing to summarize); ``check_coverage`` False: there are none."""
    E = gx.expectations
    coverage = [
        E.ExpectColumnMeanToBeBetween(
            column="summary_joined",
            min_value=min_summary_coverage,
            max_value=1,
            description="share of impressions of users with a history whose summary joined "
            "(point-in-time, within features.ttl_days); at least features.min_summary_coverage",
        )
    ]
    return SuiteSpec(
        name="training_set",
        critical=True,
        expectations=[
            E.ExpectTableRowCountToBeBetween(min_value=1),
            *(E.ExpectColumnValuesToNotBeNull(column=c) for c in
              ("impression_id", "user_id", "item_id", "event_timestamp", "label")),
            E.ExpectColumnValuesToBeUnique(column="impression_id"),
            E.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
            E.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "eval"]),
            *(coverage if check_coverage else []),
            E.ExpectColumnValuesToBeBetween(column="summary_length", min_value=width,
                                            max_value=width),
            E.ExpectColumnValuesToBeBetween(column="history_length", min_value=0),
        ],
    )  # fmt: skip


def training_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Scalar columns for ``training_set_suite`` from the Feast frames (``summary`` and
    other object columns dropped): ``summary_length`` (null: no summary joined) and
    ``summary_joined`` (1/0; null for a cold-start row, see ``cold_start``)."""
    lengths = [np.nan if v is None else len(v) for v in frame["summary"]]
    summary_length = pd.Series(lengths, index=frame.index, dtype="float64")
    no_flag = pd.Series(False, index=frame.index)
    cold = frame.get("cold_start", no_flag).astype(bool)
    joined = summary_length.notna().astype("float64").where(~cold)
    checked = frame.drop(columns=["summary"], errors="ignore").assign(
        summary_length=summary_length, summary_joined=joined
    )
    return checked[[c for c in checked.columns if checked[c].dtype != object or c == "split"]]


def summary_coverage_problem(
    frame: pd.DataFrame,
    min_summary_coverage: float,
    as_of: pd.Timestamp | None = None,
    ttl_days: int | None = None,
) -> str | None:
    """One line when the coverage is below the setting: what was found, the setting, and
    the values this data needs (``frame`` from ``training_frame``): a lower coverage
    setting, or (given the snapshot ``as_of``) the features.ttl_days that reaches every
    impression still without a summary."""
    joined = frame["summary_joined"].dropna()
    if joined.empty or joined.mean() >= min_summary_coverage:
        return None
    coverage = float(joined.mean())
    parts = ", ".join(
        f"{name} {group.mean():.1%}" for name, group in
        frame.dropna(subset=["summary_joined"]).groupby("split")["summary_joined"]
    ) if "split" in frame else ""  # fmt: skip
    needed = np.floor(coverage * 1000) / 1000
    nearer = "an as_of just before them, a longer features.ttl_days"
    ttl = ttl_needed(frame, as_of)
    if ttl is not None and (ttl_days is None or ttl > ttl_days):
        nearer = (f"an as_of just before them, or features.ttl_days >= {ttl}, which reaches "
                  "the last of them without one from the snapshot")  # fmt: skip
    return (
        f"training set: {coverage:.1%} of the {len(joined)} impressions of users with a history "
        f"have a summary ({parts}; point-in-time join within features.ttl_days), below "
        f"features.min_summary_coverage={min_summary_coverage}: this data needs "
        f"features.min_summary_coverage <= {needed:g}, or summaries nearer the impressions "
        f"({nearer})"
    )


def ttl_needed(frame: pd.DataFrame, as_of: pd.Timestamp | None) -> int | None:
    """Whole days from the snapshot to the latest impression of a user with a history that
    found no summary (None when there is none, or no snapshot is given)."""
    if as_of is None or "event_timestamp" not in frame:
        return None
    missed = frame.loc[frame["summary_joined"] == 0, "event_timestamp"]
    if missed.empty:
        return None
    late = pd.Timestamp(missed.max()) - pd.Timestamp(as_of)
    return max(1, int(np.ceil(late / pd.Timedelta(days=1))))


def summary_drift_suite(max_relative_change: float) -> SuiteSpec:
    """Statistics of this snapshot's summaries against the previous snapshot's (warns:
    a refresh that moves them a lot is worth a look, not a stop)."""
    E = gx.expectations
    return SuiteSpec(
        name="user_summaries_drift",
        critical=False,
        expectations=[
            E.ExpectColumnValuesToBeBetween(
                column="relative_change", min_value=-max_relative_change,
                max_value=max_relative_change,
                description="each summary statistic moved by at most this share since "
                "the previous snapshot",
            ),
        ],
    )  # fmt: skip


def summary_statistics(frame: pd.DataFrame) -> dict[str, float]:
    """Per-snapshot statistics of ``summaries_frame`` output, compared for drift."""
    norms = frame["summary_token_norm"].astype(float)
    return {
        "token_norm_mean": float(norms.mean()),
        "token_norm_p50": float(norms.quantile(0.5)),
        "token_norm_p99": float(norms.quantile(0.99)),
        "history_length_mean": float(frame["history_length"].mean()),
    }


def drift_frame(current: dict[str, float], previous: dict[str, float]) -> pd.DataFrame:
    rows = []
    for stat, value in current.items():
        before = previous.get(stat)
        change = np.nan if before is None else (value - before) / max(abs(before), 1e-9)
        rows.append({"statistic": stat, "current": value, "previous": before,
                     "relative_change": change})  # fmt: skip
    return pd.DataFrame(rows)


def summaries_suite(n_tokens: int, token_dim: int, codec: str | None = None) -> SuiteSpec:
    E = gx.expectations
    width = n_tokens * token_dim
    stored_as = [E.ExpectColumnValuesToBeInSet(column="summary_codec", value_set=[codec])]
    return SuiteSpec(
        name="user_summaries",
        critical=True,
        expectations=[
            E.ExpectTableRowCountToBeBetween(min_value=1),
            E.ExpectColumnValuesToNotBeNull(column="user_id"),
            E.ExpectColumnValuesToBeUnique(column="user_id"),
            E.ExpectColumnValuesToNotBeNull(column="summarizer_version"),
            E.ExpectColumnValuesToBeBetween(column="summary_length", min_value=width,
                                            max_value=width),
            E.ExpectColumnValuesToBeInSet(column="summary_all_finite", value_set=[True]),
            E.ExpectColumnValuesToBeBetween(column="summary_token_norm", min_value=0,
                                            max_value=MAX_TOKEN_NORM),
            E.ExpectColumnValuesToBeBetween(column="history_length", min_value=0),
            *(stored_as if codec else []),
        ],
    )  # fmt: skip


def summary_states_suite(state_bytes: int, min_events: int, reasons: list[str]) -> SuiteSpec:
    """The cached memory-mode states of one snapshot (checks from ``state_checks``): a
    state of the model's size, whose checksum holds, for every long history."""
    E = gx.expectations
    return SuiteSpec(
        name="user_summary_states",
        critical=True,
        expectations=[
            E.ExpectColumnValuesToNotBeNull(column="user_id"),
            E.ExpectColumnValuesToBeUnique(column="user_id"),
            E.ExpectColumnValuesToBeBetween(column="state_bytes", min_value=state_bytes,
                                            max_value=state_bytes),
            E.ExpectColumnValuesToBeInSet(
                column="checksum_ok", value_set=[True],
                description="each state's bytes still match the SHA-256 written with them",
            ),
            E.ExpectColumnValuesToBeBetween(column="events_folded", min_value=min_events),
            E.ExpectColumnValuesToBeInSet(column="how", value_set=reasons),
            E.ExpectColumnValuesToBeInSet(
                column="read_within_folded", value_set=[True],
                description="a refresh never reads more events than the state holds",
            ),
        ],
    )  # fmt: skip


def events_frame(events: pd.DataFrame) -> pd.DataFrame:
    ts = events["event_timestamp"]
    seconds = (ts.astype("int64") // 10**9) if len(ts) else ts.astype("int64")
    # null timestamps become NaN seconds so the range check skips them; not-null catches them
    seconds = seconds.where(ts.notna())
    return events.assign(event_timestamp_s=seconds)


def summaries_frame(summaries: pd.DataFrame, n_tokens: int) -> pd.DataFrame:
    """Scalar columns derived from the decoded ``summary`` (the stored codes are dropped)."""
    vectors = summaries["summary"].to_numpy()
    lengths = np.array([len(v) if v is not None else -1 for v in vectors])
    finite = np.array([v is not None and bool(np.isfinite(v).all()) for v in vectors])
    norms = np.array(
        [
            float(
                np.linalg.norm(np.nan_to_num(np.asarray(v, np.float64), posinf=1e30))
                / np.sqrt(n_tokens)
            )
            if v is not None
            else np.nan
            for v in vectors
        ]
    )
    stored = ["summary", "summary_codes", "summary_scales"]
    return summaries.drop(columns=stored, errors="ignore").assign(
        summary_length=lengths, summary_all_finite=finite, summary_token_norm=norms
    )
