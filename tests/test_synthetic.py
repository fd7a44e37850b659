import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

from datasets.synthetic import build_world, generate, oracle_probability
from vista.config import GeneratorConfig


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
