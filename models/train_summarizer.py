"""Train the summarizer inside a "source model": summarizer + target-attention head,
click loss on impressions. Afterwards only the summarizer is kept, frozen.

Each step samples users; a user's history is subsampled uniformly in time to at
most ``train_max_events`` events (order kept), so that interests shown long ago
stay visible in training while a step's cost stays bounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from models.attention import TargetAttentionHead
from models.reconstruction import ReconstructionDecoder, reconstruction_loss
from models.summarizer import (
    CheckpointMismatchError,
    HistoryBatch,
    MemorySummarizer,
    VistaSummarizer,
    build_summarizer,
    encode_histories,
    item_index,
)
from vista.core.config import SummarizerConfig


class SourceModel(nn.Module):
    """Summarizer + target-attention head (+ the reconstruction decoder when its
    loss has a weight)."""

    def __init__(self, cfg: SummarizerConfig) -> None:
        super().__init__()
        self.summarizer = build_summarizer(cfg)
        self.head = TargetAttentionHead(cfg.dim, n_tokens=cfg.n_seeds, pooling=cfg.head_pooling,
                                        n_heads=cfg.n_heads, match=cfg.slot_match)  # fmt: skip
        self.decoder = ReconstructionDecoder(cfg.dim, cfg.n_heads) if cfg.recon_weight else None

    def forward(
        self, history: HistoryBatch, cand_items: torch.Tensor, cand_categories: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """cand_items, cand_categories: (B, C) embedding rows
        -> click logits (B, C), reconstruction loss (or None)."""
        tokens = self.summarizer(history)  # (B, K, D)
        candidates = self.summarizer.embed_candidates(cand_items, cand_categories)  # (B, C, D)
        # slot reads are tied to the summarizer's own addressing: a candidate reads the
        # slots that events like it were written into
        tied = self.head.pool.pooling == "slot" and hasattr(self.summarizer, "address_logits")
        slot_logits = self.summarizer.candidate_address(cand_items, candidates) if tied else None
        values = (self.summarizer.candidate_values(cand_items, candidates)
                  if self.head.match_heads else None)  # fmt: skip
        logits = self.head(candidates, tokens, slot_logits=slot_logits, values=values)
        if self.decoder is None:
            return logits, None
        embedded = self.summarizer.embed(history, slice(None))  # (B, N, D)
        N, W = embedded.shape[1], self.summarizer.cfg.recon_window
        start = int(torch.randint(0, max(N - W, 0) + 1, ())) if self.training else max(N - W, 0)
        window = slice(start, start + W)
        predicted = self.decoder(tokens, embedded, history.mask, window)
        return logits, reconstruction_loss(predicted, embedded[:, window], history.mask[:, window])


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def subsample(
    arrays: tuple[np.ndarray, ...], limit: int, recent: int, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """At most ``limit`` events of a time-ordered history, and each kept event's weight.

    The last ``recent`` events are kept exactly (weight 1); the older ones are sampled
    uniformly without replacement, each standing for (older events) / (sampled) events,
    so a weighted sum over the kept events is an unbiased estimate of the sum over the
    whole history: a memory-mode state trained on a 2,048-event sample of a 100,000-event
    history has the magnitude of the real one."""
    n = len(arrays[0])
    if n <= limit:
        return arrays, np.ones(n, dtype=np.float32)
    older, sampled = n - recent, limit - recent
    keep = np.concatenate([np.sort(rng.choice(older, sampled, replace=False)),
                           np.arange(older, n)])  # fmt: skip
    weights = np.ones(limit, dtype=np.float32)
    weights[:sampled] = older / sampled
    return tuple(a[keep] for a in arrays), weights


@dataclass
class SummarizerCurve:
    """Training loss per step; validation loss on held-out users every ``eval_every``."""

    train_loss: list[float]
    validation_step: list[int]
    validation_loss: list[float]
    best_step: int
    recon_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        recon = self.recon_loss
        return {
            "first_train_loss": self.train_loss[0],
            "final_train_loss": float(np.mean(self.train_loss[-20:])),
            "first_recon_loss": recon[0] if recon else None,
            "final_recon_loss": float(np.mean(recon[-20:])) if recon else None,
            "validation_step": self.validation_step,
            "validation_loss": self.validation_loss,
            "best_step": self.best_step,
        }


class _ImpressionData:
    """Histories and impressions indexed by user, cut into padded batches."""

    def __init__(self, histories: pd.DataFrame, impressions: pd.DataFrame, cfg, as_of_us: int):
        self.cfg, self.as_of_us = cfg, as_of_us
        columns = (histories.item_ids, histories.categories, histories.event_timestamps)
        self.history = {
            int(u): tuple(np.asarray(a, dtype=np.int64) for a in arrays)
            for u, *arrays in zip(histories.user_id, *columns, strict=True)
        }
        self.impressions = {
            int(u): (
                item_index(g.item_id.to_numpy(), cfg.vocab_size),
                item_index(g.category.to_numpy(), cfg.category_vocab_size),
                g.label.to_numpy(),
            )
            for u, g in impressions.groupby("user_id")
        }
        self.users = np.array(sorted(self.impressions))
        self.empty = (np.zeros(0, np.int64),) * 3

    def batch(self, users: np.ndarray, rng: np.random.Generator, device, dropout: float):
        hist, weights = [], []
        for u in users:
            arrays, weight = subsample(self.history.get(int(u), self.empty),
                                       self.cfg.train_max_events, self.cfg.train_recent_events,
                                       rng)  # fmt: skip
            if self.cfg.mode == "bidirectional":
                weight = np.ones_like(weight)  # its states are RMS-normalised: no scale to keep
            if dropout > 0 and len(arrays[0]) > 1:
                keep = rng.random(len(arrays[0])) >= dropout
                arrays, weight = tuple(a[keep] for a in arrays), weight[keep] / (1 - dropout)
            hist.append(arrays)
            weights.append(weight)
        history = encode_histories(*zip(*hist, strict=True), self.as_of_us, self.cfg,
                                   weights).to(device)  # fmt: skip
        width = max(len(self.impressions[int(u)][0]) for u in users)
        cands = np.zeros((len(users), width), dtype=np.int64)
        cats = np.zeros((len(users), width), dtype=np.int64)
        labels = np.zeros((len(users), width), dtype=np.float32)
        valid = np.zeros((len(users), width), dtype=bool)
        for row, u in enumerate(users):
            c, k, y = self.impressions[int(u)]
            n = len(c)
            cands[row, :n], cats[row, :n], labels[row, :n], valid[row, :n] = c, k, y, True
        to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        return history, to(cands), to(cats), to(labels), to(valid)


def _losses(model: SourceModel, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(click log loss, reconstruction loss or None)."""
    history, cands, cats, labels, valid = batch
    logits, recon = model(history, cands, cats)
    return F.binary_cross_entropy_with_logits(logits[valid], labels[valid]), recon


