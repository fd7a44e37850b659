"""The VISTA summarizer: K learnable seed tokens attend together with a user's whole
history through quasi-linear attention; the seed positions after the last layer
are the user's summary tokens.

Histories of any length are folded in chunks of ``chunk_size`` events, so memory
is O(B * chunk * D + D^2) whatever the history length: layer l's state needs the
history's layer-(l-1) outputs, so chunk embeddings are recomputed per layer
(L(L+1)/2 passes over the history) rather than kept (N * D per layer).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from models.attention import QuasiLinearAttention, qla_reference, softmax_reference
from vista.config import SummarizerConfig

UNKNOWN_ITEM = 0  # index for null/negative ids; real ids hash into 1..vocab_size-1
MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class SummarizerShape:
    """What a checkpoint must agree on with the config that loads it."""

    n_seeds: int
    dim: int
    n_layers: int
    n_heads: int
    vocab_size: int
    category_vocab_size: int
    age_buckets: int

    @classmethod
    def of(cls, cfg: SummarizerConfig) -> SummarizerShape:
        return cls(
            cfg.n_seeds,
            cfg.dim,
            cfg.n_layers,
            cfg.n_heads,
            cfg.vocab_size,
            cfg.category_vocab_size,
            cfg.age_buckets,
        )


class CheckpointMismatchError(ValueError):
    """A checkpoint was trained with other sizes than the config asks for."""


class HistoryBatch(NamedTuple):
    """A padded batch of histories; every field (B, N)."""

    items: torch.Tensor  # int64 embedding rows
    categories: torch.Tensor  # int64 embedding rows
    ages: torch.Tensor  # int64 age buckets
    mask: torch.Tensor  # bool, False on padding

    def to(self, device: torch.device) -> HistoryBatch:
        return HistoryBatch(*(t.to(device) for t in self))


def item_index(item_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Map raw ids (items or categories) to embedding rows by hashing into
    1..vocab_size-1; unknown (negative) ids share row 0."""
    ids = np.asarray(item_ids, dtype=np.int64)
    return np.where(ids >= 0, 1 + ids % (vocab_size - 1), UNKNOWN_ITEM)


def age_bucket(event_ts_us: np.ndarray, as_of_us: int, n_buckets: int) -> np.ndarray:
    """log2 of the event's age in days, so recent days are told apart finely."""
    age_days = np.maximum(as_of_us - np.asarray(event_ts_us, dtype=np.int64), 0) / MICROS_PER_DAY
    return np.minimum(np.floor(np.log2(1.0 + age_days)), n_buckets - 1).astype(np.int64)


