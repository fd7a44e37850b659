"""Training and scoring: batches grouped by key length (padding stays small), a
validation split by user (no user in both), early stopping on validation loss
(``TrainingCurve``), and scoring of a frame or of one user's candidates against one
history (serving).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from models.ranker.data import RankerData, prepare
from models.ranker.modules import Ranker
from models.ranker.spec import SCORING_CHUNK, SCORING_PAIRS, RankerSpec
from vista.core.config import RankerConfig


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
