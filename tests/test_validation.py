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


def test_histories_suite_catches_a_leak_past_as_of_computed_in_spark(tmp_path, spark):
    from spark_jobs.histories import history_checks
    from validation.suites import histories_suite

    as_of = dt.datetime(2026, 7, 31, tzinfo=dt.UTC)
    micros = int(as_of.timestamp() * 1e6)
    rows = [
        (1, 2, [10, 11], [1, 1], [micros - 2, micros - 1]),
        (2, 2, [12, 13], [1, 1], [micros - 5, micros + 1]),  # an event after the cutoff
        (3, 3, [14, 15], [1, 1], [micros - 3, micros - 4]),  # 3 claimed, 2 held, unsorted
    ]
    histories = spark.createDataFrame(
        rows, "user_id long, history_length long, item_ids array<long>, "
        "categories array<long>, event_timestamps array<long>",
    )  # fmt: skip
    checks = history_checks(histories, as_of).toPandas()
    with pytest.raises(DataQualityError) as err:
        run_suite(histories_suite(max_history=1000), checks, tmp_path)
    message = str(err.value)
    assert "column 'before_as_of'" in message
    assert "column 'arrays_match_length'" in message
    assert "column 'time_ordered'" in message
    good = history_checks(histories.where("user_id = 1"), as_of).toPandas()
    assert run_suite(histories_suite(max_history=1000), good, tmp_path).success


def test_training_set_suite_names_labels_outside_0_1_and_low_summary_coverage(tmp_path):
    from validation.suites import training_frame, training_set_suite

    vector = np.zeros(8, np.float32)
    frame = pd.DataFrame({
        "impression_id": np.arange(10), "user_id": 1, "item_id": 2,
        "event_timestamp": pd.Timestamp("2026-07-31", tz="UTC"), "label": [0, 1] * 5,
        "split": "train", "summary": [vector] * 10, "history_length": 5,
    })  # fmt: skip
    assert run_suite(training_set_suite(8, 0.5), training_frame(frame), tmp_path).success
    bad = frame.assign(label=[0, 1, 2, 1, 0, 1, 0, 1, 0, 1],
                       summary=[vector] * 3 + [None] * 7)  # fmt: skip
    with pytest.raises(DataQualityError) as err:
        run_suite(training_set_suite(8, 0.5), training_frame(bad), tmp_path)
    assert "column 'label'" in str(err.value)
    assert "column 'summary_joined'" in str(err.value)
    assert "0.3)" in str(err.value)  # the observed coverage
    # the same 7 rows without a summary are cold-start users: nothing they could cover
    cold = bad.assign(label=[0, 1] * 5, cold_start=[False] * 3 + [True] * 7)
    assert run_suite(training_set_suite(8, 0.5), training_frame(cold), tmp_path).success


def test_summary_drift_warns_but_does_not_stop(tmp_path):
    from validation.suites import drift_frame, summary_drift_suite

    steady = drift_frame({"token_norm_mean": 4.1}, {"token_norm_mean": 4.0})
    assert run_suite(summary_drift_suite(0.5), steady, tmp_path).success
    jumped = drift_frame({"token_norm_mean": 9.0}, {"token_norm_mean": 4.0})
    outcome = run_suite(summary_drift_suite(0.5), jumped, tmp_path)  # no exception: warns
    assert not outcome.success
    assert not outcome.critical
    assert "relative_change" in outcome.failures[0]
