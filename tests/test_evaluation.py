"""Ranking metrics, by history-length bucket, on hand-checkable inputs."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.evaluation import (
    BUCKET_LABELS,
    COLD_START,
    bootstrap_auc,
    gauc,
    history_bucket,
    metrics_by_bucket,
    normalized_entropy,
    paired_comparison,
    paired_comparison_by_bucket,
    rank_scores,
    ranking_metrics,
    verdict,
    weighted_auc,
)
from vista.evaluation import aggregate_runs


def test_buckets_cut_at_0_100_1k_10k_100k():
    got = history_bucket(np.array([0, 1, 100, 101, 1000, 1001, 10_000, 100_000, 100_001, 10**6]))
    assert got.tolist() == [COLD_START, "1-100", "1-100", "101-1k", "101-1k", "1k-10k",
                            "1k-10k", "10k-100k", ">100k", ">100k"]  # fmt: skip


def test_gauc_weights_users_by_impressions_and_skips_one_class_users():
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.5, 0.4])
    users = np.array([1, 1, 2, 2, 2, 3, 3])  # user 3 has only clicks: no AUC of its own
    # user 1: perfect (1.0, 2 rows); user 2: its click ranks below 1 of 2 non-clicks (0.5, 3 rows)
    assert gauc(labels, scores, users) == pytest.approx((1.0 * 2 + 0.5 * 3) / 5)
    assert np.isnan(gauc(np.array([1, 1]), np.array([0.2, 0.3]), np.array([1, 2])))


def test_gauc_agrees_with_per_user_sklearn_on_ties():
    rng = np.random.default_rng(12)
    users, labels = rng.integers(0, 50, 800), rng.integers(0, 2, 800)
    scores = rng.integers(0, 4, 800) / 3  # ties within users
    want, rows = 0.0, 0
    for user in np.unique(users):
        mine = users == user
        if len(np.unique(labels[mine])) == 2:
            want += roc_auc_score(labels[mine], scores[mine]) * mine.sum()
            rows += mine.sum()
    assert gauc(labels, scores, users) == pytest.approx(want / rows, abs=1e-12)


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
    lengths = rng.choice([0, 50, 500, 5000], n)
    out = metrics_by_bucket(labels, probs, users, lengths)
    assert set(out) == {"all", COLD_START, "1-100", "101-1k", "1k-10k"}
    assert out["all"]["auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert sum(out[b]["rows"] for b in BUCKET_LABELS if b in out) == n
    short, cold = (lengths > 0) & (lengths <= 100), lengths == 0
    assert out["1-100"]["auc"] == pytest.approx(roc_auc_score(labels[short], probs[short]))
    assert out[COLD_START]["auc"] == pytest.approx(roc_auc_score(labels[cold], probs[cold]))
    assert np.isnan(ranking_metrics(np.ones(3), np.full(3, 0.5), np.arange(3))["auc"])


def test_seed_runs_aggregate_to_mean_and_sample_std():
    runs = [{"metrics": {"all": {"auc": a, "gauc": a, "log_loss": 0.5, "ne": 0.9, "rows": 10,
                                 "users": 3}}} for a in (0.70, 0.72, 0.74)]  # fmt: skip
    agg = aggregate_runs(runs)["all"]["auc"]
    assert agg["mean"] == pytest.approx(0.72)
    assert agg["std"] == pytest.approx(0.02)
    assert agg["n"] == 3


def _users_and_labels(rng, n_users: int, rows_per_user: int, rate: float = 0.3):
    users = np.repeat(np.arange(n_users), rows_per_user)
    return users, (rng.random(len(users)) < rate).astype(int)


def test_weighted_auc_agrees_with_sklearn_on_ties_and_user_weights():
    rng = np.random.default_rng(2)
    users, labels = _users_and_labels(rng, 60, 7)
    scores = rng.integers(0, 5, len(users)) / 4  # 5 levels: ties within and across classes
    _, user_index = np.unique(users, return_inverse=True)
    ranked = rank_scores(scores, labels.astype(bool), user_index)
    for counts in (np.ones(60, np.int32), rng.integers(0, 4, 60).astype(np.int32)):
        rows = counts[user_index]
        want = roc_auc_score(labels, scores, sample_weight=rows)
        got = weighted_auc(ranked, counts, counts[user_index[labels == 1]])
        assert got == pytest.approx(want, abs=1e-12)


def test_bootstrap_draws_are_weighted_aucs_of_resampled_users():
    """Replay the draws: each resample's AUC is sklearn's with row weights = the number
    of times the row's user was drawn."""
    rng = np.random.default_rng(3)
    users, labels = _users_and_labels(rng, 40, 5)
    scores = {"a": rng.integers(0, 3, (2, len(users))).astype(float), "b": rng.random(len(users))}
    point, draws = bootstrap_auc(labels, users, scores, 20, np.random.default_rng(11))
    assert point["a"] == pytest.approx(np.mean([roc_auc_score(labels, s) for s in scores["a"]]))
    assert point["b"] == pytest.approx(roc_auc_score(labels, scores["b"]))
    replay = np.random.default_rng(11)
    for b in range(20):
        drawn = replay.integers(0, 40, size=40)
        weights = np.bincount(drawn, minlength=40)[users]
        want = roc_auc_score(labels, scores["b"], sample_weight=weights)
        assert draws["b"][b] == pytest.approx(want, abs=1e-12)
        want_a = np.mean([roc_auc_score(labels, s, sample_weight=weights) for s in scores["a"]])
        assert draws["a"][b] == pytest.approx(want_a, abs=1e-12)


