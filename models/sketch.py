"""The item sketch: which items a user consumed, and how often, in a fixed-size state.

A learned memory (slot addressing by content) files similar items into the same slot, so
its read of a slot says how much of a *kind* of item the user consumed, not whether this
very item occurred: on a repeat label (a grocery ``reordered``) that is the question.
The sketch answers it the way a count sketch does, with no parameters to learn: each
item id has a fixed slot per sketch head (a hash) and a fixed random +-1 signature of
``head_dim`` values; a history writes each event's signature (times its weight and the
head's decay) into its item's slot. The read of a candidate is its slot's content
dotted with its own signature, divided by ``head_dim``: the (decayed) count of that very
item, plus noise from the other items that share the slot, which shrinks as
1/sqrt(head_dim). The state is a sum over events like the rest of the memory: additive,
refreshable with new events alone, O(1) to read per candidate.

Tables are drawn from a fixed seed, so the summarizer that writes a sketch and the
ranker that reads it (or a later process) derive the same ones from the shape alone.
Row 0 (the unknown item) has signature 0: it writes nothing and matches nothing.
"""

from __future__ import annotations

import torch

SKETCH_SEED = 0x5EED


def sketch_tables(
    vocab_size: int, n_slots: int, n_heads: int, head_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(slots (vocab, H) int64 in [0, n_slots), signatures (vocab, H, head_dim) +-1.0)."""
    generator = torch.Generator().manual_seed(SKETCH_SEED)
    slots = torch.randint(0, n_slots, (vocab_size, n_heads), generator=generator)
    bits = torch.randint(0, 2, (vocab_size, n_heads, head_dim), generator=generator)
    signatures = bits.to(torch.float32) * 2 - 1
    signatures[0] = 0.0
    return slots, signatures


def sketch_write(
    items: torch.Tensor, weights: torch.Tensor, slots: torch.Tensor, signatures: torch.Tensor,
    n_slots: int,
) -> torch.Tensor:  # fmt: skip
    """Events (B, c) of vocabulary rows with per-head weights (B, c, H) -> their sketch
    (B, H, n_slots, head_dim). Sketches of disjoint event sets add up.

    A scatter-add of each event's weighted signature into its slot: head_dim additions
    per event and head, where a one-hot product would spend n_slots times as many."""
    B = items.shape[0]
    H = weights.shape[-1]
    head_dim = signatures.shape[-1]
    written = signatures[items].to(weights) * weights[..., None]  # (B, c, H, hd)
    row = torch.arange(B, device=items.device)[:, None, None] * H
    head = torch.arange(H, device=items.device)[None, None, :]
    index = ((row + head) * n_slots + slots[items]).reshape(-1)  # (B * c * H,)
    out = weights.new_zeros(B * H * n_slots, head_dim)
    out = out.index_add(0, index, written.reshape(-1, head_dim))
    return out.view(B, H, n_slots, head_dim)


def candidate_slots(items: torch.Tensor, sketch: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Candidates (B, C) of vocabulary rows and each row's sketch (B, K, H, head_dim), as
    stored in the summary tokens -> each candidate's slot, per head (B, C, H, head_dim)."""
    B, C = items.shape
    H = sketch.shape[2]
    batch = torch.arange(B, device=items.device)[:, None, None].expand(B, C, H)
    heads = torch.arange(H, device=items.device)[None, None, :].expand(B, C, H)
    return sketch[batch, slots[items], heads]


def sketch_read(
    items: torch.Tensor, sketch: torch.Tensor, slots: torch.Tensor, signatures: torch.Tensor
) -> torch.Tensor:
    """Candidates (B, C) and their rows' sketches (B, K, H, head_dim) -> per head, the
    candidate's count estimate (B, C, H)."""
    read = candidate_slots(items, sketch, slots)
    return (read * signatures[items].to(read)).mean(-1)


def sketch_features(
    items: torch.Tensor, sketch: torch.Tensor, slots: torch.Tensor, signatures: torch.Tensor
) -> torch.Tensor:
    """What a ranker reads of the sketch for candidates (B, C) -> (B, C, 2H): per head the
    candidate's count estimate and its slot's RMS. A slot that holds only the candidate
    has an RMS equal to the estimate; in a crowded one the RMS is far above it and the
    estimate is mostly other items' noise. The pair lets a ranker tell a clean count from
    a crowded slot (the same estimate means less in a heavy user's sketch)."""
    read = candidate_slots(items, sketch, slots)
    count = (read * signatures[items].to(read)).mean(-1)
    return torch.cat([count, read.pow(2).mean(-1).sqrt()], dim=-1)
