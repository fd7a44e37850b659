"""Linear probes on frozen summaries: what K summary tokens still tell about a history.

Three questions, each answered by a linear read-out of the flattened (K * D) summary,
fitted on some probe users and scored on the others:

(a) counts: log(1 + number of events) of each probed category (regression, R^2);
(b) needles: is needle item j in the history? Needle items are fresh ids whose
    embedding rows no source event uses (an arbitrary event, not a popular one), each
    planted in half of the histories, independently, at an exact depth drawn from a
    grid (depth 1 = the most recent event); AUC per depth, histories with the needle
    at that depth against histories without it;
(c) recency: log(1 + days since the last event) of each probed category, over the
    users who have that category (regression, R^2).

Probe histories (``sample_history``) are resampled from real users' histories (their
item/category mix and its drift over time), stretched or thinned to the target length
with timestamps spread over the source's span; ground truth is computed from each
sampled history itself (``category_counts``, ``days_since_last``, ``needle_depths``).

The probes are ridge regressions on the standardised summary, one per target, with
the penalty picked per target by generalised cross-validation (exact, cheap
leave-one-out) on the training users. For the needle test this is a least-squares
classifier on the 0/1 label, one per needle item, rather than a logistic one: AUC only
needs a ranking score, any monotone link ranks the same, and with a handful of
positives per fold (long histories are costly, so few users) a logistic probe would
need a nested cross-validation that breaks at 1-3 positives, where GCV does not. One
probe per fixed needle item (rather than a bilinear probe over item embeddings) keeps
the probe linear in the summary alone and needs nothing from the summarizer's
internals: it works on any module that maps a HistoryBatch to (B, K, D) tokens.

Figures come from out-of-fold predictions (every probe user is scored by a probe that
never saw them: K-fold cross-fitting over probe users), with a 95% percentile
bootstrap interval over the scored users (the fitted probes held fixed). Long histories
are costly, so fewer users are sampled there; every length's probes are nevertheless
fitted on the same number of users (``common_train_size``), since a probe's R^2 grows
with its training set and a trend with length must not be a trend in sample size.

Long because the three probes share the sampling of probe histories, their ground truth
and the ridge fit with its cross-validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from models.summarizer import encode_histories
from vista.core.config import ProbeConfig, SummarizerConfig

MICROS_PER_DAY = 86_400_000_000
# a probe event copies a source event from within +-5% of the source's length around
# its place in time: the user's drift is kept, without long runs of one repeated event
MIX_SHARE = 0.05
# ridge penalties tried by GCV, on standardised features
ALPHAS = np.logspace(-2, 6, 17)
# a source history is thinned to this many events (evenly, so its mix, drift and span
# stay): what sampling needs, and 256 sources of 1M events would not fit in memory
SOURCE_MAX_EVENTS = 20_000
# fallback sources (no usable histories snapshot): events and span of each
FALLBACK_EVENTS = 200
FALLBACK_SPAN_DAYS = 90


class ProbeInputError(ValueError):
    """The probe histories cannot be built from what the profile has."""


class History(NamedTuple):
    """One user's events, oldest first; every field (N,) int64."""

    items: np.ndarray
    categories: np.ndarray
    timestamps: np.ndarray  # epoch microseconds


class Truth(NamedTuple):
    """Ground truth of a set of probe histories, one row per user."""

    counts: np.ndarray  # (U, C) events per probed category
    days: np.ndarray  # (U, C) days since the category's last event; NaN when absent
    needles: np.ndarray  # (U, M) depth of needle j (1 = most recent), 0 when absent


# ---------------------------------------------------------------- probe histories
def user_rng(seed: int, length: int, user: int) -> np.random.Generator:
    """One generator per (length, probe user): a user's history does not depend on how
    many users or which batch size a run uses."""
    return np.random.default_rng([seed, length, user])


