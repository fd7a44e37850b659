"""The training set checked and made ready for batches: ``check_training_set`` names a
missing or malformed column; ``prepare`` turns the Feast frame into ``RankerData``:
per row the candidate (item, category), label, and an index into the key sets it reads
(summary tokens (n, K*D) float32, or ragged raw-item sequences stored once per distinct
sequence), grouped so that rows reading the same keys are scored together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from models.ranker.spec import (
    CATEGORY_ITEMS,
    SUMMARY_COLUMN,
    TAIL_CATEGORIES,
    TAIL_ITEMS,
    RankerSpec,
    SummaryShape,
    TrainingSetError,
)
from models.summarizer import item_index


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
