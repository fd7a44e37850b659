import datetime as dt

import numpy as np
import pandas as pd
import pytest

from validation.checkpoints import DataQualityError, run_suite
from validation.suites import events_frame, events_suite, summaries_frame, summaries_suite

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def events(n=20):
    return pd.DataFrame({
        "user_id": np.arange(n) % 4, "item_id": np.arange(n), "category": 1,
        "event_type": "click",
        "event_timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
    })  # fmt: skip


def test_good_events_pass_and_data_docs_are_built(tmp_path):
    outcome = run_suite(events_suite(NOW), events_frame(events()), tmp_path)
    assert outcome.success
    assert outcome.evaluated >= 8
    assert (tmp_path / "data_docs" / "index.html").exists()
    assert "events" in (tmp_path / "data_docs" / "index.html").read_text()


@pytest.mark.parametrize(
    ("column", "value", "expectation"),
    [
        ("user_id", -1, "expect_column_values_to_be_between on column 'user_id'"),
        ("event_type", "teleport", "expect_column_values_to_be_in_set on column 'event_type'"),
        ("item_id", None, "expect_column_values_to_not_be_null on column 'item_id'"),
        ("event_timestamp", pd.Timestamp("2030-01-01", tz="UTC"), "column 'event_timestamp_s'"),
    ],
)
def test_bad_events_stop_with_the_failed_expectation_named(tmp_path, column, value, expectation):
    df = events()
    df[column] = df[column].astype(object)
    df.loc[[2, 5], column] = value
    if column == "event_timestamp":
        df[column] = pd.to_datetime(df[column], utc=True)
    with pytest.raises(DataQualityError) as err:
        run_suite(events_suite(NOW), events_frame(df), tmp_path)
    assert expectation in str(err.value)
    assert "2 of 20 rows unexpected" in str(err.value)


def summaries(vectors):
    return pd.DataFrame({"user_id": range(len(vectors)), "summarizer_version": "s-x",
                         "history_length": 5, "summary": vectors})  # fmt: skip


def test_summary_suite_catches_nan_inf_and_wrong_shape(tmp_path):
    good = [np.ones(8, np.float32) for _ in range(3)]
    assert run_suite(summaries_suite(2, 4), summaries_frame(summaries(good), 2), tmp_path).success
    nan, inf = np.full(8, np.nan, np.float32), np.full(8, np.inf, np.float32)
    bad = [good[0], nan, inf, np.ones(6, np.float32)]
    with pytest.raises(DataQualityError) as err:
        run_suite(summaries_suite(2, 4), summaries_frame(summaries(bad), 2), tmp_path)
    text = str(err.value)
    assert "'summary_all_finite'" in text
    assert "2 of 4 rows" in text
    assert "'summary_length'" in text
    assert "1 of 4 rows" in text
