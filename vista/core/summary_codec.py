"""Compact storage of summary tokens: encode when writing, decode when reading.

A user's summary is K tokens of D floats. The cache stores it as one binary value
(``summary_codes``) plus, for int8, one scale per token (``summary_scales``):

- ``int8``: symmetric per-token quantization, code = round(x / s) with s = max|x| / 127
  over the token's D values; 1 byte a value (4x smaller than float32), error at most
  s / 2 per value.
- ``bf16``: the upper 16 bits of each float32, rounded to nearest even; 2 bytes a value,
  relative error at most 2^-8 (8 significant bits).
- ``float32``: the values as they are (no loss), for comparison.

Numpy only, so that a modeler can decode rows pulled from Feast without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Codec = Literal["int8", "bf16", "float32"]
CODECS: tuple[str, ...] = ("int8", "bf16", "float32")
BYTES_PER_VALUE = {"int8": 1, "bf16": 2, "float32": 4}
INT8_MAX = 127


class SummaryDecodeError(ValueError):
    """A stored summary does not match the codec or the K x D shape it claims."""


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"unknown summary codec {codec!r}: expected one of {', '.join(CODECS)}")


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), rounding to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def bf16_values(bits: np.ndarray) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def encode(tokens: np.ndarray, codec: Codec) -> tuple[list[bytes], np.ndarray]:
    """(B, K, D) float tokens -> B binary codes and (B, K) float32 scales.

    Scales are all ones for bf16 and float32, which need none; a token of zeros gets
    scale 0 and decodes to zeros exactly.
    """
    _check_codec(codec)
    tokens = np.asarray(tokens, dtype=np.float32)
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be (batch, K, D), got shape {tokens.shape}")
    b, k, _ = tokens.shape
    scales = np.ones((b, k), dtype=np.float32)
    if codec == "int8":
        scales = np.abs(tokens).max(axis=2) / INT8_MAX
        safe = np.where(scales > 0, scales, 1.0)[:, :, None]
        codes = np.clip(np.rint(tokens / safe), -INT8_MAX, INT8_MAX).astype(np.int8)
    elif codec == "bf16":
        codes = bf16_bits(tokens)
    else:
        codes = tokens
    flat = codes.reshape(b, -1)
    return [row.tobytes() for row in flat], scales.astype(np.float32)


def decode(
    codes: Sequence[bytes | None],
    scales: Sequence[Sequence[float] | None] | None,
    codec: Codec | Sequence[str | None],
    n_tokens: int,
    token_dim: int,
    strict: bool = True,
) -> np.ndarray:
    """Stored rows -> (B, K * D) float32, token-major; NaN rows where there is no summary.

    ``codec`` is one codec for all rows or one per row (as Feast returns the column).
    A row that does not decode raises SummaryDecodeError, or with ``strict=False``
    becomes a NaN row (which every finite-value check downstream rejects).
    """
    width = n_tokens * token_dim
    out = np.full((len(codes), width), np.nan, dtype=np.float32)
    per_row = [codec] * len(codes) if isinstance(codec, str) else list(codec)
    for i, blob in enumerate(codes):
        if blob is None or (isinstance(blob, float) and np.isnan(blob)):
            continue
        try:
            out[i] = _decode_row(i, blob, scales, per_row[i], n_tokens, token_dim)
        except SummaryDecodeError:
            if strict:
                raise
    return out


def _decode_row(i, blob, scales, name, n_tokens: int, token_dim: int) -> np.ndarray:
    width = n_tokens * token_dim
    if name not in CODECS:
        raise SummaryDecodeError(f"row {i}: unknown summary codec {name!r}")
    size = BYTES_PER_VALUE[name] * width
    if len(blob) != size:
        raise SummaryDecodeError(
            f"row {i}: {len(blob)} bytes of {name} codes, expected {size} for "
            f"K x D = {n_tokens} x {token_dim}"
        )
    if name == "int8":
        row_scales = np.asarray(scales[i] if scales is not None else [], dtype=np.float32)
        if row_scales.shape != (n_tokens,):
            raise SummaryDecodeError(
                f"row {i}: {row_scales.size} int8 scales, expected one per token ({n_tokens})"
            )
        values = np.frombuffer(blob, dtype=np.int8).reshape(n_tokens, token_dim)
        return (values.astype(np.float32) * row_scales[:, None]).reshape(-1)
    if name == "bf16":
        return bf16_values(np.frombuffer(blob, dtype=np.uint16))
    return np.frombuffer(blob, dtype=np.float32)


def stored_shape(blob: bytes, scales, codec: str) -> tuple[int, int]:
    """(K, D) of one stored row, from itself: K scales, K * D values of the codec's width."""
    if codec not in CODECS:
        raise SummaryDecodeError(f"unknown summary codec {codec!r}")
    n_tokens = len(scales) if scales is not None else 0
    values = len(blob) // BYTES_PER_VALUE[codec]
    if n_tokens == 0 or values % n_tokens or len(blob) % BYTES_PER_VALUE[codec]:
        raise SummaryDecodeError(
            f"{len(blob)} bytes of {codec} codes do not split into {n_tokens} tokens"
        )
    return n_tokens, values // n_tokens


def decode_rows(frame) -> list[np.ndarray | None]:
    """Decode rows that carry their own shape (K = number of scales); None where a row has
    no summary, NaNs where it does not decode. For readers without the K x D config,
    such as Feast's on-demand view, whose function runs without this module's context."""
    out: list[np.ndarray | None] = []
    rows = zip(frame["summary_codes"], frame["summary_scales"], frame["summary_codec"],
               strict=True)  # fmt: skip
    for blob, scales, codec in rows:
        if not isinstance(blob, bytes | bytearray | memoryview):
            out.append(None)
            continue
        try:
            k, d = stored_shape(blob, scales, codec)
            out.append(_decode_row(0, blob, [scales], codec, k, d))
        except SummaryDecodeError:
            out.append(np.full(max(len(blob), 1), np.nan, dtype=np.float32))
    return out


def decode_frame(frame, n_tokens: int, token_dim: int, strict: bool = True) -> np.ndarray:
    """Decode the summary columns of a frame read from the cache or from Feast."""
    missing = {"summary_codes", "summary_scales", "summary_codec"} - set(frame.columns)
    if missing:
        raise KeyError(f"frame lacks summary columns {sorted(missing)}")
    return decode(
        frame["summary_codes"].tolist(),
        frame["summary_scales"].tolist(),
        [c if isinstance(c, str) else None for c in frame["summary_codec"].tolist()],
        n_tokens,
        token_dim,
        strict,
    )
