"""The VISTA summarizer: K learnable seed tokens attend with a user's whole history
through quasi-linear attention (QLA); the seeds' outputs are the summary tokens.

Two modes (``summarizer.mode``):

- ``bidirectional`` (``VistaSummarizer``): seeds and history attend together through
  ``n_layers`` QLA layers, each head's output RMS-normalised. Layer l's state needs the
  history's layer-(l-1) outputs, so chunk embeddings are recomputed per layer (L(L+1)/2
  passes over the history) rather than kept (N * D per layer).
- ``memory`` (``MemorySummarizer``): the seeds read one QLA state of the history,
  S_h = sum_i w_ih phi(k_i) v_i^T per head, with w_ih = 2^(-age_i / half_life_h) (no decay
  for a half-life of 0). History rows are not updated by the state (as Perceiver's or
  Set Transformer's PMA seeds), so S is a plain (decayed) sum over events: new events
  are added to it without re-reading the history, and nothing divides by N. The summary
  token k, head h is phi(q_kh) S_h, passed through a signed log1p (``magnitude: log``) so
  that a count of 3 and of 300,000 both survive int8 storage: the summary keeps
  magnitudes (how much) beside proportions (of what). A ranker that weighs the K tokens
  linearly by the candidate reads the state the way QLA's candidate rows do,
  phi(q_cand) S: "did this user consume things like this candidate, and how much".

Both fold histories of any length in chunks of ``chunk_size`` events, so memory is
O(B * chunk * D + D^2) whatever the history length.

Long because its two modes share the chunked fold over histories of any length, the
checkpoint format and the version stamp.
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
import torch.nn.functional as F
from torch import nn

from models.attention import (
    RMS_EPS,
    QuasiLinearAttention,
    feature_map,
    qla_reference,
    softmax_reference,
)
from models.sketch import sketch_tables, sketch_write
from vista.core.config import SummarizerConfig

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
    mode: str = "bidirectional"
    sketch_heads: int = 0

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
            cfg.mode,
            cfg.sketch_heads,
        )


class CheckpointMismatchError(ValueError):
    """A checkpoint was trained with other sizes than the config asks for."""


class HistoryBatch(NamedTuple):
    """A padded batch of histories; every field (B, N)."""

    items: torch.Tensor  # int64 embedding rows
    categories: torch.Tensor  # int64 embedding rows
    ages: torch.Tensor  # int64 age buckets
    mask: torch.Tensor  # bool, False on padding
    age_days: torch.Tensor  # float32 exact age in days (memory mode's decay)
    weights: torch.Tensor  # float32 event weight: 1, or N/n for a subsampled history

    def to(self, device: torch.device) -> HistoryBatch:
        return HistoryBatch(*(t.to(device) for t in self))


def item_index(item_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Map raw ids (items or categories) to embedding rows by hashing into
    1..vocab_size-1; unknown (negative) ids share row 0."""
    ids = np.asarray(item_ids, dtype=np.int64)
    return np.where(ids >= 0, 1 + ids % (vocab_size - 1), UNKNOWN_ITEM)


def age_days(event_ts_us: np.ndarray, as_of_us: int) -> np.ndarray:
    """Age of each event at the snapshot, in days (>= 0)."""
    return np.maximum(as_of_us - np.asarray(event_ts_us, dtype=np.int64), 0) / MICROS_PER_DAY