def _informed_vs_random(n_users: int, seed: int = 4, draw_seed: int | None = None) -> dict:
    """A model that saw the labels (plus noise), a random one with 2 seeds, and a copy."""
    rng = np.random.default_rng(seed)
    users, labels = _users_and_labels(rng, n_users, 10)
    informed = labels + rng.normal(0, 0.8, len(users))
    scores = {"informed": informed, "random": rng.random((2, len(users))), "copy": informed.copy()}
    draws = np.random.default_rng(seed if draw_seed is None else draw_seed)
    return paired_comparison(labels, users, scores, resamples=300, confidence=0.95, rng=draws)


def test_an_informed_model_beats_a_random_one_and_a_copy_ties_exactly():
    out = _informed_vs_random(200)
    gap = out["difference"]["informed"]["random"]
    assert 0 < gap["low"] <= gap["estimate"] <= gap["high"]
    assert verdict(gap["low"], gap["high"]) == "beats"
    back = out["difference"]["random"]["informed"]
    assert verdict(back["low"], back["high"]) == "trails"
    assert back["low"] == pytest.approx(-gap["high"])
    assert back["high"] == pytest.approx(-gap["low"])
    same = out["difference"]["informed"]["copy"]
    assert (same["estimate"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert verdict(same["low"], same["high"]) == "no significant difference"
    for cell in out["auc"].values():
        assert cell["low"] <= cell["estimate"] <= cell["high"]
    assert out["valid_resamples"] == out["resamples"] == 300


def test_intervals_narrow_as_users_grow():
    widths = []
    for n_users in (50, 400, 3200):
        cell = _informed_vs_random(n_users)["difference"]["informed"]["random"]
        widths.append(cell["high"] - cell["low"])
    assert widths[0] > 2 * widths[1] > 4 * widths[2]  # ~1/sqrt(users): 8x users, ~2.8x


def test_bootstrap_is_reproducible_with_its_seed_and_varies_without():
    first, again = _informed_vs_random(100, seed=5), _informed_vs_random(100, seed=5)
    assert first == again
    other = _informed_vs_random(100, seed=5, draw_seed=6)
    assert other["auc"]["informed"]["estimate"] == first["auc"]["informed"]["estimate"]
    assert other["auc"]["informed"]["low"] != first["auc"]["informed"]["low"]


def test_headroom_ratio_and_too_few_users():
    rng = np.random.default_rng(7)
    users, labels = _users_and_labels(rng, 300, 8)
    noise = rng.normal(0, 1, len(users))
    scores = {"blind": rng.random(len(users)), "oracle": labels + 0.5 * noise,
              "model": labels + 1.5 * noise}  # fmt: skip
    out = paired_comparison(labels, users, scores, resamples=200, confidence=0.9,
                            rng=np.random.default_rng(0),
                            ratios={"headroom": ("model", "blind", "oracle", "blind")})  # fmt: skip
    auc = {k: v["estimate"] for k, v in out["auc"].items()}
    cell = out["ratio"]["headroom"]
    want = (auc["model"] - auc["blind"]) / (auc["oracle"] - auc["blind"])
    assert cell["estimate"] == pytest.approx(want)
    assert 0 < cell["low"] <= cell["estimate"] <= cell["high"] < 1
    few = paired_comparison(labels[:40], users[:40], {k: v[:40] for k, v in scores.items()},
                            resamples=200, confidence=0.9, rng=np.random.default_rng(0),
                            min_users=20)  # 5 users  # fmt: skip
    assert few["resamples"] == 0
    assert np.isnan(few["difference"]["oracle"]["blind"]["low"])
    assert few["auc"]["oracle"]["estimate"] == pytest.approx(
        roc_auc_score(labels[:40], scores["oracle"][:40])
    )
    assert verdict(float("nan"), float("nan")) == "not tested"


def test_comparison_by_bucket_resamples_within_each_bucket():
    rng = np.random.default_rng(8)
    users, labels = _users_and_labels(rng, 300, 6)
    lengths = np.repeat(rng.choice([0, 50, 5000], 300), 6)  # one length per user
    scores = {"a": labels + rng.normal(0, 1, len(users)), "b": rng.random(len(users))}
    kwargs = {"resamples": 100, "confidence": 0.95, "seed": 3}
    out = paired_comparison_by_bucket(labels, users, lengths, scores, **kwargs)
    assert list(out) == ["all", COLD_START, "1-100", "1k-10k"]
    cold = lengths == 0
    assert out[COLD_START]["rows"] == cold.sum()
    assert out[COLD_START]["users"] == len(np.unique(users[cold]))
    assert out[COLD_START]["auc"]["a"]["estimate"] == pytest.approx(
        roc_auc_score(labels[cold], scores["a"][cold]))  # fmt: skip
    # a bucket's draws do not depend on the other buckets' presence
    alone = paired_comparison_by_bucket(labels[cold], users[cold], lengths[cold],
                                        {k: v[cold] for k, v in scores.items()}, **kwargs)  # fmt: skip
    assert alone[COLD_START] == out[COLD_START]


def test_a_thousand_resamples_of_100k_rows_take_seconds():
    import time

    rng = np.random.default_rng(9)
    users, labels = _users_and_labels(rng, 10_000, 10, rate=0.2)
    scores = {"a": labels + rng.normal(0, 1, len(users)), "b": rng.random(len(users))}
    started = time.perf_counter()
    out = paired_comparison(labels, users, scores, resamples=1000, confidence=0.95,
                            rng=np.random.default_rng(0))  # fmt: skip
    assert time.perf_counter() - started < 20  # ~2.3 s alone on one core
    assert (
        verdict(out["difference"]["a"]["b"]["low"], out["difference"]["a"]["b"]["high"]) == "beats"
    )
