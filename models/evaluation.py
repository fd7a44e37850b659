"""Ranking metrics, overall and by history-length bucket.

- AUC: how well scores order clicks above non-clicks across all impressions.
- GAUC: per-user AUC averaged with impression weights, over users who have both a click
  and a non-click (a user's own ordering is what a ranker serves).
- log loss, and normalized entropy (NE): log loss divided by the entropy of the window's
  click rate, so 1.0 is "no better than predicting the average" and lower is better.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

# upper edges of the history-length buckets (events before the impression's snapshot)
BUCKET_EDGES = (100, 1_000, 10_000, 100_000)
BUCKET_LABELS = ("<=100", "101-1k", "1k-10k", "10k-100k", ">100k")
EPS = 1e-7


def history_bucket(lengths: np.ndarray) -> np.ndarray:
    """Bucket label of each history length."""
    index = np.searchsorted(np.asarray(BUCKET_EDGES), np.asarray(lengths), side="left")
    return np.asarray(BUCKET_LABELS, dtype=object)[index]


def gauc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUC over users with both classes (NaN if none)."""
    frame = pd.DataFrame({"label": labels, "score": scores, "user": users})
    total, weight = 0.0, 0
    for _, group in frame.groupby("user", sort=False):
        if group["label"].nunique() == 2:
            total += roc_auc_score(group["label"], group["score"]) * len(group)
            weight += len(group)
    return total / weight if weight else float("nan")


def normalized_entropy(labels: np.ndarray, probs: np.ndarray) -> float:
    rate = float(np.clip(np.mean(labels), EPS, 1 - EPS))
    baseline = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    return float(log_loss(labels, np.clip(probs, EPS, 1 - EPS), labels=[0, 1]) / baseline)


def ranking_metrics(labels: np.ndarray, probs: np.ndarray, users: np.ndarray) -> dict:
    """AUC, GAUC, log loss, NE, rows and click rate; AUC is NaN for a one-class window."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    two_classes = len(np.unique(labels)) == 2
    return {
        "auc": float(roc_auc_score(labels, probs)) if two_classes else float("nan"),
        "gauc": gauc(labels, probs, np.asarray(users)),
        "log_loss": float(log_loss(labels, np.clip(probs, EPS, 1 - EPS), labels=[0, 1])),
        "ne": normalized_entropy(labels, probs),
        "rows": len(labels),
        "users": len(np.unique(users)),
        "positive_rate": float(np.mean(labels)),
    }


def metrics_by_bucket(
    labels: np.ndarray, probs: np.ndarray, users: np.ndarray, history_lengths: np.ndarray
) -> dict[str, dict]:
    """ranking_metrics overall ("all") and per history-length bucket that has rows."""
    out = {"all": ranking_metrics(labels, probs, users)}
    buckets = history_bucket(history_lengths)
    for label in BUCKET_LABELS:
        rows = buckets == label
        if rows.any():
            out[label] = ranking_metrics(labels[rows], probs[rows], users[rows])
    return out