def age_bucket(event_ts_us: np.ndarray, as_of_us: int, n_buckets: int) -> np.ndarray:
    """log2 of the event's age in days, so recent days are told apart finely."""
    days = age_days(event_ts_us, as_of_us)
    return np.minimum(np.floor(np.log2(1.0 + days)), n_buckets - 1).astype(np.int64)


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
    event_weights: list[np.ndarray] | None = None,
) -> HistoryBatch:
    """Pad a batch of histories, each (B, longest history). ``event_weights`` (default
    1 per event) scale each event's share of a memory-mode state."""
    lengths = [len(x) for x in item_ids]
    width = max(max(lengths, default=0), 1)
    items = np.zeros((len(item_ids), width), dtype=np.int64)
    cats = np.zeros_like(items)
    ages = np.zeros_like(items)
    mask = np.zeros(items.shape, dtype=bool)
    days = np.zeros(items.shape, dtype=np.float32)
    weights = np.zeros(items.shape, dtype=np.float32)
    rows = zip(item_ids, categories, event_ts_us, strict=True)
    for row, (ids, cat, ts) in enumerate(rows):
        n = len(ids)
        items[row, :n] = item_index(ids, cfg.vocab_size)
        cats[row, :n] = item_index(cat, cfg.category_vocab_size)
        ages[row, :n] = age_bucket(ts, as_of_us, cfg.age_buckets)
        days[row, :n] = age_days(ts, as_of_us)
        weights[row, :n] = 1.0 if event_weights is None else event_weights[row]
        mask[row, :n] = True
    arrays = (items, cats, ages, mask, days, weights)
    return HistoryBatch(*(torch.from_numpy(a) for a in arrays))


