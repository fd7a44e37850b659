"""Snapshots at any whole hour (issue 14): the partition strings, the cadence checks that
refuse a bad snapshot before any work, and a 2-hourly pair of snapshots through the
lake, the summaries and Feast's point-in-time join at one-second resolution."""

from __future__ import annotations

import datetime as dt
import pickle

import pandas as pd
import pendulum
import pytest

from tests.conftest import tiny_config
from vista.core.errors import SettingError
from vista.core.snapshot import Snapshot, check_new_snapshot, snapshots_between

UTC = dt.UTC
SECOND = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-10-29", "2026-10-29"),
        ("2026-10-29T00", "2026-10-29"),
        ("2026-10-29T02", "2026-10-29T02"),
        ("2026-10-29T02:00", "2026-10-29T02"),
        ("2026-10-29 02:00:00Z", "2026-10-29T02"),
        ("2026-10-29T04:00:00+02:00", "2026-10-29T02"),  # the same instant, UTC
        ("2026-10-29T02:00:00", "2026-10-29T02"),  # no zone: UTC
    ],
)
def test_a_snapshot_is_a_whole_hour_whose_partition_string_keeps_dates_at_midnight(text, iso):
    snapshot = Snapshot.of(text)
    assert snapshot.iso == iso
    assert Snapshot.of(snapshot.iso) == snapshot
    assert pickle.loads(pickle.dumps(snapshot)) == snapshot
    assert snapshot.micros == int(snapshot.timestamp()) * 1_000_000
    assert snapshot.micros % 3_600_000_000 == 0


def test_partition_strings_sort_as_their_instants_across_daily_and_hourly_snapshots():
    instants = [dt.datetime(2026, 10, 28, 22, tzinfo=UTC) + dt.timedelta(hours=2 * i)
                for i in range(14)]  # fmt: skip
    snapshots = [Snapshot.of(moment, 2) for moment in instants]
    assert [s.iso for s in snapshots][:3] == ["2026-10-28T22", "2026-10-29", "2026-10-29T02"]
    assert sorted(s.iso for s in reversed(snapshots)) == [s.iso for s in snapshots]


def test_a_moment_is_floored_to_the_last_snapshot_of_the_cadence():
    moment = dt.datetime(2026, 10, 29, 5, 37, 12, tzinfo=UTC)
    assert Snapshot.of(moment, 2).iso == "2026-10-29T04"
    assert Snapshot.of(moment, 6).iso == "2026-10-29"
    assert Snapshot.of(moment).iso == "2026-10-29"  # the daily cadence, as before
    assert Snapshot.of(moment, 1).logical_date == "2026-10-29T05:00:00+00:00"
    # Airflow's logical dates are pendulum datetimes, in any zone
    logical = pendulum.datetime(2026, 10, 29, 6, 37, tz="Europe/Berlin")  # CET: 05:37 UTC
    assert Snapshot.of(logical, 2).iso == "2026-10-29T04"


@pytest.mark.parametrize(
    ("first", "last", "hours", "isos"),
    [
        ("2026-10-28T20", "2026-10-29T02", 2,
         ["2026-10-28T20", "2026-10-28T22", "2026-10-29", "2026-10-29T02"]),
        ("2026-10-27", "2026-10-29", 24, ["2026-10-27", "2026-10-28", "2026-10-29"]),
        ("2026-10-29", "2026-10-29", 2, ["2026-10-29"]),
        ("2026-10-29T02", "2026-10-29", 2, []),
    ],
)  # fmt: skip
def test_backfill_walks_every_snapshot_of_the_cadence_once(first, last, hours, isos):
    walked = snapshots_between(Snapshot.of(first), Snapshot.of(last), hours)
    assert [s.iso for s in walked] == isos


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("2026-10-29T02:30", ["not a whole hour", "--as-of 2026-10-29T02"]),
        ("29/10/2026", ["YYYY-MM-DDTHH", "29/10/2026"]),
    ],
)
def test_a_snapshot_that_is_no_whole_hour_is_refused_with_the_fix(text, names):
    with pytest.raises(SettingError) as caught:
        Snapshot.of(text)
    assert all(name in str(caught.value) for name in names)


NOW = dt.datetime(2026, 10, 30, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("as_of", "existing", "names"),
    [
        ("2026-10-30T10", [], ["in the future", "now 2026-10-30T09:15Z"]),
        ("2026-10-29T03", [], ["snapshots.every_hours=2", "--as-of 2026-10-29T02"]),
        ("2026-10-29T02", ["2026-10-29", "2026-10-29T04"],
         ["before the last snapshot 2026-10-29T04", "--full-rebuild"]),
    ],
)  # fmt: skip
def test_a_snapshot_the_cadence_would_not_take_is_refused_naming_the_times(as_of, existing, names):
    with pytest.raises(SettingError) as caught:
        check_new_snapshot(Snapshot.of(as_of), 2, existing, NOW)
    assert all(name in str(caught.value) for name in names), caught.value


@pytest.mark.parametrize("as_of", ["2026-10-29T04", "2026-10-29", "2026-10-29T06"])
def test_the_next_snapshot_or_a_rerun_of_a_held_one_passes(as_of):
    check_new_snapshot(Snapshot.of(as_of), 2, ["2026-10-29", "2026-10-29T04"], NOW)