def users_at(length: int, cfg: ProbeConfig) -> int:
    """Probe users at one length: ``users``, fewer where they would exceed
    ``max_events_per_length`` events in all, never fewer than ``min_users``."""
    return max(cfg.min_users, min(cfg.users, cfg.max_events_per_length // length))


def common_train_size(cfg: ProbeConfig) -> int:
    """Users each probe is fitted on, at every length: the smallest training fold of
    the length with the fewest users (K-fold: n - ceil(n / K) users train)."""
    fewest = min(users_at(length, cfg) for length in cfg.lengths)
    return fewest - -(-fewest // cfg.folds)


def sample_history(source: History, length: int, rng: np.random.Generator) -> History:
    """``length`` events resampled from ``source`` (N events, oldest first).

    Event times are ``length`` sorted uniform draws over the source's span (linear
    interpolation between its event times); each event copies the item and category
    of a source event near that time (within MIX_SHARE of the source's length), so
    the probe history keeps the user's mix and its drift whatever the length."""
    n = len(source.items)
    if n == 0:
        raise ProbeInputError("cannot sample a probe history from an empty source history")
    pos = np.sort(rng.random(length)) * (n - 1)  # (L,) fractional place in the source
    half = int(MIX_SHARE * n) if n > 1 else 0
    jitter = rng.integers(-half, half + 1, length)
    idx = np.clip(np.rint(pos).astype(np.int64) + jitter, 0, n - 1)
    times = np.interp(pos, np.arange(n), source.timestamps.astype(np.float64))
    return History(source.items[idx], source.categories[idx], times.astype(np.int64))


def thin_history(history: History, max_events: int = SOURCE_MAX_EVENTS) -> History:
    """At most ``max_events`` events, evenly spaced in order (first and last kept)."""
    n = len(history.items)
    if n <= max_events:
        return history
    keep = np.linspace(0, n - 1, max_events).round().astype(np.int64)
    return History(*(a[keep] for a in history))


def synthetic_sources(n_users: int, n_categories: int, as_of_us: int, seed: int) -> list[History]:
    """Fallback sources when the snapshot has no usable history: each user draws a
    category mix (Dirichlet, Zipf-like prior), items uniform within the category (20
    per category) and FALLBACK_EVENTS times uniform over FALLBACK_SPAN_DAYS before
    ``as_of``."""
    rng = np.random.default_rng([seed, 1])
    prior = 1.0 / np.arange(1, n_categories + 1)
    sources = []
    for _ in range(n_users):
        mix = rng.dirichlet(prior * 2)
        cats = rng.choice(n_categories, FALLBACK_EVENTS, p=mix).astype(np.int64)
        items = cats * 20 + rng.integers(0, 20, FALLBACK_EVENTS)
        ages = rng.random(FALLBACK_EVENTS) * FALLBACK_SPAN_DAYS * MICROS_PER_DAY
        times = np.sort(as_of_us - 1 - ages.astype(np.int64))
        sources.append(History(items.astype(np.int64), cats, times))
    return sources


def top_categories(sources: Sequence[History], n: int) -> np.ndarray:
    """The ``n`` most frequent categories over the sources' events (ties: smaller id)."""
    values, counts = np.unique(np.concatenate([s.categories for s in sources]), return_counts=True)
    order = np.lexsort((values, -counts))
    return values[order[:n]]


def pick_needles(
    candidates: np.ndarray, candidate_rows: np.ndarray, used_rows: np.ndarray, n: int
) -> np.ndarray:
    """The first ``n`` candidate item ids whose embedding row no source item uses and
    no other needle shares: a needle must be told apart from every other event by its
    identity alone (ids are hashed into rows, so a fresh id can still collide)."""
    taken = set(np.asarray(used_rows).tolist())
    chosen = []
    for item, row in zip(candidates.tolist(), candidate_rows.tolist(), strict=True):
        if row not in taken:
            chosen.append(item)
            taken.add(row)
            if len(chosen) == n:
                return np.asarray(chosen, dtype=np.int64)
    raise ProbeInputError(
        f"only {len(chosen)} of {n} needle items have an embedding row that no source item "
        "uses: lower probe.needles or use a larger summarizer.vocab_size"
    )


def plan_needles(
    n_users: int, length: int, depths: Sequence[int], n_needles: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_users, n_needles) depth at which each needle is planted, 0 = not planted.

    Needles are independent of one another: each is planted with probability 1/2 at a
    depth drawn from those in ``depths`` that fit the length. (Were they not, say each
    user's needles took distinct depths, then needle j at depth d would push the other
    needles elsewhere, and a probe could read j off the others: a needle past the last
    100 events would look visible to the last-100 features.) Two needles cannot share
    an event, so when a depth is taken the later needle (random order) moves to the
    next older free event; it is then off the depth grid, which counts exact depths."""
    valid = np.asarray([d for d in depths if d <= length], dtype=np.int64)
    if n_needles > length:
        raise ProbeInputError(f"{n_needles} needles do not fit a history of {length} events")
    plan = np.zeros((n_users, n_needles), dtype=np.int64)
    if len(valid) == 0:  # every depth is beyond this length: no needle here
        return plan
    for user in range(n_users):
        present = rng.random(n_needles) < 0.5
        drawn = rng.choice(valid, n_needles)
        taken: set[int] = set()
        for needle in np.flatnonzero(present)[rng.permutation(int(present.sum()))]:
            depth, step = int(drawn[needle]), 1
            while depth in taken:
                depth += step
                if depth > length:  # nothing older is free: look at newer events
                    depth, step = int(drawn[needle]) - 1, -1
            taken.add(depth)
            plan[user, needle] = depth
    return plan


def plant_needles(history: History, needle_ids: np.ndarray, depths: np.ndarray) -> History:
    """A copy of ``history`` whose event at depth d (d-th most recent) has needle j's
    item id for every depths[j] = d > 0; its category and time stay, so only the
    item's identity marks the needle."""
    items = history.items.copy()
    n = len(items)
    for needle, depth in zip(needle_ids.tolist(), np.asarray(depths).tolist(), strict=True):
        if depth > n:
            raise ValueError(f"needle depth {depth} is beyond the history's {n} events")
        if depth > 0:
            items[n - depth] = needle
    return History(items, history.categories, history.timestamps)


def last_events(history: History, n: int) -> History:
    """The most recent ``n`` events (the truncated baseline's input)."""
    return History(*(a[-n:] for a in history))


# ---------------------------------------------------------------- ground truth
def category_counts(categories: np.ndarray, probed: np.ndarray) -> np.ndarray:
    """(C,) number of events of each probed category."""
    return np.asarray([np.count_nonzero(categories == c) for c in probed.tolist()], np.int64)


def days_since_last(
    categories: np.ndarray, timestamps: np.ndarray, probed: np.ndarray, as_of_us: int
) -> np.ndarray:
    """(C,) days from each probed category's last event to ``as_of``; NaN when absent."""
    out = np.full(len(probed), np.nan)
    for j, c in enumerate(probed.tolist()):
        mine = timestamps[categories == c]
        if len(mine):
            out[j] = (as_of_us - int(mine.max())) / MICROS_PER_DAY
    return out


def needle_depths(items: np.ndarray, needle_ids: np.ndarray) -> np.ndarray:
    """(M,) depth of each needle's most recent occurrence (1 = the last event), 0 when
    it does not occur."""
    n = len(items)
    out = np.zeros(len(needle_ids), dtype=np.int64)
    for j, needle in enumerate(needle_ids.tolist()):
        where = np.flatnonzero(items == needle)
        if len(where):
            out[j] = n - where[-1]
    return out


def ground_truth(
    histories: Sequence[History], probed: np.ndarray, needle_ids: np.ndarray, as_of_us: int
) -> Truth:
    return Truth(
        np.stack([category_counts(h.categories, probed) for h in histories]),
        np.stack(
            [days_since_last(h.categories, h.timestamps, probed, as_of_us) for h in histories]
        ),
        np.stack([needle_depths(h.items, needle_ids) for h in histories]),
    )


# ---------------------------------------------------------------- features
Summarizer = Callable[..., torch.Tensor]  # HistoryBatch -> (B, K, D)


def summary_features(
    summarizer: Summarizer, histories: Sequence[History], as_of_us: int, cfg: SummarizerConfig
) -> np.ndarray:
    """Frozen summaries, flattened: (U, K * D) float32. Batch histories of one length:
    encode_histories pads a batch to its longest history."""
    batch = encode_histories(
        [h.items for h in histories],
        [h.categories for h in histories],
        [h.timestamps for h in histories],
        as_of_us,
        cfg,
    )
    with torch.inference_mode():
        tokens = summarizer(batch)  # (U, K, D)
    return tokens.reshape(len(histories), -1).float().numpy()


class ProbeSet(NamedTuple):
    """Everything the probes of one history length need."""

    features: dict[str, np.ndarray]  # "full" / "last_n" -> (U, K * D)
    truth: Truth


def build_probe_set(
    summarizer: Summarizer,
    sources: Sequence[History],
    length: int,
    n_users: int,
    probed: np.ndarray,
    needle_ids: np.ndarray,
    as_of_us: int,
    summarizer_cfg: SummarizerConfig,
    probe_cfg: ProbeConfig,
) -> ProbeSet:
    """Sample ``n_users`` probe histories of ``length`` events (probe user u resamples
    sources[u]), plant the needles, and compute ground truth and both feature sets in
    batches of at most ``batch_events`` events, so memory stays bounded at 1M events."""
    per_batch = max(1, probe_cfg.batch_events // length)
    full, last, truths = [], [], []
    for start in range(0, n_users, per_batch):
        batch = []
        for user in range(start, min(start + per_batch, n_users)):
            rng = user_rng(probe_cfg.seed, length, user)
            history = sample_history(sources[user], length, rng)
            plan = plan_needles(1, length, probe_cfg.depths, len(needle_ids), rng)[0]
            batch.append(plant_needles(history, needle_ids, plan))
        truths.append(ground_truth(batch, probed, needle_ids, as_of_us))
        full.append(summary_features(summarizer, batch, as_of_us, summarizer_cfg))
        if length <= probe_cfg.baseline_events:  # the last N events are the whole history
            last.append(full[-1])
        else:
            tails = [last_events(h, probe_cfg.baseline_events) for h in batch]
            last.append(summary_features(summarizer, tails, as_of_us, summarizer_cfg))
    truth = Truth(*(np.concatenate(parts) for parts in zip(*truths, strict=True)))
    return ProbeSet({"full": np.concatenate(full), "last_n": np.concatenate(last)}, truth)


# ---------------------------------------------------------------- probes
def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """(n,) fold of each probe user: balanced, shuffled."""
    return np.random.default_rng([seed, 2]).permutation(np.arange(n) % folds)


def _design(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise by the training rows; when features outnumber training rows,
    express both in an orthonormal basis of the training rows' span. An L2-penalised
    linear fit lies in that span, so no prediction changes, and a 32k-wide summary
    costs as much as a (rows)-wide one."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 1e-8, std, 1.0)  # a constant feature stays 0 and weighs nothing
    a, b = (train - mean) / std, (test - mean) / std
    if a.shape[1] > a.shape[0]:
        _, s, vt = np.linalg.svd(a, full_matrices=False)
        basis = vt[s > max(s.max(initial=0.0), 1e-12) * 1e-10].T
        a, b = a @ basis, b @ basis
    return a, b


def _fit_predict(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, mask: np.ndarray, centred: bool
) -> np.ndarray:
    """Fit one ridge probe per column of y (n, T) on a's rows where mask holds and
    predict b's rows: (m, T). Targets defined for every row share one fit (one
    decomposition, a penalty each)."""
    out = np.zeros((len(b), y.shape[1]))
    varies = np.ptp(np.where(mask, y, 0.0), axis=0) > 0
    shared = np.flatnonzero(mask.all(0) & varies) if len(a) >= 3 else np.zeros(0, np.int64)
    if len(shared):
        probe = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(a, y[:, shared])
        pred = probe.predict(b).reshape(len(b), len(shared))  # one target comes back 1-D
        out[:, shared] = pred - (probe.intercept_ if centred else 0.0)
    for t in sorted(set(range(y.shape[1])) - set(shared.tolist())):
        rows = mask[:, t]
        target = y[rows, t]
        if len(target) < 3 or np.ptp(target) == 0:
            # too few or constant training targets: the probe is their mean
            out[:, t] = 0.0 if centred or not len(target) else target.mean()
        else:
            probe = RidgeCV(alphas=ALPHAS).fit(a[rows], target)
            out[:, t] = probe.predict(b) - (probe.intercept_ if centred else 0.0)
    return out


def ridge_oof(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    mask: np.ndarray | None = None,
    train_size: int | None = None,
    centred: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions (U, T) of one ridge probe per target column of ``y``
    (U, T) on features ``x`` (U, F): each fitted on the other folds' users where
    ``mask`` (U, T) holds, with its penalty chosen by GCV; NaN where mask is False.

    ``train_size``: fit each fold's probes on that many of its training users (drawn
    with ``seed``), so that probes at every history length learn from as many users
    and a change with length is not a change in sample size. ``centred``: leave out
    the fitted intercept (the training users' mean target). Out of fold, that mean is
    anti-correlated with the held-out users' labels (more positives held out, fewer
    left to train on), which pushes a pooled AUC below 0.5 when the features carry
    nothing; the rest of the score is independent of the held-out labels."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mask = np.ones(y.shape, bool) if mask is None else np.asarray(mask, bool)
    out = np.full(y.shape, np.nan)
    rng = np.random.default_rng([seed, 4])
    # small matrices: one BLAS thread is fastest, and many thrash on a shared machine
    with threadpool_limits(limits=1):
        for fold in np.unique(folds):
            test = folds == fold
            train = np.flatnonzero(~test)
            if train_size is not None and train_size < len(train):
                train = np.sort(rng.choice(train, train_size, replace=False))
            a, b = _design(x[train], x[test])
            out[test] = _fit_predict(a, b, y[train], mask[train], centred)
    return np.where(mask, out, np.nan)


# ---------------------------------------------------------------- metrics
def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - SSE / SST around the scored users' own mean; NaN when the target is constant
    (nothing to explain). Out of fold it can be below 0: worse than the mean."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    sst = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    if len(y) < 3 or sst <= 1e-12 * len(y):
        return float("nan")
    return 1.0 - float(((y - pred) ** 2).sum()) / sst


def auc_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties count half); NaN without both classes."""
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def macro_r2(y: np.ndarray, pred: np.ndarray, rows: np.ndarray) -> float:
    """Mean over target columns of R^2 on ``rows`` (indices, repeats allowed), each
    over the rows where the column is defined (not NaN)."""
    scores = []
    for t in range(y.shape[1]):
        yt, pt = y[rows, t], pred[rows, t]
        ok = np.isfinite(yt) & np.isfinite(pt)
        scores.append(r2_score(yt[ok], pt[ok]))
    return _finite_mean(scores)


def needle_auc(depths: np.ndarray, scores: np.ndarray, depth: int, rows: np.ndarray) -> float:
    """Mean over needles of the AUC of needle j's probe: users with needle j at
    ``depth`` against users without needle j (users with it elsewhere are left out)."""
    aucs = []
    for j in range(depths.shape[1]):
        d, s = depths[rows, j], scores[rows, j]
        use = (d == depth) | (d == 0)
        aucs.append(auc_score(d[use] == depth, s[use]))
    return _finite_mean(aucs)


def bootstrap(
    stat: Callable[[np.ndarray], float], n: int, n_boot: int, seed: int
) -> dict[str, float | int | None]:
    """``stat`` on all n users (value) and its 95% percentile interval over n_boot
    resamples of the users; None where undefined."""
    rng = np.random.default_rng([seed, 3])
    value = stat(np.arange(n))
    reps = np.asarray([stat(rng.integers(0, n, n)) for _ in range(n_boot)])
    reps = reps[np.isfinite(reps)]

    def clean(v: float) -> float | None:
        return round(float(v), 4) if np.isfinite(v) else None

    lo, hi = np.percentile(reps, [2.5, 97.5]) if len(reps) else (np.nan, np.nan)
    return {"value": clean(value), "lo": clean(lo), "hi": clean(hi), "n": int(n)}


def evaluate_probes(
    features: np.ndarray,
    truth: Truth,
    depths: Sequence[int],
    folds: np.ndarray,
    n_boot: int,
    seed: int,
    train_size: int | None = None,
) -> dict[str, object]:
    """The three probes on one feature set (U, F): count R^2, recency R^2 (both macro
    over probed categories) and needle AUC per depth, each with its interval."""
    n = len(features)
    fit = {"folds": folds, "train_size": train_size, "seed": seed}
    log_counts = np.log1p(truth.counts.astype(np.float64))
    count_pred = ridge_oof(features, log_counts, **fit)
    present = np.isfinite(truth.days)
    log_days = np.where(present, np.log1p(np.where(present, truth.days, 0.0)), np.nan)
    day_pred = ridge_oof(features, np.nan_to_num(log_days), mask=present, **fit)
    labels = (truth.needles > 0).astype(np.float64)
    needle_scores = ridge_oof(features, labels, centred=True, **fit)
    needles = {}
    for depth in depths:
        positives = int((truth.needles == depth).sum())
        if positives == 0:
            continue

        def at_depth(rows: np.ndarray, depth: int = depth) -> float:
            return needle_auc(truth.needles, needle_scores, depth, rows)

        needles[str(depth)] = {**bootstrap(at_depth, n, n_boot, seed), "positives": positives}
    return {
        "count_r2": bootstrap(lambda r: macro_r2(log_counts, count_pred, r), n, n_boot, seed),
        "recency_r2": bootstrap(lambda r: macro_r2(log_days, day_pred, r), n, n_boot, seed),
        "needle_auc": needles,
    }
