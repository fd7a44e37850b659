"""VISTA's generative reconstruction loss: a causal decoder reads the summary tokens
and the history and predicts, at each event, the embedding of the next event.

The decoder uses the same quasi-linear attention, causally: position i sees all K
summary tokens and history events 1..i, through a running sum of phi(k) v^T. The
target embedding is detached: with learnable embeddings on both sides, an MSE target
that the gradient could move would let both collapse to a constant.
"""

from __future__ import annotations

import torch
from torch import nn

from models.attention import QuasiLinearAttention, feature_map


def causal_qla(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, prefix: torch.Tensor
) -> torch.Tensor:
    """Position i reads ``prefix`` plus the state of rows 1..i.
    q, k, v: (B, H, T, hd); mask: (B, T); prefix: (B, H, hd, hd) -> (B, H, T, hd)."""
    phi_k = feature_map(k) * mask[:, None, :, None].to(k.dtype)
    running = torch.einsum("bhtd,bhte->bhtde", phi_k, v).cumsum(dim=2)  # (B, H, T, hd, hd)
    states = running + prefix[:, :, None]
    out = torch.einsum("bhtd,bhtde->bhte", feature_map(q), states)
    return out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + 1e-6)


def causal_qla_reference(q, k, v, mask, seed_k, seed_v) -> torch.Tensor:
    """The same with an explicit lower-triangular score matrix (tests only)."""
    T = q.shape[2]
    scores = feature_map(q) @ feature_map(k).transpose(-1, -2)  # (B, H, T, T)
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=q.device))
    scores = scores * (causal & mask[:, None, None, :].bool()).to(scores.dtype)
    seed_scores = feature_map(q) @ feature_map(seed_k).transpose(-1, -2)  # (B, H, T, K)
    out = scores @ v + seed_scores @ seed_v
    return out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + 1e-6)


class ReconstructionDecoder(nn.Module):
    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = QuasiLinearAttention(dim, n_heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        tokens: torch.Tensor,
        history: torch.Tensor,
        mask: torch.Tensor,
        window: slice | None = None,
    ) -> torch.Tensor:
        """tokens: (B, K, D) summary; history: (B, N, D) embeddings; mask: (B, N)
        -> (B, W, D): at each position i of ``window`` (default: all N), the predicted
        embedding of event i + 1. Events before the window enter as one folded state,
        so the causal part costs O(W hd^2) memory per head instead of O(N hd^2)."""
        window = window or slice(0, history.shape[1])
        h = self.norm(history)
        prefix = self.attn.state(self.norm(tokens), None)  # (B, H, hd, hd)
        if window.start:
            before = slice(0, window.start)
            prefix = prefix + self.attn.state(h[:, before], mask[:, before])
        q, k, v = self.attn.qkv_heads(h[:, window])
        out = causal_qla(q, k, v, mask[:, window], prefix)
        x = history[:, window] + self.attn.merge(out)
        x = x + self.mlp(x)
        return self.out(x)


def reconstruction_loss(
    predicted: torch.Tensor, history: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between prediction i and the (detached) embedding of i + 1."""
    pairs = (mask[:, :-1] & mask[:, 1:]).to(predicted.dtype)  # (B, N-1)
    if pairs.sum() == 0:
        return predicted.sum() * 0.0
    err = (predicted[:, :-1] - history[:, 1:].detach()).pow(2).mean(-1)  # (B, N-1)
    return (err * pairs).sum() / pairs.sum()
