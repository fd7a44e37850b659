"""ranker_v1: the lightweight VISTA ranker. The candidate attends to the K cached
summary tokens; cost per candidate is O(K * D), whatever the history length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from models.attention import TargetAttentionHead
from models.summarizer import item_index
from vista.config import RankerConfig

SUMMARY_COLUMN = "summary"
REQUIRED_COLUMNS = ("user_id", "item_id", "category", "label", "event_timestamp", SUMMARY_COLUMN)


class TrainingSetError(ValueError):
    """The training set misses a feature or holds values the ranker cannot use."""


@dataclass(frozen=True)
class SummaryShape:
    n_tokens: int
    token_dim: int


class VistaRanker(nn.Module):
    def __init__(
        self,
        cfg: RankerConfig,
        summary: SummaryShape,
        vocab_size: int,
        category_vocab_size: int,
    ) -> None:
        super().__init__()
        self.summary = summary
        self.vocab_size = vocab_size
        self.category_vocab_size = category_vocab_size
        self.item_embedding = nn.Embedding(vocab_size, cfg.dim)
        self.category_embedding = nn.Embedding(category_vocab_size, cfg.dim)
        self.token_proj = nn.Linear(summary.token_dim, cfg.dim)
        self.head = TargetAttentionHead(cfg.dim)

    def forward(
        self, items: torch.Tensor, categories: torch.Tensor, summaries: torch.Tensor
    ) -> torch.Tensor:
        """items, categories: (B,) embedding rows; summaries: (B, K*D) -> logits (B,)."""
        tokens = self.token_proj(
            summaries.view(-1, self.summary.n_tokens, self.summary.token_dim)
        )  # (B, K, dim)
        cand = self.item_embedding(items) + self.category_embedding(categories)
        cand = cand[:, None, :]  # (B, 1, dim)
        return self.head(cand, tokens).squeeze(1)


def check_training_set(df: pd.DataFrame, summary: SummaryShape) -> None:
    """Fail with the column and the number of rows affected."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TrainingSetError(f"training set misses column(s) {missing} ({len(df)} rows)")
    bad_labels = (~df["label"].isin([0, 1])).sum()
    if bad_labels:
        raise TrainingSetError(f"column 'label': {bad_labels} row(s) outside {{0, 1}}")
    want = summary.n_tokens * summary.token_dim
    lengths = df[SUMMARY_COLUMN].map(lambda s: -1 if s is None else len(s))
    wrong = ((lengths != want) & (lengths != -1)).sum()
    if wrong:
        raise TrainingSetError(
            f"column '{SUMMARY_COLUMN}': {wrong} row(s) whose length is not "
            f"K x D = {summary.n_tokens} x {summary.token_dim} = {want}"
        )
    nonfinite = df[SUMMARY_COLUMN].map(
        lambda s: s is not None and not np.isfinite(np.asarray(s, np.float64)).all()
    )
    if nonfinite.sum():
        raise TrainingSetError(
            f"column '{SUMMARY_COLUMN}': {nonfinite.sum()} row(s) with NaN or infinite values "
            "(a stored summary that did not decode?)"
        )


def summary_matrix(df: pd.DataFrame, summary: SummaryShape) -> tuple[np.ndarray, np.ndarray]:
    """(rows, K*D) float32, zeros where no summary existed yet; and that availability flag."""
    width = summary.n_tokens * summary.token_dim
    present = df[SUMMARY_COLUMN].map(lambda s: s is not None and len(s) == width).to_numpy()
    out = np.zeros((len(df), width), dtype=np.float32)
    if present.any():
        out[present] = np.stack(df[SUMMARY_COLUMN][present].to_numpy()).astype(np.float32)
    return out, present


def _tensors(df: pd.DataFrame, summary: SummaryShape, vocab_size: int, category_vocab_size: int):
    summaries, _ = summary_matrix(df, summary)
    items = item_index(df["item_id"].to_numpy(), vocab_size)
    cats = item_index(df["category"].fillna(-1).to_numpy(), category_vocab_size)
    return torch.from_numpy(items), torch.from_numpy(cats), torch.from_numpy(summaries)


@dataclass
class TrainingCurve:
    """Per-epoch losses; ``best_epoch`` is the one whose weights were kept."""

    train_loss: list[float]
    validation_loss: list[float]
    best_epoch: int

    def to_dict(self) -> dict:
        return {
            "train_loss": self.train_loss,
            "validation_loss": self.validation_loss,
            "best_epoch": self.best_epoch,
        }


def validation_split(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Hold out whole users (so validation measures generalisation to new users)."""
    unique = np.unique(users)
    rng = np.random.default_rng(seed)
    held = rng.choice(unique, max(1, int(len(unique) * share)), replace=False)
    return np.isin(users, held)


def train_ranker(
    train: pd.DataFrame,
    cfg: RankerConfig,
    summary: SummaryShape,
    vocab_size: int,
    category_vocab_size: int,
    progress: bool = True,
) -> tuple[VistaRanker, TrainingCurve]:
    """Adam on log loss; keeps the epoch with the best validation loss and stops
    after ``cfg.patience`` epochs without improvement."""
    check_training_set(train, summary)
    torch.manual_seed(cfg.seed)
    model = VistaRanker(cfg, summary, vocab_size, category_vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    tensors = _tensors(train, summary, vocab_size, category_vocab_size)
    labels = torch.from_numpy(train["label"].to_numpy().astype(np.float32))
    held = torch.from_numpy(
        validation_split(train["user_id"].to_numpy(), cfg.validation_share, cfg.seed)
    )
    fit_rows, val_rows = torch.nonzero(~held).squeeze(1), torch.nonzero(held).squeeze(1)
    generator = torch.Generator().manual_seed(cfg.seed)
    curve = TrainingCurve([], [], 0)
    best_state, best_loss = None, float("inf")
    epochs = tqdm(range(cfg.epochs), desc="ranker", disable=not progress)
    for epoch in epochs:
        model.train()
        order = fit_rows[torch.randperm(len(fit_rows), generator=generator)]
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            logits = model(*(t[idx] for t in tensors))
            loss = F.binary_cross_entropy_with_logits(logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_logits = model(*(t[val_rows] for t in tensors))
            val_loss = F.binary_cross_entropy_with_logits(val_logits, labels[val_rows]).item()
        curve.train_loss.append(total / max(len(order), 1))
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
def score(model: VistaRanker, df: pd.DataFrame) -> np.ndarray:
    tensors = _tensors(df, model.summary, model.vocab_size, model.category_vocab_size)
    return torch.sigmoid(model(*tensors)).numpy()


def evaluate(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    if len(np.unique(labels)) < 2:
        raise ValueError("evaluation window holds only one class: AUC is undefined")
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    return {
        "auc": float(roc_auc_score(labels, probs)),
        "log_loss": float(log_loss(labels, clipped, labels=[0, 1])),
        "rows": len(labels),
        "positive_rate": float(np.mean(labels)),
    }