def train_summarizer(
    histories: pd.DataFrame,
    impressions: pd.DataFrame,
    as_of_us: int,
    cfg: SummarizerConfig,
    progress: bool = True,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
) -> tuple[VistaSummarizer | MemorySummarizer, SummarizerCurve]:
    """histories: user_id, item_ids, categories, event_timestamps;
    impressions: user_id, item_id, category, label.

    Users are split: ``validation_share`` of them are never trained on; their loss,
    measured every ``eval_every`` steps, picks the weights that are kept.

    With ``checkpoint``, the whole training state (weights, optimizer, random
    generators, curve) is saved there every ``checkpoint_every`` steps and training
    resumes from it, reaching the same weights as an uninterrupted run.
    ``stop_after`` ends this run after that many steps (a time-boxed job).
    """
    if impressions.empty:
        raise ValueError("no training impressions: the summarizer has nothing to learn from")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device()
    model = SourceModel(cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = _ImpressionData(histories, impressions, cfg, as_of_us)
    held = rng.random(len(data.users)) < cfg.validation_share
    if held.all() or not held.any():
        held = np.arange(len(data.users)) % 10 == 0
    fit_users, val_users = data.users[~held], data.users[held]
    # a fixed sample: validating on 10% of 130k users every eval_every steps would cost
    # more than the training itself (and hold their batches in memory)
    if len(val_users) > cfg.validation_max_users:
        val_users = np.sort(rng.choice(val_users, cfg.validation_max_users, replace=False))
    val_rng = np.random.default_rng(cfg.seed + 1)
    val_batches = [
        data.batch(val_users[i : i + cfg.train_users_per_step], val_rng, device, 0.0)
        for i in range(0, len(val_users), cfg.train_users_per_step)
    ]
    curve = SummarizerCurve([], [], [], 0)
    best_state, best_loss, first = None, float("inf"), 0
    if checkpoint is not None and checkpoint.exists():
        state = _load_training_state(checkpoint, cfg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        curve = SummarizerCurve(**state["curve"])
        best_state, best_loss, first = state["best_state"], state["best_loss"], state["step"]
    last = cfg.train_steps if stop_after is None else min(cfg.train_steps, first + stop_after)
    steps = tqdm(range(first, last), desc="summarizer", disable=not progress, mininterval=2,
                 initial=first, total=cfg.train_steps)  # fmt: skip
    for step in steps:
        model.train()
        users = rng.choice(fit_users, min(cfg.train_users_per_step, len(fit_users)), replace=False)
        click, recon = _losses(model, data.batch(users, rng, device, cfg.event_dropout))
        loss = click if recon is None else click + cfg.recon_weight * recon
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        curve.train_loss.append(click.item())
        if recon is not None:
            curve.recon_loss.append(recon.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.train_steps:
            model.eval()
            with torch.no_grad():
                val = float(np.mean([_losses(model, b)[0].item() for b in val_batches]))
            curve.validation_step.append(step + 1)
            curve.validation_loss.append(val)
            if val < best_loss:
                best_loss, curve.best_step = val, step + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            steps.set_postfix(train=f"{np.mean(curve.train_loss[-20:]):.4f}", val=f"{val:.4f}")
        done = step + 1
        if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == last):
            _save_training_state(checkpoint, cfg, model, optimizer, rng, curve, best_state,
                                 best_loss, done)  # fmt: skip
    if best_state is not None:
        model.load_state_dict(best_state)
    summarizer = model.summarizer.cpu().eval().requires_grad_(False)
    return summarizer, curve


def _resume_key(cfg: SummarizerConfig) -> dict:
    """Settings a checkpoint must share to be resumed (train_steps may grow)."""
    return cfg.model_dump(mode="json", exclude={"train_steps", "checkpoint_every", "chunk_size"})


def _save_training_state(path: Path, cfg, model, optimizer, rng, curve, best_state, best_loss,
                         step: int) -> None:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "settings": _resume_key(cfg),
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "curve": asdict(curve),
            "best_state": best_state,
            "best_loss": best_loss,
        },
        tmp,
    )
    tmp.replace(path)  # a crash mid-save keeps the previous checkpoint


def _load_training_state(path: Path, cfg: SummarizerConfig) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    want, have = _resume_key(cfg), state["settings"]
    diffs = [f"{k}: config {want[k]!r} != checkpoint {have.get(k)!r}"
             for k in want if want[k] != have.get(k)]  # fmt: skip
    if diffs:
        raise CheckpointMismatchError(
            f"training checkpoint {path} was made with other settings: " + "; ".join(diffs)
        )
    return state
