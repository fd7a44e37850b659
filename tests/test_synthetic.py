import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from sources.synthetic import build_world, generate, oracle_probability
from vista.core.config import GeneratorConfig


def small(**kw) -> GeneratorConfig:
    base = {
        "n_users": 300,
        "n_items": 300,
        "n_clusters": 12,
        "min_history": 20,
        "max_history": 3000,
        "heavy_users": 2,
        "history_days": 60,
        "impression_days": 3,
        "impressions_per_user": 30,
    }
    return GeneratorConfig(**{**base, **kw})  # fmt: skip


def collect(cfg):
    blocks = list(generate(cfg))
    return pa.concat_tables(b[0] for b in blocks), pa.concat_tables(b[1] for b in blocks)


def test_deterministic_by_seed():
    e1, i1 = collect(small())
    e2, i2 = collect(small())
    e3, _ = collect(small(seed=99))
    assert e1.equals(e2)
    assert i1.equals(i2)
    assert not e1.equals(e3)


def test_history_lengths_power_law_within_bounds():
    cfg = small()
    events, _ = collect(cfg)
    counts = np.bincount(events.column("user_id").to_numpy(), minlength=cfg.n_users)
    assert counts.min() >= cfg.min_history
    assert counts.max() == cfg.max_history
    assert (counts == cfg.max_history).sum() >= cfg.heavy_users
    assert np.median(counts) < counts.mean()  # heavy tail


