"""The ranker's PyTorch modules: the poolings (``softmax``, ``sum``, ``softmax_sum``,
``din``; the summary tokens' ``slot`` read lives in ``models.attention``) and ``Ranker``, which
embeds the candidate, pools each key set conditioned on it and scores
[candidate, context, candidate * context] with one MLP.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.attention import TokenPooling, slot_match
from models.ranker.spec import RankerSpec
from models.sketch import sketch_features, sketch_read, sketch_tables
from vista.core.config import RankerConfig


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


class SoftmaxSumPooling(nn.Module):
    """Both reads of one key set, each with its own query and key projections, mixed by
    a linear map: softmax weights keep a short history's composition (what a sum scaled
    for 16k keys all but loses), unnormalised ones keep how many keys match (what a
    softmax normalises away). For the raw-history baselines, which otherwise must choose
    one for users with 20 and with 16,384 events alike."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.softmax = SoftmaxPooling(dim)
        self.sum = SumPooling(dim, max_len)
        self.mix = nn.Linear(2 * dim, dim)

    def forward(self, candidates, keys, mask):
        both = [self.softmax(candidates, keys, mask), self.sum(candidates, keys, mask)]
        return self.mix(torch.cat(both, -1))


def sequence_pooling(pooling: str, dim: int, max_len: int) -> nn.Module:
    if pooling == "sum":
        return SumPooling(dim, max_len)
    if pooling == "softmax_sum":
        return SoftmaxSumPooling(dim, max_len)
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
