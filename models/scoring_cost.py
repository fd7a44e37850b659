"""Serving cost of each ranker: time to score 1,000 candidates of one user, by that
user's history length. What each variant reads at serving time:

- vista: K summary tokens (cached offline), plus the last R raw items if configured;
- din_last100: the last 100 raw items;
- sim_category: per candidate, up to 100 items of its category, looked up in a
  per-(user, category) index built offline (that build is timed apart, as it grows
  with N like the summary does);
- full_attention: every raw item, N of them.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from models.ranker import DIN_LENGTH, SIM_LENGTH, Ranker, score_one_user

HISTORY_LENGTHS = (100, 1_000, 10_000, 100_000, 1_000_000)
N_CANDIDATES = 1_000


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def category_index(items: np.ndarray, categories: np.ndarray, top: int) -> dict[int, np.ndarray]:
    """SIM's offline index: category -> its most recent ``top`` items (history oldest first)."""
    order = np.argsort(categories, kind="stable")
    cats_sorted = categories[order]
    bounds = np.flatnonzero(np.diff(cats_sorted)) + 1
    index = {}
    for group in np.split(order, bounds):
        if len(group):
            index[int(categories[group[0]])] = items[group[-top:][::-1]]
    return index


@torch.no_grad()
def scoring_cost(
    model: Ranker,
    lengths: tuple[int, ...] = HISTORY_LENGTHS,
    n_candidates: int = N_CANDIDATES,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict]:
    """Seconds to score ``n_candidates`` for one user, per history length."""
    spec = model.spec
    rng = np.random.default_rng(seed)
    cand_items = torch.from_numpy(rng.integers(1, spec.vocab_size, n_candidates))
    cand_cats_np = rng.integers(1, spec.category_vocab_size, n_candidates)
    cand_cats = torch.from_numpy(cand_cats_np)
    width = spec.summary.n_tokens * spec.summary.token_dim if spec.variant == "vista" else 0
    summaries = torch.from_numpy(rng.standard_normal((1, width)).astype(np.float32))
    rows = []
    for n in lengths:
        items = rng.integers(1, spec.vocab_size, n)
        cats = rng.integers(1, spec.category_vocab_size, n)
        row = {"history_length": n, "index_seconds": None}
        if spec.variant == "sim_category":
            started = time.perf_counter()
            index = category_index(items, cats, SIM_LENGTH)
            row["index_seconds"] = time.perf_counter() - started
            seqs = [index.get(int(c), np.zeros(0, np.int64)) for c in cand_cats_np]
            width_seq = max(1, max(len(s) for s in seqs))
            seq_items = np.zeros((n_candidates, width_seq), dtype=np.int64)
            seq_mask = np.zeros(seq_items.shape, dtype=bool)
            for i, s in enumerate(seqs):
                seq_items[i, : len(s)] = s
                seq_mask[i, : len(s)] = True
            seq_cats = np.repeat(cand_cats_np[:, None], width_seq, axis=1)
            keys_read = int(sum(len(s) for s in seqs))
        else:
            keep = {"vista": spec.recent_items, "din_last100": DIN_LENGTH,
                    "full_attention": n, "blind": 0}[spec.variant]  # fmt: skip
            keep = min(keep, n)
            seq_items, seq_cats = items[n - keep :][None, :], cats[n - keep :][None, :]
            seq_mask = np.ones(seq_items.shape, dtype=bool)
            keys_read = keep + (spec.summary.n_tokens if spec.variant == "vista" else 0)
        inputs = tuple(torch.from_numpy(a) for a in (seq_items, seq_cats, seq_mask))

        def run(inputs=inputs):
            return score_one_user(model, (cand_items, cand_cats), summaries, *inputs)

        row["seconds"] = _median_seconds(run, repeats)
        row["keys_per_candidate"] = keys_read / (n_candidates if spec.variant == "sim_category"
                                                 else 1)  # fmt: skip
        rows.append(row)
    return rows
