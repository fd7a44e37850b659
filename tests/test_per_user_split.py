"""The per-user temporal split, cold-start users and the errors that name their setting.

A hand-made events file whose users are active in different years: with a global
cutoff most of them would have no history or no impressions; split per user, each one
keeps their past as history and has their last events as labelled impressions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sources.ingest import SourceError
from sources.loaders import load_events, split_source, split_tables
from tests.conftest import tiny_config
from vista import pipeline, state
from vista.core import lake
from vista.core.config import ConfigError, SourceConfig
from vista.core.snapshot import Snapshot

COLUMNS = {"user_id": "uid", "item_id": "iid", "timestamp": "ts", "rating": "stars"}
DAY = 86_400
# user -> (first active day, events, seconds between events); 0 s: all at one timestamp
USERS = {
    1: ("1998-03-01", 10, DAY),
    2: ("2005-06-10", 7, DAY),
    3: ("2015-01-20", 1, DAY),  # too few events to split
    4: ("2020-02-01", 5, 3600),  # the latest user: the snapshot follows their history
    5: ("2010-09-09", 3, 0),  # three events, one timestamp: cannot be split in time
}


def write_events(path, users=USERS, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for user, (start, n, step) in users.items():
        first = int(pd.Timestamp(start, tz="UTC").timestamp())
        for i in range(n):
            rows.append({"uid": user, "iid": 100 * user + i, "ts": first + i * step,
                         "stars": int(rng.integers(1, 6))})  # fmt: skip
    frame = pd.DataFrame(rows).sample(frac=1, random_state=seed)  # file order is no order
    frame.to_csv(path, index=False)
    return frame


def per_user(tmp_path, **kw) -> SourceConfig:
    base = {"events_path": tmp_path / "events.csv", "columns": COLUMNS, "split": "per_user",
            "per_user_share": 0.3, "per_user_days": 4}  # fmt: skip
    return SourceConfig(**{**base, **kw})


def source_order(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.sort_values(["user_id", column, "item_id"]).reset_index(drop=True)


@pytest.fixture
def split(tmp_path):
    write_events(tmp_path / "events.csv")
    source = per_user(tmp_path)
    good = load_events(source)
    return good, split_source(good, source), source


def test_each_users_last_share_are_impressions(split):
    good, result, _ = split
    imp = result.impressions
    # 10 events, share 0.3: the last 3; 7 events: floor(2.1) = 2; 5 events: 1
    for user, held in ((1, 3), (2, 2), (4, 1)):
        last = good[good.user_id == user].sort_values("event_timestamp").item_id.tail(held)
        assert sorted(imp[imp.user_id == user].item_id) == sorted(last), user
    assert set(imp.user_id) == {1, 2, 4}  # 3 and 5 cannot be split: history only
    assert imp.oracle_prob.isna().all()
    stars = good.set_index(["user_id", "item_id"]).rating
    expected = (stars.loc[list(zip(imp.user_id, imp.item_id, strict=True))] >= 4).astype(int)
    assert imp.label.tolist() == expected.tolist()


def test_no_impression_event_is_in_any_history(split):
    _, result, _ = split
    events, imp = result.events, result.impressions
    key = ["user_id", "item_id"]
    assert events.merge(imp[key], on=key).empty
    # nothing at or after a user's first held-out event stays history
    first_held = imp.groupby("user_id").source_timestamp.min()
    last_kept = events.groupby("user_id").event_timestamp.max()
    both = first_held.index.intersection(last_kept.index)
    assert (last_kept[both] < first_held[both]).all()
    # and every history event is before the snapshot, every impression after it
    as_of = pd.Timestamp(result.as_of, tz="UTC")
    assert (events.event_timestamp < as_of).all()
    assert (imp.event_timestamp >= as_of).all()


def test_training_impressions_precede_evaluation_impressions_per_user(split):
    _, result, source = split
    imp = result.impressions
    days = sorted(imp.impression_date.unique())
    assert len(days) <= source.per_user_days
    assert days[-1] == (result.as_of + dt.timedelta(days=source.per_user_days - 1)).isoformat()
    eval_days = 1
    evaluation = imp.impression_date.isin(days[-eval_days:])
    for user, rows in imp.groupby("user_id"):
        rows = rows.sort_values("source_timestamp")
        # re-stamping keeps each user's order, strictly
        assert rows.event_timestamp.is_monotonic_increasing, user
        assert rows.event_timestamp.is_unique, user
        # every user's last held-out event is evaluated
        assert evaluation[rows.index[-1]], user
        train, test = rows[~evaluation[rows.index]], rows[evaluation[rows.index]]
        if len(train):
            assert train.source_timestamp.max() < test.source_timestamp.min(), user
    # the original time is kept
    assert imp.source_timestamp.dt.year.min() == 1998


def test_counts_add_up_and_short_users_are_counted(split):
    good, result, _ = split
    counts = result.counts
    assert len(result.events) + len(result.impressions) == len(good) == counts["good_rows"]
    assert counts["history_events"] == len(result.events)
    assert counts["impressions"] == len(result.impressions)
    assert counts["users"] == 5
    assert counts["users_split"] == 3
    assert counts["users_not_split"] == {"single_timestamp": 1, "too_few_events": 1}
    assert counts["events_of_users_not_split"] == 4
    assert set(result.events.user_id) == {1, 2, 3, 4, 5}


def test_snapshot_is_the_day_after_the_last_history_event(split, tmp_path):
    _, result, source = split
    # user 4's last kept event: 2020-02-01 03:00 (hourly, the 5th is held out)
    assert result.as_of == dt.date(2020, 2, 2)
    cfg = tiny_config(tmp_path, source=source.model_dump(mode="json"))
    assert pipeline.default_as_of(cfg) == "2020-02-02"


def test_a_configured_snapshot_must_follow_the_history(tmp_path):
    write_events(tmp_path / "events.csv")
    later = per_user(tmp_path, cutoff_date="2021-01-01")
    assert split_source(load_events(later), later).as_of == dt.date(2021, 1, 1)
    early = per_user(tmp_path, cutoff_date="2019-12-31")
    with pytest.raises(SourceError, match=r"source\.cutoff_date=2019-12-31 .* needs "
                                          r"source\.cutoff_date >= 2020-02-02"):  # fmt: skip
        split_source(load_events(early), early)


def test_short_users_can_be_cold_start_impressions(tmp_path):
    write_events(tmp_path / "events.csv")
    source = per_user(tmp_path, short_users="cold_start")
    good = load_events(source)
    result = split_source(good, source)
    assert not {3, 5} & set(result.events.user_id)  # no history at all
    cold = result.impressions[result.impressions.user_id.isin([3, 5])]
    assert len(cold) == 4
    assert len(result.events) + len(result.impressions) == len(good)
    # three events at one timestamp stay together, in one day, with distinct ids
    five = cold[cold.user_id == 5]
    assert five.impression_date.nunique() == 1
    assert five.impression_id.is_unique


def test_a_basket_is_never_cut_between_history_and_impressions(tmp_path):
    # two baskets of 4 items: holding out 1 event (share 0.2 of 8) takes its whole basket
    users = {7: ("2012-05-05", 4, 0)}
    write_events(tmp_path / "events.csv", users)
    frame = pd.read_csv(tmp_path / "events.csv")
    later = frame.assign(iid=frame.iid + 50, ts=frame.ts + DAY)
    pd.concat([frame, later]).to_csv(tmp_path / "events.csv", index=False)
    source = per_user(tmp_path, per_user_share=0.2)
    result = split_source(load_events(source), source)
    assert sorted(result.impressions.item_id) == [750, 751, 752, 753]
    assert len(result.events) == 4


def test_global_split_is_unchanged_by_default(tmp_path):
    write_events(tmp_path / "events.csv")
    source = SourceConfig(events_path=tmp_path / "events.csv", columns=COLUMNS,
                          cutoff_date="2010-01-01")  # fmt: skip
    events, impressions = split_tables(load_events(source), source)
    assert events.num_rows == 26  # every row
    assert sorted(set(impressions.column("user_id").to_pylist())) == [3, 4, 5]
    assert "source_timestamp" not in impressions.column_names


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"source": {"per_user_days": 2}, "ranker": {"eval_days": 2}},
         r"source\.per_user_days=2 must be more than ranker\.eval_days=2.*"
         r"source\.per_user_days >= 3"),
        ({"source": {"per_user_days": 20}, "features": {"ttl_days": 14}},
         r"source\.per_user_days=20 is longer than features\.ttl_days=14.*"
         r"features\.ttl_days >= 20"),
        ({"source": {"columns": {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}}},
         r"needs the label column 'rating' mapped"),
        ({"source": {"events_path": "/data/{date}/events.csv"}}, r"cannot name one snapshot's"),
        ({"source": {"events_path": "/data/{snapshot}/events.csv"}}, r"with \{date\} or \{snapshot\}"),
        ({"source": {"split": "global"}}, r"cutoff_date is required when split is global"),
        ({"source": {"per_user_share": 1.0}}, r"source\.per_user_share"),
        ({"source": {"min_user_events": 1}}, r"source\.min_user_events"),
    ],
)  # fmt: skip
def test_per_user_settings_are_checked_when_loading(tmp_path, overrides, words):
    base = {"events_path": str(tmp_path / "events.csv"), "columns": COLUMNS,
            "split": "per_user"}  # fmt: skip
    source = {**base, **overrides.pop("source")}
    with pytest.raises(ConfigError, match=words):
        tiny_config(tmp_path, source=source, **overrides)


def test_every_user_of_movielens_is_split():
    from vista.core.config import load_config

    cfg = load_config("movielens-per-user", environ={})
    if not cfg.source.events_path.exists():
        pytest.skip("MovieLens-100K not installed: run `make movielens`")
    good = load_events(cfg.source)
    result = split_source(good, cfg.source)
    assert result.counts["users_split"] == good.user_id.nunique() == 943
    assert len(result.events) + len(result.impressions) == 100_000
    assert result.as_of == dt.date(1998, 4, 23)
    assert 0.2 <= len(result.impressions) / len(good) < 0.25  # whole timestamps round up
    assert result.impressions.impression_date.nunique() == cfg.source.per_user_days


# ---------------------------------------------------------------- through the lake
def test_ingest_writes_both_tables_and_refuses_a_late_file(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    write_events(folder / "a.csv")
    base = {"events_path": str(folder), "columns": COLUMNS, "split": "per_user",
            "per_user_share": 0.3, "per_user_days": 4}  # fmt: skip
    cfg = tiny_config(tmp_path, source=base)
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    result = pipeline.ingest_source(cfg, as_of)
    events = lake.read_arrow(cfg.paths.table("events")).to_pandas()
    impressions = lake.read_arrow(cfg.paths.table("impressions")).to_pandas()
    assert result["events"] + result["impressions"] == len(events) + len(impressions) == 26
    assert result["split"]["users_not_split"] == {"single_timestamp": 1, "too_few_events": 1}
    assert (events.event_timestamp < as_of).all()
    assert (impressions.source_timestamp < impressions.event_timestamp).all()
    write_events(folder / "b.csv", {9: ("2001-01-01", 4, DAY)})
    with pytest.raises(SourceError, match=r"per_user.*--force"):
        pipeline.ingest_source(cfg, as_of)
    again = pipeline.ingest_source(cfg, as_of, force=True)
    assert again["split"]["users"] == 6


# ---------------------------------------------------------------- errors and cold start
def test_windows_error_names_eval_days_and_the_value_needed():
    as_of = dt.date(2026, 1, 3)
    message = state.windows_problem(["2026-01-03", "2026-01-04"], 3, as_of)
    assert "found 2 impression day(s) on or after as_of 2026-01-03" in message
    assert "ranker.eval_days=3" in message
    assert "ranker.eval_days <= 1" in message
    assert "\n" not in message
    assert "at least 2 impression days" in state.windows_problem([], 1, as_of)
    assert "source.per_user_share" in state.windows_problem(["2026-01-05"], 1, as_of, True)


def test_cold_start_rows_get_history_length_zero_not_null():
    frame = pd.DataFrame({
        "user_id": [1, 2, 3], "history_length": [12.0, np.nan, np.nan],
        "summary": [np.ones(4), None, None],
    })  # fmt: skip
    # user 2 has a history but no summary joined (stale); user 3 never had an event
    marked = pipeline.mark_cold_start(frame, np.array([1, 2]))
    assert marked.cold_start.tolist() == [False, False, True]
    assert marked.history_length.tolist()[::2] == [12.0, 0.0]
    assert np.isnan(marked.history_length[1])


def feast_like(n: int, with_summary: int, cold: int = 0, first_id: int = 0) -> pd.DataFrame:
    """Rows as the Feast join returns them (tiny profile: 4 x 16 summary floats)."""
    ids = np.arange(n)
    summaries = [np.zeros(64, np.float32) if i < with_summary else None for i in ids]
    cold_start = ids >= n - cold
    return pd.DataFrame({
        "impression_id": first_id + ids, "user_id": ids, "item_id": ids,
        "event_timestamp": pd.Timestamp("2026-01-04", tz="UTC"), "label": ids % 2,
        "summary": summaries, "history_length": np.where(cold_start, 0.0, np.nan),
        "cold_start": cold_start,
    })  # fmt: skip


def test_coverage_error_names_the_setting_and_the_value_needed(tmp_path):
    from validation.checkpoints import DataQualityError

    cfg = tiny_config(tmp_path)  # 4 x 16 tokens; features.min_summary_coverage 0.5
    as_of = Snapshot.of("2026-01-03")
    train, test = feast_like(10, with_summary=3), feast_like(10, with_summary=3, first_id=10)
    with pytest.raises(DataQualityError) as err:
        pipeline.validate_training_set(cfg, as_of, train, test)
    message = str(err.value)
    assert message.count("expect_") == 1  # nothing else failed
    first = message.splitlines()[0]
    assert "30.0% of the 20 impressions of users with a history have a summary" in first
    assert "features.min_summary_coverage=0.5" in first
    assert "features.min_summary_coverage <= 0.3" in first


def test_coverage_error_names_the_ttl_that_reaches_the_impressions(tmp_path):
    """Impressions further from the snapshot than features.ttl_days find no summary: the
    error says which ttl this data needs, however many years that is."""
    from validation.checkpoints import DataQualityError

    cfg = tiny_config(tmp_path)
    as_of = Snapshot.of("2026-01-03")
    far = pd.Timestamp("2038-07-01 06:00", tz="UTC")  # 4,562 days and 6 hours later
    train = feast_like(10, with_summary=3).assign(event_timestamp=far)
    test = feast_like(10, with_summary=3, first_id=10)
    with pytest.raises(DataQualityError) as err:
        pipeline.validate_training_set(cfg, as_of, train, test)
    first = str(err.value).splitlines()[0]
    assert f"features.ttl_days >= {(far - as_of).days + 1}" in first
    assert "features.min_summary_coverage <= 0.3" in first
    # the ttl it names is one a profile may set
    assert tiny_config(tmp_path, features={"ttl_days": 4563}).features.ttl_days == 4563


def test_cold_start_users_do_not_count_against_coverage(tmp_path):
    cfg = tiny_config(tmp_path)
    as_of = Snapshot.of("2026-01-03")
    # 6 of 10 rows are cold start: only 4 could have a summary, and 3 have one
    train, test = feast_like(10, 3, cold=6), feast_like(10, 3, cold=6, first_id=10)
    outcome = pipeline.validate_training_set(cfg, as_of, train, test)
    assert outcome["success"]
    assert (outcome["cold_start_rows"], outcome["rows_with_history"]) == (12, 8)
    # all cold start: nothing to cover, the run goes on
    train, test = feast_like(4, 0, cold=4), feast_like(4, 0, cold=4, first_id=4)
    assert pipeline.validate_training_set(cfg, as_of, train, test)["success"]


# ---------------------------------------------------------------- end to end
def lifelong_users(n_users: int = 40, seed: int = 3) -> dict[int, tuple[str, int, int]]:
    """Users first active anywhere in 1996-2023, with 6 to 40 events each, plus three
    users too short to split (one event each)."""
    rng = np.random.default_rng(seed)
    users = {}
    for user in range(1, n_users + 1):
        start = pd.Timestamp("1996-01-01") + pd.Timedelta(days=int(rng.integers(0, 28 * 365)))
        users[user] = (start.date().isoformat(), int(rng.integers(6, 41)), int(rng.integers(1, 30)) * 3600)  # fmt: skip
    users.update({n_users + i: ("2024-06-01", 1, DAY) for i in range(1, 4)})
    return users


@pytest.mark.slow
def test_per_user_split_runs_through_the_real_pipeline(tmp_path, spark):
    """Delta, Spark, the summarizer, Feast's point-in-time join and the ranker on a
    per-user split whose short users are cold start: no history holds an impression
    event, and cold-start users make it through with history length 0."""
    users = lifelong_users()
    frame = write_events(tmp_path / "events.csv", users)
    # items shared across users so that the models have something to learn
    frame.assign(iid=frame.iid % 97).to_csv(tmp_path / "events.csv", index=False)
    source = {"events_path": str(tmp_path / "events.csv"), "columns": COLUMNS,
              "split": "per_user", "per_user_share": 0.3, "per_user_days": 3,
              "short_users": "cold_start"}  # fmt: skip
    # a summarizer trained 10 steps is enough to carry the data through
    cfg = tiny_config(tmp_path, source=source, summarizer={"train_steps": 10})
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    data = pipeline.ingest_events(cfg, as_of)
    assert data["split"]["users_not_split"] == {"too_few_events": 3}
    assert data["events"] + data["impressions"] == len(frame)
    assert pipeline.validate_events(cfg, as_of)["impressions"]["success"]
    pipeline.build_histories(cfg, as_of)
    assert pipeline.validate_histories(cfg, as_of)["success"]  # nothing at or after as_of
    pipeline.build_raw_features(cfg, as_of)
    pipeline.train_summarizer(cfg, as_of, progress=False)
    pipeline.summarize(cfg, as_of)
    pipeline.publish_features(cfg, as_of)

    histories = pipeline.read_histories(cfg, as_of).set_index("user_id")
    impressions = lake.read_arrow(cfg.paths.table("impressions")).to_pandas()
    first_held = impressions.groupby("user_id").source_timestamp.min()
    cold = {u for u, (_, n, _) in users.items() if n == 1}
    assert set(histories.index) == set(users) - cold
    for user, row in histories.iterrows():
        last = pd.Timestamp(int(row.event_timestamps.max()), unit="us", tz="UTC")
        assert last < first_held[user], user  # no impression event, nothing after it
        held = impressions[impressions.user_id == user].item_id % 97
        assert len(row.item_ids) == users[user][1] - len(held), user

    result = pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)
    assert result["train_days"][-1] < result["eval_days"][0]
    assert result["training_set_quality"]["success"]
    assert result["training_set_quality"]["cold_start_rows"] == 3
    assert result["eval_cold_start_rows"] == 3  # a single held-out event is evaluated
    test = pipeline.training_set(cfg, result["eval_days"], as_of)
    assert test.loc[test.cold_start, "history_length"].tolist() == [0, 0, 0]
    assert test.loc[test.cold_start, "summary"].isna().all()
    assert test.loc[~test.cold_start, "summary"].notna().all()  # every other user joined
    assert (test.loc[~test.cold_start, "history_length"] > 0).all()
