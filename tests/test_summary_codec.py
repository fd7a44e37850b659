"""Compact summary storage: sizes, error bounds, and rows that do not decode."""

import numpy as np
import pandas as pd
import pytest
import torch

from vista.core.summary_codec import (
    SummaryDecodeError,
    bf16_bits,
    bf16_values,
    decode,
    decode_frame,
    decode_rows,
    encode,
)

K, D = 4, 8


def tokens(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    # tokens of very different magnitudes: the per-token scale must follow each one
    return (rng.standard_normal((batch, K, D)) * np.logspace(-3, 2, K)[None, :, None]).astype(
        np.float32
    )


@pytest.mark.parametrize(("codec", "width"), [("int8", 1), ("bf16", 2), ("float32", 4)])
def test_stored_size_is_k_times_d_values_of_the_codec(codec, width):
    codes, scales = encode(tokens(), codec)
    assert [len(c) for c in codes] == [K * D * width] * 3
    assert scales.shape == (3, K)


def test_int8_error_is_at_most_half_a_step_of_each_tokens_scale():
    x = tokens()
    codes, scales = encode(x, "int8")
    y = decode(codes, scales, "int8", K, D).reshape(x.shape)
    step = np.abs(x).max(axis=2, keepdims=True) / 127
    assert (np.abs(y - x) <= step / 2 + 1e-7 * np.abs(x)).all()
    # the smallest token keeps its precision: no shared scale across tokens
    assert np.abs(y[:, 0] - x[:, 0]).max() < 1e-4


def test_bf16_matches_torch_rounding_and_float32_is_exact():
    x = tokens()
    ours = bf16_values(bf16_bits(x))
    theirs = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(ours, theirs)
    codes, scales = encode(x, "float32")
    np.testing.assert_array_equal(decode(codes, scales, "float32", K, D), x.reshape(3, -1))


def test_zero_tokens_decode_to_exact_zeros_and_nan_stays_visible():
    x = tokens()
    x[0, 1] = 0.0
    x[1, 2, 3] = np.nan
    with np.errstate(invalid="ignore"):
        codes, scales = encode(x, "int8")
    y = decode(codes, scales, "int8", K, D).reshape(x.shape)
    assert scales[0, 1] == 0
    assert (y[0, 1] == 0).all()
    assert not np.isfinite(y[1, 2]).all()  # the validation suite's all-finite check sees it


def test_rows_that_do_not_decode_name_the_problem():
    codes, scales = encode(tokens(1), "int8")
    with pytest.raises(SummaryDecodeError, match=r"31 bytes of int8 codes, expected 32 .* 4 x 8"):
        decode([codes[0][:-1]], scales, "int8", K, D)
    with pytest.raises(SummaryDecodeError, match=r"3 int8 scales, expected one per token \(4\)"):
        decode(codes, [scales[0][:3]], "int8", K, D)
    with pytest.raises(SummaryDecodeError, match="unknown summary codec 'int4'"):
        decode(codes, scales, "int4", K, D)
    with pytest.raises(ValueError, match="unknown summary codec 'int4'"):
        encode(tokens(1), "int4")
    lenient = decode([codes[0][:-1]], scales, "int8", K, D, strict=False)
    assert np.isnan(lenient).all()


def test_frames_decode_with_missing_rows_and_mixed_codecs():
    x = tokens(2)
    c8, s8 = encode(x[:1], "int8")
    c16, s16 = encode(x[1:], "bf16")
    frame = pd.DataFrame(
        {
            "summary_codes": [c8[0], None, c16[0]],
            "summary_scales": [s8[0], None, s16[0]],
            "summary_codec": ["int8", None, "bf16"],
        }
    )
    y = decode_frame(frame, K, D)
    assert np.isnan(y[1]).all()
    np.testing.assert_array_equal(y[0], decode(c8, s8, "int8", K, D)[0])
    np.testing.assert_array_equal(y[2], decode(c16, s16, "bf16", K, D)[0])
    np.testing.assert_allclose(y[2], x[1].reshape(-1), rtol=2**-8)
    rows = decode_rows(frame)  # shape from the rows themselves (K = number of scales)
    assert rows[1] is None
    np.testing.assert_array_equal(rows[0], y[0])
    np.testing.assert_array_equal(rows[2], y[2])
    with pytest.raises(KeyError, match="summary_codec"):
        decode_frame(frame.drop(columns=["summary_codec"]), K, D)
