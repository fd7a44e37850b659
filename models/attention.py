"""Quasi-linear attention (QLA, VISTA appendix B) and the references it is checked against.

For history and seed rows S:  O[S] = phi(Q[S]) (phi(K[S])^T V[S]),  phi = SiLU,
no row normalisation, no mask over the history (bidirectional). The state
phi(K)^T V is one (head_dim x head_dim) matrix per head, so cost is O(N d^2) and a
history can be folded into the state chunk by chunk. Because the state is a sum over
N rows, its scale grows with N; each head's output goes through a parameter-free
RMS norm (as TransNormer's NormAttention) so that the next layer sees the same scale
for 100 events as for 1,000,000.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

RMS_EPS = 1e-6


def feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


def qla_state(k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Sum over rows of phi(k)^T v.  k, v: (B, H, T, hd); mask: (B, T) -> (B, H, hd, hd)."""
    phi_k = feature_map(k)
    if mask is not None:
        phi_k = phi_k * mask[:, None, :, None].to(phi_k.dtype)
    return torch.einsum("bhtd,bhte->bhde", phi_k, v)


def qla_read(q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """phi(q) @ state, RMS-normalised per head.  q: (B, H, T, hd) -> (B, H, T, hd)."""
    out = torch.einsum("bhtd,bhde->bhte", feature_map(q), state)
    return out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + RMS_EPS)


def qla_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """The same attention computed directly with the (T x T) score matrix: O(T^2 d)."""
    scores = feature_map(q) @ feature_map(k).transpose(-1, -2)  # (B, H, T, T)
    if mask is not None:
        scores = scores * mask[:, None, None, :].to(scores.dtype)
    out = scores @ v
    return out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + RMS_EPS)


def softmax_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Plain softmax attention over the same rows, for small T (quality comparisons)."""
    bool_mask = None if mask is None else mask[:, None, None, :].bool()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bool_mask)


class QuasiLinearAttention(nn.Module):
    """Multi-head QLA split into its two halves, so that a caller can fold long
    histories into the state chunk by chunk before reading it."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.reshape(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        """(B, H, T, hd) head outputs -> (B, T, D) through the output projection."""
        B, _, T, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(B, T, -1))

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, T, D)
        return self._split(q), self._split(k), self._split(v)

    def state(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # only K and V are needed here: project with their slice of the weight
        k, v = F.linear(x, self.qkv.weight[self.qkv.out_features // 3 :]).chunk(2, dim=-1)
        return qla_state(self._split(k), self._split(v), mask)  # (B, H, hd, hd)

    def read(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        q = F.linear(x, self.qkv.weight[: self.qkv.out_features // 3])  # (B, T, D)
        return self.merge(qla_read(self._split(q), state))  # (B, T, D)


class TokenPooling(nn.Module):
    """A candidate's view of K tokens: (B, C, D) candidates, (B, K, D) tokens -> (B, C, D).

    ``softmax``: scaled dot-product attention (a convex mix of the tokens). ``sum``: the
    weights are a linear function of the candidate, unnormalised, so the context is linear
    in the tokens: over memory-mode summaries (tokens = phi(Q) S) it is a read of the QLA
    state by the candidate, magnitudes included."""

    def __init__(self, dim: int, n_tokens: int, pooling: str = "softmax", n_heads: int = 1) -> None:
        super().__init__()
        if pooling not in ("softmax", "sum", "slot"):
            raise ValueError(f"pooling must be softmax, sum or slot, got {pooling!r}")
        self.pooling, self.n_heads = pooling, n_heads
        if pooling == "softmax":
            self.query = nn.Linear(dim, dim, bias=False)
            self.key = nn.Linear(dim, dim, bias=False)
        elif pooling == "slot":
            self.weights = nn.Linear(dim, n_tokens * n_heads)
        else:
            self.weights = nn.Linear(dim, n_tokens)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(
        self,
        candidates: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        slot_logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``slot_logits`` (B, C, H, K), slot pooling only: the candidate's address given
        from outside (the summarizer's own) instead of this module's linear map."""
        if self.pooling == "slot":
            # the candidate's own distribution over the K slots, per head: it reads the
            # slots it would have been written into (memory mode, address softmax)
            B, C, _ = candidates.shape
            K, H = tokens.shape[1], self.n_heads
            if slot_logits is None:
                slot_logits = self.weights(candidates).view(B, C, H, K)
            weights = torch.softmax(slot_logits, dim=-1)
            heads = tokens.view(B, K, H, -1)  # (B, K, H, hd)
            return torch.einsum("bchk,bkhd->bchd", weights, heads).reshape(B, C, -1)
        if self.pooling == "sum":
            weights = self.weights(candidates) / tokens.shape[1]  # (B, C, K)
            if token_mask is not None:
                weights = weights * token_mask[:, None, :].to(weights.dtype)
            return weights @ tokens  # (B, C, D)
        scores = self.query(candidates) @ self.key(tokens).transpose(1, 2) * self.scale  # (B, C, K)
        if token_mask is not None:
            scores = scores.masked_fill(~token_mask[:, None, :].bool(), float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # all-masked rows -> 0
        return weights @ tokens  # (B, C, D)


def slot_match(values: torch.Tensor, context: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Per head, how much of the candidate its slot read holds: <value(candidate), read>.
    values, context: (B, C, D) -> (B, C, H). Over a memory-mode summary with slot
    addressing the read of head h is the (log-scaled) sum of the values written into the
    candidate's slots, so this is QLA's candidate read made explicit: large when the
    user consumed this very item (or items that share its value), however long ago. An
    MLP over [candidate, context, candidate * context] can only form a diagonal bilinear
    map of the two and would have to learn the value projection to find it."""
    B, C, _ = values.shape
    return (values.view(B, C, n_heads, -1) * context.view(B, C, n_heads, -1)).sum(-1)


class TargetAttentionHead(nn.Module):
    """Each candidate pools a short token sequence (TokenPooling); an MLP scores
    [candidate, context, candidate * context] (+ the slot match per head, when given the
    candidates' values)."""

    def __init__(
        self, dim: int, hidden: int = 64, n_tokens: int = 1, pooling: str = "softmax",
        n_heads: int = 1, match: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        self.pool = TokenPooling(dim, n_tokens, pooling, n_heads)
        self.match_heads = n_heads if match else 0
        self.mlp = nn.Sequential(nn.Linear(3 * dim + self.match_heads, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1))  # fmt: skip

    def forward(
        self,
        candidates: torch.Tensor,
        tokens: torch.Tensor,
        token_mask: torch.Tensor | None = None,
        slot_logits: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """candidates: (B, C, D), tokens: (B, K, D), token_mask: (B, K), values (match
        only): (B, C, D) the candidates as the summarizer writes them -> logits (B, C)."""
        context = self.pool(candidates, tokens, token_mask, slot_logits)  # (B, C, D)
        parts = [candidates, context, candidates * context]
        if self.match_heads:
            parts.append(slot_match(values, context, self.match_heads))
        return self.mlp(torch.cat(parts, dim=-1)).squeeze(-1)  # (B, C)