def test_events_sorted_and_before_cutoff_impressions_after():
    cfg = small()
    events, imps = collect(cfg)
    df = events.to_pandas()
    assert df.groupby("user_id")["event_timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
    assert df.event_timestamp.max() < cfg.cutoff
    assert imps.to_pandas().event_timestamp.min() >= cfg.cutoff
    assert set(df.event_date) == set(df.event_timestamp.dt.strftime("%Y-%m-%d"))


def test_oracle_rises_with_lifetime_affinity():
    quality = np.zeros(3)
    p = oracle_probability(np.array([0, 5, 50]), quality)
    assert p[0] < p[1] < p[2]


def test_truncating_history_loses_measurable_information():
    """The oracle recomputed from the last 100 events only ranks worse than from all."""
    cfg = small(n_users=400, min_history=300)
    world = build_world(cfg)
    events, imps = collect(cfg)
    ev = events.to_pandas()
    imp = imps.to_pandas()
    cluster = world.item_cluster
    recent = ev.groupby("user_id").tail(100)

    def counts(frame):
        m = np.zeros((cfg.n_users, cfg.n_clusters))
        np.add.at(m, (frame.user_id.to_numpy(), cluster[frame.item_id.to_numpy()]), 1)
        return m

    full, last100 = counts(ev), counts(recent)
    users, clusters = imp.user_id.to_numpy(), cluster[imp.item_id.to_numpy()]
    quality = world.item_quality[imp.item_id.to_numpy()]
    np.testing.assert_allclose(oracle_probability(full[users, clusters], quality),
                               imp.oracle_prob.to_numpy())  # fmt: skip
    auc_full = roc_auc_score(imp.label, oracle_probability(full[users, clusters], quality))
    auc_recent = roc_auc_score(imp.label, oracle_probability(last100[users, clusters], quality))
    assert auc_full > auc_recent + 0.01


# ---------------------------------------------------------------- regime `lifelong`
def lifelong(**kw) -> GeneratorConfig:
    base = {
        "regime": "lifelong",
        "n_users": 200,
        "n_items": 4000,
        "n_clusters": 12,
        "min_history": 30,
        "max_history": 20_000,
        "activity_alpha": 0.5,
        "heavy_users": 20,
        "history_days": 365,
        "impressions_per_user": 20,
        "long_user_impressions": 60,
    }
    return GeneratorConfig(**{**base, **kw})


def test_counts_oracle_columns_follow_its_formula():
    """The counts world's oracle from each window is its formula on that window's counts;
    history-blind is the formula at count 0."""
    cfg = small()
    world = build_world(cfg)
    _, imps = collect(cfg)
    imp = imps.to_pandas()
    quality = world.item_quality[imp.item_id.to_numpy()]
    np.testing.assert_allclose(imp.oracle_prob_blind, oracle_probability(0 * quality, quality))
    assert (imp.oracle_prob_last100 <= imp.oracle_prob + 1e-12).all()


def test_lifelong_impressions_carry_every_oracle_and_long_users_get_more():
    cfg = lifelong()
    events, imps = collect(cfg)
    df = imps.to_pandas()
    for name in ("oracle_prob", "oracle_prob_blind", "oracle_prob_last100",
                 "oracle_prob_last2048"):  # fmt: skip
        assert df[name].between(0, 1).all(), name
    lengths = np.bincount(events.column("user_id").to_numpy(), minlength=cfg.n_users)
    per_user = df.groupby("user_id").size().reindex(range(cfg.n_users), fill_value=0)
    assert (per_user[lengths >= 1000] == 60).all()
    assert (per_user[lengths < 1000] == 20).all()
    assert df.impression_id.is_unique
    # a user with at most 100 events: the last-100 oracle is the whole-history oracle
    short = df.user_id.map(lambda u: lengths[u] <= 100)
    np.testing.assert_allclose(df.oracle_prob_last100[short], df.oracle_prob[short])


def test_lifelong_world_needs_more_than_the_last_2048_events():
    """The world's bar: for long histories, a share of the oracle's lift over
    history-blind lies beyond the last 2,048 events; short windows lose more."""
    cfg = lifelong()
    events, imps = collect(cfg)
    df = imps.to_pandas()
    lengths = np.bincount(events.column("user_id").to_numpy(), minlength=cfg.n_users)
    long = df[df.user_id.map(lambda u: lengths[u] > 10_000)]
    assert len(long) > 1000
    auc = {c: roc_auc_score(long.label, long[c]) for c in
           ("oracle_prob_blind", "oracle_prob_last100", "oracle_prob_last2048", "oracle_prob")}  # fmt: skip
    assert auc["oracle_prob_blind"] < auc["oracle_prob_last100"] < auc["oracle_prob_last2048"]
    lift = auc["oracle_prob"] - auc["oracle_prob_blind"]
    assert (auc["oracle_prob"] - auc["oracle_prob_last2048"]) / lift >= 0.2


def test_lifelong_components_switch_off_by_their_knobs():
    """With every history term at 0 the oracle is history-blind."""
    off = {"topic_weight": 0, "repeat_weight": 0, "pair_weight": 0, "intent_weight": 0}
    _, imps = collect(lifelong(n_users=60, max_history=3000, heavy_users=2, lifelong=off))
    df = imps.to_pandas()
    np.testing.assert_allclose(df.oracle_prob, df.oracle_prob_blind)


def test_lifelong_repeats_make_favourite_items_recur():
    """With repeats, a user's top 4 items of a topic take a larger share of the topic."""

    def top4_share(repeat_rate: float) -> float:
        # as many categories as topics: each category is one topic
        events, _ = collect(lifelong(n_users=20, n_items=40_000, n_clusters=400,
                                     max_history=5000, heavy_users=5,
                                     lifelong={"repeat_rate": repeat_rate}))  # fmt: skip
        ev = events.to_pandas()
        ev = ev[ev.user_id < 5]
        counts = ev.groupby(["user_id", "category", "item_id"]).size()
        by_group = counts.groupby(level=[0, 1])
        return float(by_group.apply(lambda c: c.nlargest(4).sum()).sum() / counts.sum())

    assert top4_share(0.3) > top4_share(0.0) + 0.1


def test_lifelong_knob_out_of_range_names_the_field():
    with pytest.raises(ValidationError, match=r"lifelong\.repeat_rate"):
        lifelong(lifelong={"repeat_rate": 1.5})
    with pytest.raises(ValidationError, match="regime"):
        lifelong(regime="forever")