class MemorySummarizer(nn.Module):
    """History (B, N) -> summary tokens (B, K, D) through one additive QLA state per head
    (module docstring). Keys and the seeds' queries have ``head_dim`` features per head."""

    def __init__(self, cfg: SummarizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.shape = SummarizerShape.of(cfg)
        D, H = cfg.dim, cfg.n_heads
        self.head_dim = D // H
        self.item_embedding = nn.Embedding(cfg.vocab_size, D)
        self.category_embedding = nn.Embedding(cfg.category_vocab_size, D)
        self.key = nn.Linear(D, D)
        self.value = nn.Linear(D, D, bias=False)
        self.seed_queries = nn.Parameter(torch.randn(H, cfg.n_seeds, self.head_dim))
        half_lives = torch.tensor(cfg.half_lives(), dtype=torch.float32)
        # per-head decay per day: 2^(-1/half_life), 1 for "no decay"
        rates = torch.where(half_lives > 0, 1.0 / half_lives.clamp(min=1e-9), 0.0)
        self.register_buffer("decay_per_day", rates, persistent=False)
        self.sketch_heads = cfg.sketch_heads
        if self.sketch_heads:  # fixed tables, derived from the shape (not weights)
            slots, signatures = sketch_tables(cfg.vocab_size, cfg.n_seeds, cfg.sketch_heads,
                                              self.head_dim)  # fmt: skip
            self.register_buffer("sketch_slots", slots, persistent=False)
            self.register_buffer("sketch_signatures", signatures, persistent=False)

    @property
    def learned_heads(self) -> int:
        return self.cfg.n_heads - self.sketch_heads

    def embed_candidates(self, items: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items) + self.category_embedding(categories)

    def embed(self, batch: HistoryBatch, sl: slice) -> torch.Tensor:
        return self.embed_candidates(batch.items[:, sl], batch.categories[:, sl])  # (B, c, D)

    def event_weights(self, batch: HistoryBatch, sl: slice) -> torch.Tensor:
        """(B, c, H): mask x importance weight x each head's decay at the event's age."""
        base = batch.weights[:, sl] * batch.mask[:, sl]  # (B, c)
        decay = torch.exp2(-batch.age_days[:, sl, None] * self.decay_per_day)  # (B, c, H)
        return base[:, :, None] * decay

    @property
    def state_rows(self) -> int:
        """Rows of each head's state: the key features (silu) or the K seeds (softmax)."""
        return self.cfg.n_seeds if self.cfg.address == "softmax" else self.head_dim

    def fold(self, batch: HistoryBatch, sl: slice) -> torch.Tensor:
        """The state of the events in ``sl``: (B, H, rows, hd). States of disjoint event
        sets add up to the state of their union."""
        B, hd = batch.items.shape[0], self.head_dim
        L = self.learned_heads
        x = self.embed(batch, sl)  # (B, c, D)
        # only the learned heads' rows of the projections: the sketch heads write fixed
        # signatures and need neither a key nor a value
        rows = slice(0, L * hd)
        # heads first, (B, L, c, .): each head's products are plain batched matmuls over
        # contiguous rows, and the softmax runs along contiguous memory
        key = F.linear(x, self.key.weight[rows], self.key.bias[rows])
        key = key.view(B, -1, L, hd).transpose(1, 2)  # (B, L, c, hd)
        if self.cfg.address == "softmax":  # each event's distribution over the K seeds
            queries = (self.seed_queries[:L] / hd**0.5).transpose(1, 2)  # (L, hd, K)
            k = torch.softmax(key @ queries, dim=-1)  # (B, L, c, K)
        else:
            k = feature_map(key)  # (B, L, c, hd)
        v = F.linear(x, self.value.weight[rows]).view(B, -1, L, hd).transpose(1, 2)
        w = self.event_weights(batch, sl).to(x.dtype)  # (B, c, H)
        # the event weights scale the values (hd wide), not the addresses (K wide)
        state = k.transpose(-1, -2) @ (v * w[:, :, :L].transpose(1, 2)[..., None])
        if not self.sketch_heads:
            return state
        sketch = sketch_write(batch.items[:, sl], w[:, :, L:], self.sketch_slots,
                              self.sketch_signatures, self.cfg.n_seeds)  # fmt: skip
        return torch.cat([state, sketch], dim=1)

    def candidate_address(self, items: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Candidates (B, C) rows, (B, C, D) embedded -> (B, C, H, K) logits of the slots
        they read: the learned heads' address, and the sketch heads' hashed slot."""
        logits = self.address_logits(candidates)
        if not self.sketch_heads:
            return logits
        one_hot = F.one_hot(self.sketch_slots[items], self.cfg.n_seeds).bool()  # (B,C,Hs,K)
        hashed = torch.zeros_like(one_hot, dtype=logits.dtype).masked_fill(~one_hot, -1e4)
        return torch.cat([logits[:, :, : self.learned_heads], hashed], dim=2)

    def candidate_values(self, items: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(B, C, D) the candidates as the memory writes them: the learned value, and
        the sketch heads' signatures."""
        B, C, _ = candidates.shape
        values = self.value(candidates)
        if not self.sketch_heads:
            return values
        learned = values.view(B, C, self.cfg.n_heads, self.head_dim)[:, :, : self.learned_heads]
        signatures = self.sketch_signatures[items].to(values)  # (B, C, Hs, hd)
        return torch.cat([learned, signatures], dim=2).reshape(B, C, -1)

    def address_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D) embedded events or candidates -> (B, C, H, K) logits of their
        distribution over the K seeds (address softmax): where an event is written, and
        so where a candidate like it should read."""
        B, C, _ = x.shape
        k = self.key(x).view(B, C, self.cfg.n_heads, self.head_dim)
        return torch.einsum("bchd,hkd->bchk", k, self.seed_queries) / self.head_dim**0.5

    def address_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """address_logits as one linear map of x: weight (H*K, D), bias (H*K,)."""
        H, K, hd = self.cfg.n_heads, self.cfg.n_seeds, self.head_dim
        w = self.key.weight.view(H, hd, -1)  # (H, hd, D)
        b = self.key.bias.view(H, hd)
        weight = torch.einsum("hkd,hde->hke", self.seed_queries, w).reshape(H * K, -1)
        bias = torch.einsum("hkd,hd->hk", self.seed_queries, b).reshape(H * K)
        return weight / hd**0.5, bias / hd**0.5

    def state(self, batch: HistoryBatch) -> torch.Tensor:
        """The whole history's state, folded chunk by chunk: (B, H, rows, hd)."""
        B, N = batch.items.shape
        shape = (B, self.cfg.n_heads, self.state_rows, self.head_dim)
        state = torch.zeros(shape, dtype=self.key.weight.dtype, device=batch.items.device)
        for start in range(0, N, self.cfg.chunk_size):
            state = state + self.fold(batch, slice(start, start + self.cfg.chunk_size))
        return state

    def advance(self, state: torch.Tensor, days: torch.Tensor | float) -> torch.Tensor:
        """The state of the same events ``days`` later (a scalar or (B,)): every event
        ages by the same days, so each head's decayed sum is multiplied by one factor."""
        days = torch.as_tensor(days, dtype=state.dtype, device=state.device)
        factor = torch.exp2(-days[..., None] * self.decay_per_day.to(state.dtype))  # (..., H)
        return state * factor[..., :, None, None]

    def refresh(
        self, state: torch.Tensor, state_as_of_us: int, new_events: HistoryBatch, as_of_us: int
    ) -> torch.Tensor:
        """The state at ``as_of_us`` of a history whose state at ``state_as_of_us`` is
        ``state`` plus ``new_events`` (those in [state_as_of, as_of), encoded at
        ``as_of_us``): the cost is the new events', whatever the history's length. Equal
        to the whole history's state (``state``) up to float rounding."""
        if as_of_us < state_as_of_us:
            raise ValueError(f"cannot refresh a state of {state_as_of_us} to an earlier "
                             f"snapshot {as_of_us} (microseconds)")  # fmt: skip
        days = (as_of_us - state_as_of_us) / MICROS_PER_DAY
        return self.advance(state, days) + self.state(new_events)

    def tokens(self, state: torch.Tensor, n_events: torch.Tensor) -> torch.Tensor:
        """State (B, H, rows, hd) and events per row (B,) -> summary tokens (B, K, D)."""
        B = state.shape[0]
        if self.cfg.address == "softmax":  # the state's rows are the seeds already
            read = state.transpose(1, 2)  # (B, K, H, hd)
        else:
            read = torch.einsum("hkd,bhde->bkhe", feature_map(self.seed_queries), state)
        read = read.reshape(B, self.cfg.n_seeds, self.cfg.dim)  # (B, K, D)
        if self.cfg.magnitude == "log":
            return torch.sign(read) * torch.log1p(read.abs())
        if self.cfg.magnitude == "mean":
            return read / n_events.clamp(min=1).to(read.dtype)[:, None, None]
        heads = read.view(B, self.cfg.n_seeds, self.cfg.n_heads, self.head_dim)
        return (heads * torch.rsqrt(heads.pow(2).mean(-1, keepdim=True) + RMS_EPS)).view_as(read)

    def forward(self, batch: HistoryBatch) -> torch.Tensor:
        """A padded batch of histories (B, N) -> summary tokens (B, K, D)."""
        n_events = (batch.weights * batch.mask).sum(1)
        return self.tokens(self.state(batch), n_events)

    def flops_per_event(self) -> int:
        """Multiply-adds x 2 per event: the learned heads' key and value projections,
        their address over the K seeds (softmax address) and the state update; a sketch
        head adds its signature into one slot."""
        d, hd, L = self.cfg.dim, self.head_dim, self.learned_heads
        rows = self.state_rows
        address = L * hd * self.cfg.n_seeds if self.cfg.address == "softmax" else 0
        return 2 * (2 * d * L * hd + address + L * rows * hd + self.sketch_heads * hd)

    version = VistaSummarizer.version


def build_summarizer(cfg: SummarizerConfig) -> VistaSummarizer | MemorySummarizer:
    """The summarizer of ``cfg.mode``."""
    return MemorySummarizer(cfg) if cfg.mode == "memory" else VistaSummarizer(cfg)


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


def load_checkpoint(
    path: Path, cfg: SummarizerConfig | None = None
) -> VistaSummarizer | MemorySummarizer:
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
    model = build_summarizer(saved)
    model.load_state_dict(payload["state_dict"])
    model.eval().requires_grad_(False)
    return model