class SummarizerBlock(nn.Module):
    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = QuasiLinearAttention(dim, n_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def state(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.attn.state(self.norm_attn(x), mask)  # (B, H, hd, hd)

    def apply(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = x + self.attn.read(self.norm_attn(x), state)
        return x + self.mlp(self.norm_mlp(x))  # (B, T, D)


class VistaSummarizer(nn.Module):
    """History (B, N) -> summary tokens (B, K, D)."""

    def __init__(self, cfg: SummarizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.shape = SummarizerShape.of(cfg)
        self.item_embedding = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.category_embedding = nn.Embedding(cfg.category_vocab_size, cfg.dim)
        self.age_embedding = nn.Embedding(cfg.age_buckets, cfg.dim)
        self.seeds = nn.Parameter(torch.randn(cfg.n_seeds, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            SummarizerBlock(cfg.dim, cfg.n_heads) for _ in range(cfg.n_layers)
        )
        self.norm_out = nn.LayerNorm(cfg.dim)

    def embed_candidates(self, items: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items) + self.category_embedding(categories)

    def embed(self, batch: HistoryBatch, sl: slice) -> torch.Tensor:
        return self.embed_candidates(
            batch.items[:, sl], batch.categories[:, sl]
        ) + self.age_embedding(batch.ages[:, sl])  # (B, c, D)

    def forward(self, batch: HistoryBatch) -> torch.Tensor:
        """A padded batch of histories (B, N) -> summary tokens (B, K, D)."""
        B, N = batch.items.shape
        chunk = self.cfg.chunk_size
        seed_x = self.seeds.expand(B, -1, -1)  # (B, K, D)
        states: list[torch.Tensor] = []
        for layer, block in enumerate(self.blocks):
            state = block.state(seed_x, None)  # seeds always take part
            for start in range(0, N, chunk):
                sl = slice(start, start + chunk)
                x = self.embed(batch, sl)  # (B, c, D)
                for lower, earlier_state in zip(self.blocks[:layer], states, strict=True):
                    x = lower.apply(x, earlier_state)
                state = state + block.state(x, batch.mask[:, sl])
            states.append(state)
            seed_x = block.apply(seed_x, state)
        return self.norm_out(seed_x)  # (B, K, D)

    def reference_forward(self, batch: HistoryBatch, attention: str = "qla") -> torch.Tensor:
        """The same network on the whole [seeds; history] sequence at once, with the
        (T x T) score matrix: ``qla`` checks the chunked linear path, ``softmax`` is the
        plain softmax-attention reference. O(N^2) memory: small N only."""
        attend = {"qla": qla_reference, "softmax": softmax_reference}[attention]
        B, N = batch.items.shape
        K = self.cfg.n_seeds
        x = torch.cat([self.seeds.expand(B, -1, -1), self.embed(batch, slice(0, N))], dim=1)
        mask = torch.cat([torch.ones(B, K, dtype=torch.bool, device=x.device), batch.mask], 1)
        for block in self.blocks:
            q, k, v = block.attn.qkv_heads(block.norm_attn(x))
            x = x + block.attn.merge(attend(q, k, v, mask))
            x = x + block.mlp(block.norm_mlp(x))
        return self.norm_out(x[:, :K])  # (B, K, D)

    def flops_per_event(self) -> int:
        """Multiply-adds x 2 per history event for one chunked forward pass: layer l
        recomputes l lower blocks (q, read, out proj, MLP) then folds K and V."""
        d, hd = self.cfg.dim, self.cfg.dim // self.cfg.n_heads
        apply = d * d + d * hd + d * d + 8 * d * d  # q proj, read, out proj, MLP
        fold = 2 * d * d + d * hd  # k, v proj, state update
        L = self.cfg.n_layers
        return 2 * sum(layer * apply + fold for layer in range(L))

    def version(self) -> str:
        """Content hash of config and weights: travels with every summary written."""
        digest = hashlib.sha256(json.dumps(asdict(self.shape), sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return "s-" + digest.hexdigest()[:12]


def encode_histories(
    item_ids: list[np.ndarray],
    categories: list[np.ndarray],
    event_ts_us: list[np.ndarray],
    as_of_us: int,
    cfg: SummarizerConfig,
) -> HistoryBatch:
    """Pad a batch of histories, each (B, longest history)."""
    lengths = [len(x) for x in item_ids]
    width = max(max(lengths, default=0), 1)
    items = np.zeros((len(item_ids), width), dtype=np.int64)
    cats = np.zeros_like(items)
    ages = np.zeros_like(items)
    mask = np.zeros(items.shape, dtype=bool)
    rows = zip(item_ids, categories, event_ts_us, strict=True)
    for row, (ids, cat, ts) in enumerate(rows):
        n = len(ids)
        items[row, :n] = item_index(ids, cfg.vocab_size)
        cats[row, :n] = item_index(cat, cfg.category_vocab_size)
        ages[row, :n] = age_bucket(ts, as_of_us, cfg.age_buckets)
        mask[row, :n] = True
    return HistoryBatch(*(torch.from_numpy(a) for a in (items, cats, ages, mask)))


def save_checkpoint(model: VistaSummarizer, path: Path, extra: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(
        {
            "config": model.cfg.model_dump(mode="json"),
            "state_dict": model.state_dict(),
            "version": model.version(),
            "extra": extra or {},
        },
        buffer,
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)  # atomic: a reader never sees half a checkpoint
    return path


def load_checkpoint(path: Path, cfg: SummarizerConfig | None = None) -> VistaSummarizer:
    """Load a frozen summarizer; with ``cfg``, its sizes must match the checkpoint's."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    saved = SummarizerConfig.model_validate(payload["config"])
    if cfg is not None:
        want, have = asdict(SummarizerShape.of(cfg)), asdict(SummarizerShape.of(saved))
        diffs = [
            f"{k}: config {want[k]} != checkpoint {have[k]}" for k in want if want[k] != have[k]
        ]
        if diffs:
            raise CheckpointMismatchError(
                f"summarizer checkpoint {path} does not match the config: " + "; ".join(diffs)
            )
        saved = saved.model_copy(update={"chunk_size": cfg.chunk_size})
    model = VistaSummarizer(saved)
    model.load_state_dict(payload["state_dict"])
    model.eval().requires_grad_(False)
    return model
