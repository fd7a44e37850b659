"""Ranking metrics, by history-length bucket, on hand-checkable inputs."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.evaluation import (
    BUCKET_LABELS,
    gauc,
    history_bucket,
    metrics_by_bucket,
    normalized_entropy,
    ranking_metrics,
)
from vista.evaluation import aggregate_runs


def test_buckets_cut_at_100_1k_10k_100k():
    got = history_bucket(np.array([0, 100, 101, 1000, 1001, 10_000, 100_000, 100_001, 10**6]))
    assert got.tolist() == ["<=100", "<=100", "101-1k", "101-1k", "1k-10k", "1k-10k",
                            "10k-100k", ">100k", ">100k"]  # fmt: skip


def test_gauc_weights_users_by_impressions_and_skips_one_class_users():
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.5, 0.4])
    users = np.array([1, 1, 2, 2, 2, 3, 3])  # user 3 has only clicks: no AUC of its own
    # user 1: perfect (1.0, 2 rows); user 2: its click ranks below 1 of 2 non-clicks (0.5, 3 rows)
    assert gauc(labels, scores, users) == pytest.approx((1.0 * 2 + 0.5 * 3) / 5)
    assert np.isnan(gauc(np.array([1, 1]), np.array([0.2, 0.3]), np.array([1, 2])))


def test_normalized_entropy_is_one_for_the_base_rate_and_lower_when_informative():
    rng = np.random.default_rng(0)
    labels = (rng.random(5000) < 0.3).astype(int)
    assert normalized_entropy(labels, np.full(5000, labels.mean())) == pytest.approx(1.0)
    informative = np.where(labels == 1, 0.6, 0.2)
    assert normalized_entropy(labels, informative) < 0.9


def test_metrics_by_bucket_split_rows_and_agree_with_sklearn():
    rng = np.random.default_rng(1)
    n = 2000
    labels = rng.integers(0, 2, n)
    probs = np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1)
    users = rng.integers(0, 100, n)
    lengths = rng.choice([50, 500, 5000], n)
    out = metrics_by_bucket(labels, probs, users, lengths)
    assert set(out) == {"all", "<=100", "101-1k", "1k-10k"}
    assert out["all"]["auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert sum(out[b]["rows"] for b in BUCKET_LABELS if b in out) == n
    short = lengths <= 100
    assert out["<=100"]["auc"] == pytest.approx(roc_auc_score(labels[short], probs[short]))
    assert np.isnan(ranking_metrics(np.ones(3), np.full(3, 0.5), np.arange(3))["auc"])


def test_seed_runs_aggregate_to_mean_and_sample_std():
    runs = [{"metrics": {"all": {"auc": a, "gauc": a, "log_loss": 0.5, "ne": 0.9, "rows": 10,
                                 "users": 3}}} for a in (0.70, 0.72, 0.74)]  # fmt: skip
    agg = aggregate_runs(runs)["all"]["auc"]
    assert agg["mean"] == pytest.approx(0.72)
    assert agg["std"] == pytest.approx(0.02)
    assert agg["n"] == 3
