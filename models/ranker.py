"""Rankers that score a candidate item for a user: the VISTA ranker and its baselines.

Every variant embeds the candidate (item + category) the same way, pools a sequence of
user-side keys with attention conditioned on the candidate, and scores
[candidate, context, candidate * context] with the same MLP. Only the keys differ:

- ``vista``: the K cached summary tokens (plus, optionally, the last R raw items);
  cost per candidate O(K * D), whatever the history length.
- ``din_last100``: the last 100 raw items, pooled with DIN's activation unit
  (an MLP on [q, k, q - k, q * k], unnormalized weights).
- ``sim_category``: SIM-style hard search: the user's items of the candidate's category,
  most recent first, top 100 (precomputed per (user, category), read from Feast),
  pooled with the DIN unit.
- ``full_attention``: softmax target attention over the raw history, up to the longest
  tail stored (``ranker.full_attention_length``): the upper bound, at O(N) per candidate.
- ``blind``: no history at all, only the candidate (item, category): the floor that
  every history-reading model must clear, and the zero of "headroom captured".

How a variant pools its keys is part of its spec (``pooling``): ``softmax`` (scaled
dot-product attention), ``sum`` (unnormalised dot-product weights: a linear read) or
``din`` (DIN's activation unit, unnormalised). The evaluation lets each variant keep
the pooling that is best for it on validation users. VISTA's last R raw items, when
configured, are pooled apart from the summary tokens (their own context), so each
key set keeps the pooling that suits it.

All read point-in-time features from one Feast training set; sequences are kept ragged
and padded per batch, with batches grouped by length. Rows that read the same keys (the
candidates of one user at one snapshot) are scored together: their keys are embedded
and projected once, so full attention over 16k raw events costs per user what it used to
cost per impression.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from models.attention import TokenPooling, slot_match
from models.sketch import sketch_features, sketch_read, sketch_tables
from models.summarizer import item_index
from vista.core.config import RankerConfig

SUMMARY_COLUMN = "summary"
TAIL_ITEMS, TAIL_CATEGORIES = "tail_item_ids", "tail_categories"
CATEGORY_ITEMS = "category_item_ids"
BASE_COLUMNS = ("user_id", "item_id", "category", "label", "event_timestamp")
VARIANTS = ("vista", "din_last100", "sim_category", "full_attention", "blind")
POOLINGS = ("softmax", "sum", "slot", "din")
# the pooling each variant is defined with, and the ones it may choose on validation
DEFAULT_POOLING = {"vista": "softmax", "din_last100": "din", "sim_category": "din",
                   "full_attention": "softmax", "blind": "softmax"}  # fmt: skip
POOLING_CHOICES = {"vista": ("softmax", "sum", "slot"), "din_last100": ("din", "softmax"),
                   "sim_category": ("din", "softmax"), "full_attention": ("softmax", "sum"),
                   "blind": ("softmax",)}  # fmt: skip
DIN_LENGTH = SIM_LENGTH = 100
SCORING_CHUNK = 64  # fewest candidates per pass when scoring against one very long history
# candidate x key pairs per pass: bounds the attention matrix (C x L floats) in memory,
# so K summary tokens score thousands of candidates in one pass
SCORING_PAIRS = 2**17


class TrainingSetError(ValueError):
    """The training set misses a feature or holds values the ranker cannot use."""


@dataclass(frozen=True)
class SummaryShape:
    n_tokens: int
    token_dim: int
    n_heads: int = 1  # the summarizer's heads: slot pooling reads each head's slice apart
    sketch_heads: int = 0  # the last heads are an item sketch (models/sketch.py)


@dataclass(frozen=True)
class RankerSpec:
    """What a ranker reads: its variant, the summary shape, vocabularies, lengths."""

    variant: str
    summary: SummaryShape
    vocab_size: int
    category_vocab_size: int
    recent_items: int = 0  # vista only: the last R raw items beside the tokens
    full_attention_length: int = 2048
    pooling: str = ""  # of the summary tokens (vista) or the raw items; "" = the default
    # vista with slot pooling: add the candidate's match with its slot read per head
    slot_match: bool = False
    # vista with an item sketch: beside each head's count of the candidate, its slot's RMS
    sketch_energy: bool = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown ranker variant {self.variant!r}: one of {VARIANTS}")
        if not self.pooling:
            object.__setattr__(self, "pooling", DEFAULT_POOLING[self.variant])
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}: one of {POOLINGS}")
        if self.variant == "vista" and self.pooling == "din":
            raise ValueError("the summary tokens pool by softmax, sum or slot, not din")
        if self.variant != "vista" and self.pooling == "slot":
            raise ValueError("slot pooling reads summary tokens: vista only")

    @property
    def uses_slot_match(self) -> bool:
        return self.slot_match and self.variant == "vista" and self.pooling == "slot"

    @property
    def required_columns(self) -> tuple[str, ...]:
        if self.variant == "vista":
            extra = (SUMMARY_COLUMN,) + ((TAIL_ITEMS, TAIL_CATEGORIES) if self.recent_items else ())
        elif self.variant == "sim_category":
            extra = (CATEGORY_ITEMS,)
        elif self.variant == "blind":
            extra = ()
        else:
            extra = (TAIL_ITEMS, TAIL_CATEGORIES)
        return BASE_COLUMNS + extra

    @property
    def sequence_length(self) -> int:
        """Raw items the variant reads per candidate (0: none)."""
        return {
            "vista": self.recent_items,
            "din_last100": DIN_LENGTH,
            "sim_category": SIM_LENGTH,
            "full_attention": self.full_attention_length,
            "blind": 0,
        }[self.variant]


# ---------------------------------------------------------------- checks and data
def _array_lengths(column: pd.Series) -> np.ndarray:
    return column.map(lambda s: -1 if s is None or not hasattr(s, "__len__") else len(s)).to_numpy()


def check_training_set(df: pd.DataFrame, spec: RankerSpec) -> None:
    """Fail with the column and the number of rows affected."""
    missing = [c for c in spec.required_columns if c not in df.columns]
    if missing:
        raise TrainingSetError(f"training set misses column(s) {missing} ({len(df)} rows)")
    bad_labels = int((~df["label"].isin([0, 1])).sum())
    if bad_labels:
        raise TrainingSetError(f"column 'label': {bad_labels} row(s) outside {{0, 1}}")
    if SUMMARY_COLUMN in spec.required_columns:
        want = spec.summary.n_tokens * spec.summary.token_dim
        lengths = _array_lengths(df[SUMMARY_COLUMN])
        wrong = int(((lengths != want) & (lengths != -1)).sum())
        if wrong:
            raise TrainingSetError(
                f"column '{SUMMARY_COLUMN}': {wrong} row(s) whose length is not "
                f"K x D = {spec.summary.n_tokens} x {spec.summary.token_dim} = {want}"
            )
        nonfinite = int(
            df[SUMMARY_COLUMN]
            .map(lambda s: s is not None and not np.isfinite(np.asarray(s, np.float64)).all())
            .sum()
        )
        if nonfinite:
            raise TrainingSetError(
                f"column '{SUMMARY_COLUMN}': {nonfinite} row(s) with NaN or infinite values "
                "(a stored summary that did not decode?)"
            )
    if TAIL_ITEMS in spec.required_columns:
        mismatch = int(
            (_array_lengths(df[TAIL_ITEMS]) != _array_lengths(df[TAIL_CATEGORIES])).sum()
        )
        if mismatch:
            raise TrainingSetError(
                f"columns '{TAIL_ITEMS}' and '{TAIL_CATEGORIES}': {mismatch} row(s) of "
                "different lengths"
            )


def summary_matrix(df: pd.DataFrame, summary: SummaryShape) -> tuple[np.ndarray, np.ndarray]:
    """(rows, K*D) float32, zeros where no summary existed yet; and that availability flag."""
    width = summary.n_tokens * summary.token_dim
    present = (
        df[SUMMARY_COLUMN]
        .map(lambda s: s is not None and hasattr(s, "__len__") and len(s) == width)
        .to_numpy()
    )
    out = np.zeros((len(df), width), dtype=np.float32)
    if present.any():
        out[present] = np.stack(df[SUMMARY_COLUMN][present].to_numpy()).astype(np.float32)
    return out, present


def _trimmed(v, keep_last: int | None, keep_first: int | None) -> np.ndarray:
    a = np.asarray([] if v is None or not hasattr(v, "__len__") else v, dtype=np.int64)
    if keep_last is not None:
        a = a[len(a) - min(len(a), keep_last) :]
    return a if keep_first is None else a[:keep_first]


def unique_sequences(items: list, categories: list, keep_last: int | None = None,
                     keep_first: int | None = None):  # fmt: skip
    """Per-row (items, categories) arrays -> (flat items, flat categories, offsets of each
    distinct sequence, (N,) the sequence of each row). Rows of one user at one snapshot
    carry the same tail: kept once, a 16k-event tail costs its memory per user, not per
    impression. Equal means equal values (bytes hashed, then compared)."""
    seen: dict[tuple, list[int]] = {}
    kept_items, kept_cats = [], []
    row_sequence = np.empty(len(items), dtype=np.int64)
    for row, (i, c) in enumerate(zip(items, categories, strict=True)):
        a, b = _trimmed(i, keep_last, keep_first), _trimmed(c, keep_last, keep_first)
        if len(b) != len(a):  # categories given per row (SIM): the candidate's, repeated
            b = np.full(len(a), b[0] if len(b) else -1, dtype=np.int64)
        same = seen.setdefault((len(a), hash(a.tobytes()), hash(b.tobytes())), [])
        match = next((k for k in same if np.array_equal(kept_items[k], a)
                      and np.array_equal(kept_cats[k], b)), None)  # fmt: skip
        if match is None:
            match = len(kept_items)
            same.append(match)
            kept_items.append(a)
            kept_cats.append(b)
        row_sequence[row] = match
    offsets = np.zeros(len(kept_items) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in kept_items])
    empty = np.zeros(0, np.int64)
    flat = (np.concatenate(kept_items) if kept_items else empty,
            np.concatenate(kept_cats) if kept_cats else empty)  # fmt: skip
    return *flat, offsets, row_sequence


def key_groups(row_sequence: np.ndarray, summaries: np.ndarray) -> np.ndarray:
    """(N,) group ids: rows that read the same raw sequence and the same summary (equal
    bytes) share one."""
    if len(row_sequence) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.ascontiguousarray(summaries, dtype=np.float32)
    summary_ids = pd.Series([r.tobytes() for r in rows]).factorize()[0] if rows.shape[1] else 0
    keys = pd.DataFrame({"sequence": row_sequence, "summary": summary_ids})
    return keys.groupby(["sequence", "summary"], sort=False).ngroup().to_numpy(np.int64)


@dataclass
class RankerData:
    """Candidates, summaries and ragged raw-item sequences, in embedding indices."""

    items: torch.Tensor  # (N,)
    categories: torch.Tensor  # (N,)
    summaries: torch.Tensor  # (N, K*D), or (N, 0) for raw-history variants
    seq_items: np.ndarray  # flat, the distinct sequences one after another
    seq_categories: np.ndarray  # flat
    offsets: np.ndarray  # (sequences + 1,)
    row_sequence: np.ndarray  # (N,) the sequence each row reads
    lengths: np.ndarray = field(init=False)  # (N,) each row's sequence length
    groups: np.ndarray = field(init=False)  # (N,) rows with the same keys share a group

    def __post_init__(self) -> None:
        self.lengths = np.diff(self.offsets)[self.row_sequence]
        self.groups = key_groups(self.row_sequence, self.summaries.numpy())

    def __len__(self) -> int:
        return len(self.items)

    def grouped_batch(
        self, units: list[np.ndarray]
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Units (rows of one group each) -> the model's inputs with candidates (S, C) per
        unit, keys once per unit, and the (S, C) mask of real candidates, whose row-major
        order is the order of ``np.concatenate(units)``."""
        width = max(len(u) for u in units)
        items = torch.zeros((len(units), width), dtype=torch.int64)
        cats = torch.zeros_like(items)
        real = torch.zeros(items.shape, dtype=torch.bool)
        for row, unit in enumerate(units):
            t = torch.from_numpy(unit)
            items[row, : len(unit)] = self.items[t]
            cats[row, : len(unit)] = self.categories[t]
            real[row, : len(unit)] = True
        _, _, summaries, seq_items, seq_cats, mask = self.batch(np.array([u[0] for u in units]))
        return (items, cats, summaries, seq_items, seq_cats, mask), real

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Rows ``idx``, sequences padded to the longest among them."""
        width = int(self.lengths[idx].max()) if len(idx) else 0
        seq_items = np.zeros((len(idx), width), dtype=np.int64)
        seq_cats = np.zeros_like(seq_items)
        mask = np.zeros(seq_items.shape, dtype=bool)
        for row, i in enumerate(idx):
            start, stop = self.offsets[self.row_sequence[i]], self.offsets[self.row_sequence[i] + 1]
            n = stop - start
            seq_items[row, :n] = self.seq_items[start:stop]
            seq_cats[row, :n] = self.seq_categories[start:stop]
            mask[row, :n] = True
        t = torch.from_numpy(np.asarray(idx))
        return (
            self.items[t],
            self.categories[t],
            self.summaries[t],
            torch.from_numpy(seq_items),
            torch.from_numpy(seq_cats),
            torch.from_numpy(mask),
        )


def prepare(df: pd.DataFrame, spec: RankerSpec) -> RankerData:
    """A checked training set -> tensors of the variant's inputs."""
    check_training_set(df, spec)
    items = item_index(df["item_id"].to_numpy(), spec.vocab_size)
    cats = item_index(df["category"].fillna(-1).to_numpy(), spec.category_vocab_size)
    if spec.variant == "vista":
        summaries, _ = summary_matrix(df, spec.summary)
    else:
        summaries = np.zeros((len(df), 0), dtype=np.float32)
    n = spec.sequence_length
    if spec.variant == "sim_category":
        # every retrieved item has the candidate's category
        own = df["category"].fillna(-1).to_numpy(np.int64)[:, None]
        raw_items, raw_cats, offsets, row_sequence = unique_sequences(
            df[CATEGORY_ITEMS].tolist(), list(own), keep_first=n)  # fmt: skip
    elif n > 0:
        raw_items, raw_cats, offsets, row_sequence = unique_sequences(
            df[TAIL_ITEMS].tolist(), df[TAIL_CATEGORIES].tolist(), keep_last=n)  # fmt: skip
    else:
        raw_items, raw_cats = np.zeros(0, np.int64), np.zeros(0, np.int64)
        offsets, row_sequence = np.zeros(2, dtype=np.int64), np.zeros(len(df), dtype=np.int64)
    return RankerData(
        items=torch.from_numpy(items),
        categories=torch.from_numpy(cats),
        summaries=torch.from_numpy(summaries),
        seq_items=item_index(raw_items, spec.vocab_size),
        seq_categories=item_index(raw_cats, spec.category_vocab_size),
        offsets=offsets,
        row_sequence=row_sequence,
    )