def test_events_at_the_snapshot_instant_belong_to_the_next_snapshot(spark):
    """One-second resolution on both sides of two 2-hourly snapshots, full and incremental."""
    from spark_jobs.histories import build_user_histories, update_user_histories

    t2, t4 = Snapshot.of("2026-01-05T02"), Snapshot.of("2026-01-05T04")
    stamps = [t2 - SECOND, t2.moment(), t2 + SECOND, t4 - SECOND, t4.moment()]
    rows = [(1, 10 + i, 1, moment) for i, moment in enumerate(stamps)]
    events = spark.createDataFrame(
        rows, "user_id long, item_id long, category long, event_timestamp timestamp"
    )
    first = build_user_histories(events, t2, max_history=100).collect()
    assert [r.item_ids for r in first] == [[10]]
    second = update_user_histories(
        build_user_histories(events, t2, max_history=100), events, t2, t4, max_history=100
    ).collect()
    assert [r.item_ids for r in second] == [[10, 11, 12, 13]]
    full = build_user_histories(events, t4, max_history=100).collect()
    assert [r.item_ids for r in full] == [[10, 11, 12, 13]]
    assert max(second[0].event_timestamps) == t4.micros - 1_000_000


@pytest.mark.integration  # Spark, the summarizer and Feast on a tiny world
def test_two_hourly_snapshots_through_the_lake_summaries_and_feast(tmp_path, spark):
    from vista import features, pipeline
    from vista.core import lake
    from vista.core.names import HISTORIES, PARTITION_COL

    cfg = tiny_config(tmp_path, snapshots={"every_hours": 2})
    pipeline.ingest_events(cfg)
    cutoff = Snapshot.of(pipeline.default_as_of(cfg))
    earlier = Snapshot.of(cutoff - dt.timedelta(hours=2), 2)  # 22:00 the day before
    assert earlier.iso.endswith("T22")

    first = pipeline.build_histories(cfg, earlier)
    second = pipeline.build_histories(cfg, cutoff)
    assert first["mode"] == "full"
    assert second["mode"] == f"incremental from {earlier.iso}"
    assert 0 < second["updated_users"] < second["users"]
    held = sorted(
        p[PARTITION_COL] for p in lake.open_table(cfg.paths.table(HISTORIES)).partitions()
    )
    assert held == sorted([earlier.iso, cutoff.iso])
    # going back in time is refused before any work; a rerun of a held snapshot is not
    with pytest.raises(SettingError, match="before the last snapshot"):
        pipeline.build_histories(cfg, Snapshot.of(cutoff - dt.timedelta(hours=4), 2))
    assert pipeline.build_histories(cfg, earlier)["unchanged"]

    pipeline.train_summarizer(cfg, earlier, progress=False)
    pipeline.summarize(cfg, earlier)
    summarized = pipeline.summarize(cfg, cutoff)
    assert summarized["carried_over_from"] == earlier.iso
    published = pipeline.publish_features(cfg, cutoff)
    assert published["materialized_until"] == (cutoff + dt.timedelta(hours=2)).isoformat()

    histories = pipeline.read_histories(cfg, cutoff).set_index("user_id")
    before = pipeline.read_histories(cfg, earlier).set_index("user_id")
    user = int(histories.index[histories.updated & histories.index.isin(before.index)][0])
    lengths = (int(before.history_length[user]), int(histories.history_length[user]))
    assert lengths[0] < lengths[1]
    # Feast joins each row with the newest summary stamped at or before it: one second
    # before the 00:00 snapshot a row still sees 22:00's; at 00:00 it sees 00:00's
    entity = pd.DataFrame({"user_id": [user] * 3,
                           "event_timestamp": [cutoff - SECOND, cutoff.moment(), cutoff + SECOND]})  # fmt: skip
    frame = features.training_frame(features.feature_store(cfg), entity)
    frame = frame.sort_values("event_timestamp")
    assert frame["history_length"].tolist() == [lengths[0], lengths[1], lengths[1]]


def test_the_ingest_dag_runs_on_the_profile_cadence_when_the_profile_says_so(tmp_path, monkeypatch):
    from vista import orchestration

    profile = tmp_path / "every-two-hours.yaml"
    profile.write_text("snapshots: {every_hours: 2, scheduled: true}\n")
    monkeypatch.delenv("VISTA_INGEST_SCHEDULE", raising=False)
    monkeypatch.setenv("VISTA_PROFILE", str(profile))
    assert orchestration.ingest_schedule() == "0 */2 * * *"
    from vista import airflow_runner
    from vista.core.config import load_config

    # the environment Airflow is started with carries the profile's schedule
    scheduled = load_config(str(profile), environ={})
    assert airflow_runner.airflow_environment(scheduled)["VISTA_INGEST_SCHEDULE"] == "0 */2 * * *"
    assert airflow_runner.airflow_environment(load_config("hourly", environ={}))[
        "VISTA_INGEST_SCHEDULE"] == "none"  # fmt: skip
    monkeypatch.setenv("VISTA_INGEST_SCHEDULE", "none")  # the environment overrides it
    assert orchestration.ingest_schedule() is None
    monkeypatch.setenv("VISTA_INGEST_SCHEDULE", "@daily")
    assert orchestration.ingest_schedule() == "@daily"
    monkeypatch.delenv("VISTA_INGEST_SCHEDULE")
    monkeypatch.setenv("VISTA_PROFILE", "hourly")  # 2-hourly snapshots, walked by hand
    assert orchestration.ingest_schedule() is None
    monkeypatch.setenv("VISTA_PROFILE", "local")
    assert orchestration.ingest_schedule() is None


@pytest.mark.parametrize("hours", [5, 0, 48])
def test_a_cadence_that_does_not_divide_a_day_is_refused(tmp_path, hours):
    from vista.core.config import ConfigError

    with pytest.raises(ConfigError, match="every_hours"):
        tiny_config(tmp_path, snapshots={"every_hours": hours})
