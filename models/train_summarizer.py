"""Train the summarizer inside a "source model": summarizer + target-attention head,
click loss on impressions. Afterwards only the summarizer is kept, frozen.

Each step samples users; a user's history is subsampled uniformly in time to at
most ``train_max_events`` events (order kept), so that interests shown long ago
stay visible in training while a step's cost stays bounded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from models.attention import TargetAttentionHead
from models.summarizer import HistoryBatch, VistaSummarizer, encode_histories, item_index
from vista.config import SummarizerConfig


class SourceModel(nn.Module):
    def __init__(self, cfg: SummarizerConfig) -> None:
        super().__init__()
        self.summarizer = VistaSummarizer(cfg)
        self.head = TargetAttentionHead(cfg.dim)

    def forward(
        self, history: HistoryBatch, cand_items: torch.Tensor, cand_categories: torch.Tensor
    ) -> torch.Tensor:
        """cand_items, cand_categories: (B, C) embedding rows -> logits (B, C)."""
        tokens = self.summarizer(history)  # (B, K, D)
        return self.head(self.summarizer.embed_candidates(cand_items, cand_categories), tokens)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _subsample(arrays: tuple[np.ndarray, ...], limit: int, rng: np.random.Generator):
    if len(arrays[0]) <= limit:
        return arrays
    keep = np.sort(rng.choice(len(arrays[0]), limit, replace=False))
    return tuple(a[keep] for a in arrays)


def train_summarizer(
    histories: pd.DataFrame,
    impressions: pd.DataFrame,
    as_of_us: int,
    cfg: SummarizerConfig,
    progress: bool = True,
) -> tuple[VistaSummarizer, list[float]]:
    """histories: user_id, item_ids, categories, event_timestamps;
    impressions: user_id, item_id, category, label."""
    if impressions.empty:
        raise ValueError("no training impressions: the summarizer has nothing to learn from")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    model = SourceModel(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    columns = (histories.item_ids, histories.categories, histories.event_timestamps)
    by_user = {
        int(u): tuple(np.asarray(a, dtype=np.int64) for a in arrays)
        for u, *arrays in zip(histories.user_id, *columns, strict=True)
    }
    groups = {
        int(u): (
            item_index(g.item_id.to_numpy(), cfg.vocab_size),
            item_index(g.category.to_numpy(), cfg.category_vocab_size),
            g.label.to_numpy(),
        )
        for u, g in impressions.groupby("user_id")
    }
    users = np.array(sorted(groups))
    empty = (np.zeros(0, np.int64),) * 3
    losses: list[float] = []
    steps = tqdm(range(cfg.train_steps), desc="summarizer", disable=not progress, mininterval=2)
    for _ in steps:
        batch = rng.choice(users, min(cfg.train_users_per_step, len(users)), replace=False)
        hist = [_subsample(by_user.get(int(u), empty), cfg.train_max_events, rng) for u in batch]
        history = encode_histories(*zip(*hist, strict=True), as_of_us, cfg).to(device)
        width = max(len(groups[int(u)][0]) for u in batch)
        cands = np.zeros((len(batch), width), dtype=np.int64)
        cats = np.zeros((len(batch), width), dtype=np.int64)
        labels = np.zeros((len(batch), width), dtype=np.float32)
        valid = np.zeros((len(batch), width), dtype=bool)
        for row, u in enumerate(batch):
            c, k, y = groups[int(u)]
            n = len(c)
            cands[row, :n], cats[row, :n], labels[row, :n], valid[row, :n] = c, k, y, True
        logits = model(
            history, torch.from_numpy(cands).to(device), torch.from_numpy(cats).to(device)
        )
        valid_t = torch.from_numpy(valid).to(device)
        loss = F.binary_cross_entropy_with_logits(
            logits[valid_t], torch.from_numpy(labels).to(device)[valid_t]
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        steps.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    summarizer = model.summarizer.cpu().eval().requires_grad_(False)
    return summarizer, losses