# ---------------------------------------------------------------- models
class SoftmaxPooling(nn.Module):
    """Scaled dot-product target attention: candidates (B, C, D) over keys (B, L, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, candidates, keys, mask):
        scores = self.query(candidates) @ self.key(keys).transpose(1, 2) * self.scale
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # nothing to attend -> 0
        return weights @ keys


class SumPooling(SoftmaxPooling):
    """Unnormalised dot-product weights (linear attention with an identity feature map):
    the context grows with how many keys resemble the candidate. Scaled by a constant
    (the longest sequence), never by the batch's padded width."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__(dim)
        self.length_scale = 1.0 / math.sqrt(max(max_len, 1))

    def forward(self, candidates, keys, mask):
        scores = self.query(candidates) @ self.key(keys).transpose(1, 2) * self.scale
        return (scores * mask[:, None, :]) @ keys * self.length_scale


class DinPooling(nn.Module):
    """DIN's activation unit: weight = MLP([q, k, q - k, q * k]), no softmax."""

    def __init__(self, dim: int, hidden: int = 36) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * dim, hidden), nn.Sigmoid(), nn.Linear(hidden, 1))

    def forward(self, candidates, keys, mask):
        q = candidates[:, :, None, :].expand(-1, -1, keys.shape[1], -1)  # (B, C, L, D)
        k = keys[:, None, :, :].expand_as(q)
        weights = self.mlp(torch.cat([q, k, q - k, q * k], dim=-1)).squeeze(-1)  # (B, C, L)
        weights = weights * mask[:, None, :]
        return weights @ keys


