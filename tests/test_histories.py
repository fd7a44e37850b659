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


def test_incremental_snapshot_equals_full_rebuild_and_flags_changed_users(spark):
    from spark_jobs.histories import update_user_histories

    rows = [
        (1, 10, 1, t(1)), (1, 11, 1, t(2)), (1, 12, 2, t(4)), (1, 13, 2, t(6)),
        (2, 20, 3, t(1)), (2, 21, 3, t(2)),  # nothing new after t(3): carried over
        (3, 30, 4, t(4)),  # a new user
        (4, 40, 5, t(7)),  # after the new cutoff
    ]  # fmt: skip
    events = events_df(spark, rows)
    previous = build_user_histories(events, t(3), max_history=3)
    updated = update_user_histories(previous, events, t(3), t(6), max_history=3)
    full = build_user_histories(events, t(6), max_history=3)
    cols = ["user_id", "as_of", "history_length", "item_ids", "categories", "event_timestamps"]
    assert sorted(updated.select(cols).collect()) == sorted(full.select(cols).collect())
    flags = {r.user_id: r.updated for r in updated.collect()}
    assert flags == {1: True, 2: False, 3: True}
    capped = {r.user_id: r.item_ids for r in updated.collect()}
    assert capped[1] == [10, 11, 12]  # the cap keeps the most recent 3


def test_incremental_needs_an_earlier_snapshot(spark):
    import pytest

    from spark_jobs.histories import update_user_histories

    events = events_df(spark, [(1, 10, 1, t(1))])
    previous = build_user_histories(events, t(3), max_history=3)
    with pytest.raises(ValueError, match="is not before"):
        update_user_histories(previous, events, t(3), t(3), max_history=3)
