import datetime as dt

from spark_jobs.histories import build_user_histories

UTC = dt.UTC


def events_df(spark, rows):
    schema = "user_id long, item_id long, category long, event_timestamp timestamp"
    return spark.createDataFrame(rows, schema)


def t(day, hour=0):
    return dt.datetime(2026, 1, day, hour, tzinfo=UTC)


def test_histories_are_sorted_capped_and_strictly_before_cutoff(spark):
    rows = [
        (1, 10, 1, t(3)), (1, 11, 1, t(1)), (1, 12, 2, t(2)), (1, 13, 2, t(5)),  # t(5) = cutoff
        (2, 20, 3, t(4, 5)), (2, 21, 3, t(4, 1)),
        (3, 30, 4, t(6)),  # only after the cutoff: no history row
    ]  # fmt: skip
    out = build_user_histories(events_df(spark, rows), t(5), max_history=2)
    got = {r.user_id: r for r in out.collect()}
    assert set(got) == {1, 2}
    # user 1: events before t(5) sorted by time are 11 (d1), 12 (d2), 10 (d3); cap keeps last 2
    assert got[1].item_ids == [12, 10]
    assert got[1].categories == [2, 1]
    assert got[1].history_length == 2
    assert got[1].event_timestamps == sorted(got[1].event_timestamps)
    assert got[2].item_ids == [21, 20]
    assert {r.as_of for r in got.values()} == {t(5).replace(tzinfo=None)}