def sequence_pooling(pooling: str, dim: int, max_len: int) -> nn.Module:
    if pooling == "sum":
        return SumPooling(dim, max_len)
    return {"softmax": SoftmaxPooling, "din": DinPooling}[pooling](dim)


class Ranker(nn.Module):
    """Candidate (item + category) and up to two pooled contexts -> click logit: the
    summary tokens (vista) and a raw-item sequence (the baselines; vista's last R)."""

    def __init__(self, spec: RankerSpec, cfg: RankerConfig) -> None:
        super().__init__()
        self.spec = spec
        dim = cfg.dim
        self.item_embedding = nn.Embedding(spec.vocab_size, dim)
        self.category_embedding = nn.Embedding(spec.category_vocab_size, dim)
        contexts = 0
        if spec.variant == "vista":
            self.token_proj = nn.Linear(spec.summary.token_dim, dim)
            self.token_pool = TokenPooling(dim, spec.summary.n_tokens, spec.pooling,
                                           spec.summary.n_heads)  # fmt: skip
            contexts += 1
        self.match_heads = spec.summary.n_heads if spec.uses_slot_match else 0
        self.sketch_heads = spec.summary.sketch_heads if spec.variant == "vista" else 0
        if self.sketch_heads:  # the same fixed tables the summarizer wrote with
            shape = spec.summary
            slots, signatures = sketch_tables(spec.vocab_size, shape.n_tokens, shape.sketch_heads,
                                              shape.token_dim // shape.n_heads)  # fmt: skip
            self.register_buffer("sketch_slots", slots, persistent=False)
            self.register_buffer("sketch_signatures", signatures, persistent=False)
        if self.match_heads:  # the candidate as the summarizer writes it (its value)
            self.match_value = nn.Linear(dim, dim, bias=False)
        if spec.sequence_length:
            # vista's recent items keep the pooling of the full-attention baseline
            raw = "softmax" if spec.variant == "vista" else spec.pooling
            self.pool = sequence_pooling(raw, dim, spec.sequence_length)
            contexts += 1
        extra = self.match_heads + self.sketch_heads * (2 if spec.sketch_energy else 1)
        self.mlp = nn.Sequential(nn.Linear((1 + 2 * contexts) * dim + extra, 64),
                                 nn.GELU(),
                                 nn.Linear(64, 1))  # fmt: skip

    def embed(self, items: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items) + self.category_embedding(categories)

    def tokens(self, summaries: torch.Tensor) -> torch.Tensor:
        """(B, K*D) stored summaries -> (B, K, dim) keys in the ranker's space."""
        k, d = self.spec.summary.n_tokens, self.spec.summary.token_dim
        return self.token_proj(summaries.view(-1, k, d))

    def sketch_counts(self, items: torch.Tensor, summaries: torch.Tensor) -> torch.Tensor:
        """Candidates (B, C) of vocabulary rows, stored summaries (B, K*D) -> each sketch
        head's count estimate of the very candidate (B, C, Hs), read from the summary as
        stored (the ranker's projection does not touch it)."""
        shape = self.spec.summary
        heads = summaries.view(-1, shape.n_tokens, shape.n_heads, shape.token_dim // shape.n_heads)
        sketch = heads[:, :, shape.n_heads - self.sketch_heads :]
        read = sketch_features if self.spec.sketch_energy else sketch_read
        return read(items, sketch, self.sketch_slots, self.sketch_signatures)

    def score_candidates(self, candidates: torch.Tensor, tokens: torch.Tensor | None,
                         keys: torch.Tensor | None, mask: torch.Tensor | None,
                         sketch: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """candidates (B, C, D) against each row's tokens (B, K, D) and raw keys (B, L, D)
        (and the sketch's counts of them, (B, C, Hs)) -> logits (B, C)."""
        parts = [candidates]
        if tokens is not None:
            context = self.token_pool(candidates, tokens)
            parts += [context, candidates * context]
            if self.match_heads:
                parts.append(slot_match(self.match_value(candidates), context, self.match_heads))
            if self.sketch_heads:
                parts.append(sketch)
        if keys is not None:
            context = self.pool(candidates, keys, mask)
            parts += [context, candidates * context]
        return self.mlp(torch.cat(parts, -1)).squeeze(-1)

    def forward(self, items, categories, summaries, seq_items, seq_cats, mask) -> torch.Tensor:
        tokens = self.tokens(summaries) if self.spec.variant == "vista" else None
        keys = self.embed(seq_items, seq_cats) if self.spec.sequence_length else None
        rows = items[:, None] if items.dim() == 1 else items  # one candidate per row, or C
        sketch = self.sketch_counts(rows, summaries) if self.sketch_heads else None
        scored = self.score_candidates(self.embed(rows, categories.view_as(rows)), tokens, keys,
                                       mask, sketch)  # fmt: skip
        return scored[:, 0] if items.dim() == 1 else scored

    @torch.no_grad()
    def init_from_summarizer(self, summarizer: nn.Module) -> bool:
        """Start from the summarizer's item and category embeddings (and read its tokens
        as they are, through an identity projection), so that the candidate and the
        summary meet in the space the summary was made in. False when sizes differ."""
        same = (summarizer.item_embedding.weight.shape == self.item_embedding.weight.shape
                and summarizer.category_embedding.weight.shape
                == self.category_embedding.weight.shape)  # fmt: skip
        if not same:
            return False
        self.item_embedding.weight.copy_(summarizer.item_embedding.weight)
        self.category_embedding.weight.copy_(summarizer.category_embedding.weight)
        if self.spec.variant == "vista" and self.token_proj.weight.shape[0] == \
                self.token_proj.weight.shape[1]:  # fmt: skip
            self.token_proj.weight.copy_(torch.eye(self.token_proj.weight.shape[0]))
            self.token_proj.bias.zero_()
            pool = self.token_pool
            if pool.pooling == "slot" and getattr(summarizer.cfg, "address", "") == "softmax":
                # start reading the slots where the summarizer would have written the candidate
                weight, bias = summarizer.address_weights()
                if weight.shape == pool.weights.weight.shape:
                    pool.weights.weight.copy_(weight)
                    pool.weights.bias.copy_(bias)
            if self.match_heads and hasattr(summarizer, "value"):
                self.match_value.weight.copy_(summarizer.value.weight)
        return True


# ---------------------------------------------------------------- training
@dataclass
class TrainingCurve:
    """Per-epoch losses and seconds; ``best_epoch`` is the one whose weights were kept."""

    train_loss: list[float]
    validation_loss: list[float]
    best_epoch: int
    epoch_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "train_loss": self.train_loss,
            "validation_loss": self.validation_loss,
            "best_epoch": self.best_epoch,
            "epoch_seconds": self.epoch_seconds,
        }


def validation_split(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Hold out whole users (so validation measures generalisation to new users)."""
    unique = np.unique(users)
    rng = np.random.default_rng(seed)
    held = rng.choice(unique, max(1, int(len(unique) * share)), replace=False)
    return np.isin(users, held)


def group_units(groups: np.ndarray, rows: np.ndarray, most: int) -> list[np.ndarray]:
    """``rows`` split by key group, each group cut into pieces of at most ``most`` rows."""
    order = rows[np.argsort(groups[rows], kind="stable")]
    parts = np.split(order, np.flatnonzero(np.diff(groups[order])) + 1) if len(order) else []
    return [part[i : i + most] for part in parts for i in range(0, len(part), most)]


def length_grouped_batches(
    units: list[np.ndarray], lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[list[np.ndarray]]:
    """Shuffled batches of units (rows sharing keys) with similar sequence lengths (less
    padding), in random order: units are shuffled, sorted by length within windows of
    about 32 batches, then packed until a batch holds ``batch_size`` candidates."""
    shuffled = [units[i] for i in rng.permutation(len(units))]
    window = 32 * batch_size
    batches: list[list[np.ndarray]] = []
    start = 0
    while start < len(shuffled):
        stop, rows = start, 0
        while stop < len(shuffled) and rows < window:
            rows += len(shuffled[stop])
            stop += 1
        part = sorted(shuffled[start:stop], key=lambda u: (lengths[u[0]], len(u)))
        batches += packed(part, batch_size)
        start = stop
    return [batches[i] for i in rng.permutation(len(batches))]


def packed(units: list[np.ndarray], batch_size: int) -> list[list[np.ndarray]]:
    """Consecutive units in batches of at most ``batch_size`` candidate slots, counted
    padded (units x the largest unit): a batch's (S, C, L) attention scores stay as large
    as ``batch_size`` rows' were, however unequal the units."""
    batches, current, widest = [], [], 0
    for unit in units:
        wider = max(widest, len(unit))
        if current and (len(current) + 1) * wider > batch_size:
            batches.append(current)
            current, wider = [], len(unit)
        current.append(unit)
        widest = wider
    return [*batches, current] if current else batches


def _logits(model: Ranker, data: RankerData, rows: np.ndarray, batch_size: int) -> torch.Tensor:
    units = group_units(data.groups, rows, batch_size)
    units.sort(key=lambda u: (data.lengths[u[0]], len(u)))
    out = torch.empty(len(data))
    for batch in packed(units, batch_size):
        inputs, real = data.grouped_batch(batch)
        out[torch.from_numpy(np.concatenate(batch))] = model(*inputs)[real]
    return out[torch.from_numpy(rows)]


def train_ranker(
    train: pd.DataFrame,
    cfg: RankerConfig,
    spec: RankerSpec,
    progress: bool = True,
    seed: int | None = None,
    summarizer: nn.Module | None = None,
) -> tuple[Ranker, TrainingCurve]:
    """AdamW on log loss; keeps the epoch with the best validation loss (users held out)
    and stops after ``cfg.patience`` epochs without improvement. With ``summarizer`` and
    ``cfg.init_from_summarizer``, the embeddings start from the summarizer's."""
    seed = cfg.seed if seed is None else seed
    data = prepare(train, spec)
    torch.manual_seed(seed)
    model = Ranker(spec, cfg)
    if summarizer is not None and cfg.init_from_summarizer:
        model.init_from_summarizer(summarizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labels = torch.from_numpy(train["label"].to_numpy().astype(np.float32))
    held = validation_split(train["user_id"].to_numpy(), cfg.validation_share, seed)
    fit_rows, val_rows = np.flatnonzero(~held), np.flatnonzero(held)
    rng = np.random.default_rng(seed)
    curve = TrainingCurve([], [], 0)
    best_state, best_loss = None, float("inf")
    epochs = tqdm(range(cfg.epochs), desc=spec.variant, disable=not progress)
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        total = 0.0
        # rows are shuffled first, so a group larger than a batch is cut differently
        # each epoch (the history-blind variant's rows all share one group)
        units = group_units(data.groups, rng.permutation(fit_rows), cfg.batch_size)
        for batch in length_grouped_batches(units, data.lengths, cfg.batch_size, rng):
            inputs, real = data.grouped_batch(batch)
            idx = np.concatenate(batch)
            logits = model(*inputs)[real]
            loss = F.binary_cross_entropy_with_logits(logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        curve.epoch_seconds.append(time.perf_counter() - started)
        model.eval()
        with torch.no_grad():
            val_logits = _logits(model, data, val_rows, cfg.batch_size)
            val_loss = F.binary_cross_entropy_with_logits(val_logits, labels[val_rows]).item()
        curve.train_loss.append(total / max(len(fit_rows), 1))
        curve.validation_loss.append(val_loss)
        epochs.set_postfix(train=f"{curve.train_loss[-1]:.4f}", val=f"{val_loss:.4f}")
        if val_loss < best_loss:
            best_loss, curve.best_epoch = val_loss, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - curve.best_epoch >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, curve


@torch.no_grad()
def score(model: Ranker, df: pd.DataFrame, batch_size: int = 1024) -> np.ndarray:
    """Click probabilities for the rows of ``df``."""
    data = prepare(df, model.spec)
    return torch.sigmoid(_logits(model, data, np.arange(len(data)), batch_size)).numpy()


@torch.no_grad()
def score_one_user(
    model: Ranker,
    candidates: tuple[torch.Tensor, torch.Tensor],
    summaries: torch.Tensor,
    seq_items: torch.Tensor,
    seq_cats: torch.Tensor,
    seq_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Serving path: C candidates of one user. Shared keys are built once; SIM's keys
    differ per candidate (rows of ``seq_items``), the others' are one row for all."""
    items, cats = candidates
    cand = model.embed(items, cats)  # (C, D)
    mask = torch.ones(seq_items.shape, dtype=torch.bool) if seq_mask is None else seq_mask
    tokens = model.tokens(summaries) if model.spec.variant == "vista" else None  # (1, K, D)
    sketch = model.sketch_counts(items[None], summaries) if model.sketch_heads else None
    raw = model.spec.sequence_length > 0 and seq_items.shape[1] > 0
    if seq_items.shape[0] > 1:  # per-candidate sequences (SIM)
        keys = model.embed(seq_items, seq_cats) if raw else None
        rows = None if tokens is None else tokens.expand(len(items), -1, -1)
        counts = None if sketch is None else sketch[0][:, None, :]
        return model.score_candidates(cand[:, None, :], rows, keys, mask, counts)[:, 0]
    keys = model.embed(seq_items, seq_cats) if raw else None  # (1, L, D)
    width = (0 if keys is None else keys.shape[1]) + (0 if tokens is None else tokens.shape[1])
    chunk = max(SCORING_CHUNK, SCORING_PAIRS // max(width, 1))
    out = [
        model.score_candidates(cand[None, i : i + chunk], tokens, keys, mask,
                               None if sketch is None else sketch[:, i : i + chunk])[0]
        for i in range(0, len(items), chunk)
    ]  # fmt: skip
    return torch.cat(out)


# ---------------------------------------------------------------- artifact
def save_ranker(model: Ranker, cfg: RankerConfig, path: Path, metadata: dict) -> Path:
    """Weights, spec, ranker settings and ``metadata`` (the summarizer version it was
    trained on, metrics) in one file, written atomically so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(
        {
            "spec": dataclasses.asdict(model.spec),
            "config": cfg.model_dump(mode="json"),
            "state_dict": model.state_dict(),
            "metadata": metadata,
        },
        tmp,
    )
    tmp.replace(path)
    return path


def load_ranker(path: Path) -> tuple[Ranker, dict]:
    """The ranker saved at ``path`` (eval mode) and its metadata."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    spec_fields = dict(saved["spec"])
    spec = RankerSpec(**{**spec_fields, "summary": SummaryShape(**spec_fields["summary"])})
    model = Ranker(spec, RankerConfig.model_validate(saved["config"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved["metadata"]
