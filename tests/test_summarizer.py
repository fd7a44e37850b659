import numpy as np
import pytest
import torch

from models.attention import (
    QuasiLinearAttention,
    qla_read,
    qla_reference,
    qla_state,
    softmax_reference,
)
from models.summarizer import (
    CheckpointMismatchError,
    VistaSummarizer,
    age_bucket,
    build_summarizer,
    encode_histories,
    item_index,
    load_checkpoint,
    save_checkpoint,
)
from models.train_summarizer import subsample
from vista.core.config import SummarizerConfig


def cfg(**kw) -> SummarizerConfig:
    base = {
        "n_seeds": 4,
        "dim": 16,
        "n_layers": 2,
        "n_heads": 2,
        "vocab_size": 97,
        "category_vocab_size": 11,
        "age_buckets": 8,
        "chunk_size": 16,
    }
    return SummarizerConfig(**{**base, **kw})  # fmt: skip


def random_histories(lengths, seed=0):
    rng = np.random.default_rng(seed)
    items = [rng.integers(0, 500, n) for n in lengths]
    cats = [rng.integers(0, 20, n) for n in lengths]
    ts = [np.sort(rng.integers(0, 10**13, n)) for n in lengths]
    return items, cats, ts


def test_linear_path_equals_direct_quadratic_computation():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 40, 8, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(3, 40) > 0.3
    linear = qla_read(q, qla_state(k, v, mask))
    direct = qla_reference(q, k, v, mask)
    torch.testing.assert_close(linear, direct, rtol=1e-9, atol=1e-9)


def test_masked_rows_do_not_change_the_state():
    torch.manual_seed(1)
    k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    mask = torch.ones(1, 10, dtype=torch.bool)
    mask[:, 6:] = False
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 6:], v2[:, :, 6:] = 100.0, -100.0  # garbage on padding
    torch.testing.assert_close(qla_state(k, v, mask), qla_state(k2, v2, mask))


def test_softmax_reference_shapes_and_mask():
    attn = QuasiLinearAttention(16, 2)
    with torch.no_grad():
        q, k, v = attn.qkv_heads(torch.randn(2, 12, 16))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, -3:] = False
    out = softmax_reference(q, k, v, mask)
    assert out.shape == (2, 2, 12, 8)
    # masked keys are ignored: same as attending over the first 9 rows only
    torch.testing.assert_close(out, softmax_reference(q, k[:, :, :9], v[:, :, :9], None))


def test_summary_shape_and_chunked_equals_unchunked():
    torch.manual_seed(0)
    small_chunks = VistaSummarizer(cfg(chunk_size=16)).double().eval()
    one_chunk = VistaSummarizer(cfg(chunk_size=100_000)).double().eval()
    one_chunk.load_state_dict(small_chunks.state_dict())
    batch = encode_histories(*random_histories([150, 7, 64]), 10**13, cfg())
    with torch.no_grad():
        a, b = small_chunks(batch), one_chunk(batch)
    assert a.shape == (3, 4, 16)
    rel = (a - b).norm() / b.norm()
    assert rel < 1e-10


def test_fp32_chunked_within_1e4_relative():
    torch.manual_seed(0)
    chunked = VistaSummarizer(cfg(chunk_size=64)).eval()
    whole = VistaSummarizer(cfg(chunk_size=10**6)).eval()
    whole.load_state_dict(chunked.state_dict())
    batch = encode_histories(*random_histories([5000]), 10**13, cfg())
    with torch.no_grad():
        rel = (chunked(batch) - whole(batch)).norm() / whole(batch).norm()
    assert rel < 1e-4


def test_padding_does_not_change_a_users_summary():
    torch.manual_seed(0)
    model = VistaSummarizer(cfg()).eval()
    items, cats, ts = random_histories([30, 90])
    with torch.no_grad():
        alone = model(encode_histories(items[:1], cats[:1], ts[:1], 10**13, cfg()))
        padded = model(encode_histories(items, cats, ts, 10**13, cfg()))
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-5, atol=1e-5)


def test_history_is_bidirectional_set_with_time_features():
    """Order of events does not matter (no causal mask); their ages do."""
    torch.manual_seed(0)
    model = VistaSummarizer(cfg()).eval()
    items, cats, ts = random_histories([40])
    perm = np.random.default_rng(3).permutation(40)
    with torch.no_grad():
        a = model(encode_histories(items, cats, ts, 10**13, cfg()))
        b = model(encode_histories([items[0][perm]], [cats[0][perm]], [ts[0][perm]],
                                   10**13, cfg()))  # fmt: skip
        c = model(encode_histories(items, cats, [ts[0] - 10**12], 10**13, cfg()))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-4)


def test_empty_history_gets_a_defined_summary():
    model = VistaSummarizer(cfg()).eval()
    with torch.no_grad():
        out = model(encode_histories([np.array([], np.int64)], [np.array([], np.int64)],
                                     [np.array([], np.int64)], 0, cfg()))  # fmt: skip
    assert out.shape == (1, 4, 16)
    assert torch.isfinite(out).all()


def test_item_index_hashes_and_keeps_unknown_apart():
    idx = item_index(np.array([0, 5, 96, -1, 10**12]), 97)
    assert idx[3] == 0
    assert ((idx[[0, 1, 2, 4]] >= 1) & (idx[[0, 1, 2, 4]] < 97)).all()


def test_age_buckets_are_monotone_and_bounded():
    day = 86_400_000_000
    ages = age_bucket(np.array([10 * day, 9 * day, 0, -day]), 10 * day, 8)
    assert list(ages) == sorted(ages)
    assert ages.max() <= 7
    assert ages.min() == 0


def test_checkpoint_round_trip_version_and_mismatch(tmp_path):
    torch.manual_seed(0)
    model = VistaSummarizer(cfg())
    path = save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_checkpoint(path, cfg(chunk_size=999))
    assert loaded.version() == model.version()
    assert not any(p.requires_grad for p in loaded.parameters())
    other = VistaSummarizer(cfg())
    assert other.version() != model.version()  # new weights, new version
    with pytest.raises(CheckpointMismatchError, match=r"n_seeds: config 8 != checkpoint 4"):
        load_checkpoint(path, cfg(n_seeds=8))


def test_chunked_model_equals_direct_quadratic_model():
    """The whole network, chunked and linear, against the (T x T) computation."""
    torch.manual_seed(0)
    model = VistaSummarizer(cfg(chunk_size=16)).double().eval()
    batch = encode_histories(*random_histories([53, 5, 20]), 10**13, cfg())
    with torch.no_grad():
        chunked = model(batch)
        direct = model.reference_forward(batch, "qla")
        softmax = model.reference_forward(batch, "softmax")
    torch.testing.assert_close(chunked, direct, rtol=1e-9, atol=1e-9)
    assert softmax.shape == chunked.shape
    assert torch.isfinite(softmax).all()
    assert not torch.allclose(softmax, chunked)


def test_flops_per_event_grows_with_depth_and_width():
    small, deep, wide = (VistaSummarizer(cfg(**kw)) for kw in
                         ({}, {"n_layers": 3}, {"dim": 32}))  # fmt: skip
    assert deep.flops_per_event() > small.flops_per_event()
    assert wide.flops_per_event() > 3 * small.flops_per_event()


def test_causal_decoder_matches_reference_and_never_sees_the_future():
    from models.reconstruction import ReconstructionDecoder, causal_qla, causal_qla_reference

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 12, 4, dtype=torch.float64) for _ in range(3))
    seed_k, seed_v = torch.randn(2, 2, 3, 4, dtype=torch.float64), torch.randn(2, 2, 3, 4,
                                                                               dtype=torch.float64)  # fmt: skip
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False
    prefix = qla_state(seed_k, seed_v, None)
    torch.testing.assert_close(
        causal_qla(q, k, v, mask, prefix), causal_qla_reference(q, k, v, mask, seed_k, seed_v)
    )
    decoder = ReconstructionDecoder(16, 2).eval()
    tokens, history = torch.randn(1, 4, 16), torch.randn(1, 10, 16)
    full_mask = torch.ones(1, 10, dtype=torch.bool)
    changed = history.clone()
    changed[:, 6:] += 5.0
    with torch.no_grad():
        a, b = decoder(tokens, history, full_mask), decoder(tokens, changed, full_mask)
    torch.testing.assert_close(a[:, :6], b[:, :6])  # positions 0..5 never saw events 6..
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_reconstruction_loss_weight_zero_drops_the_decoder():
    from models.train_summarizer import SourceModel

    with_rec = SourceModel(cfg(recon_weight=1.0))
    without = SourceModel(cfg(recon_weight=0.0))
    batch = encode_histories(*random_histories([20, 9]), 10**13, cfg())
    cands = torch.randint(1, 50, (2, 3))
    cats = torch.randint(1, 10, (2, 3))
    logits, recon = with_rec(batch, cands, cats)
    assert logits.shape == (2, 3)
    assert recon is not None
    assert recon.item() > 0
    recon.backward()
    assert with_rec.summarizer.seeds.grad is not None  # the summary tokens are trained by it
    assert without.decoder is None
    assert without(batch, cands, cats)[1] is None


def test_decoder_window_equals_the_same_positions_of_a_full_pass():
    from models.reconstruction import ReconstructionDecoder

    torch.manual_seed(0)
    decoder = ReconstructionDecoder(16, 2).double().eval()
    tokens, history = torch.randn(2, 4, 16).double(), torch.randn(2, 30, 16).double()
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 25:] = False
    with torch.no_grad():
        full = decoder(tokens, history, mask)
        part = decoder(tokens, history, mask, slice(10, 22))
    torch.testing.assert_close(part, full[:, 10:22])


# ---------------------------------------------------------------- memory mode
def memory(**kw) -> SummarizerConfig:
    return cfg(mode="memory", head_half_life_days=[0.0, 30.0], **kw)


def as_double(batch):
    return batch._replace(age_days=batch.age_days.double(), weights=batch.weights.double())


DAY_US = 86_400_000_000


def test_memory_state_is_a_sum_over_events_so_new_events_just_add():
    """The state of a history equals the sum of the states of any split of it: a refresh
    adds new events' state to the cached one (whatever the chunking)."""
    model = build_summarizer(memory(chunk_size=16)).double().eval()
    items, cats, ts = random_histories([90])
    whole = model.state(as_double(encode_histories(items, cats, ts, 10**13, model.cfg)))
    parts = [
        model.state(as_double(encode_histories([items[0][s]], [cats[0][s]], [ts[0][s]], 10**13,
                                               model.cfg)))
        for s in (slice(0, 31), slice(31, 90))
    ]  # fmt: skip
    torch.testing.assert_close(parts[0] + parts[1], whole, rtol=1e-10, atol=1e-10)
    one_chunk = build_summarizer(memory(chunk_size=10**6)).double().eval()
    one_chunk.load_state_dict(model.state_dict())
    torch.testing.assert_close(
        one_chunk(as_double(encode_histories(items, cats, ts, 10**13, model.cfg))),
        model(as_double(encode_histories(items, cats, ts, 10**13, model.cfg))),
    )


def test_memory_heads_decay_by_their_half_life():
    """Head 0 (no decay) counts an event the same at any age; head 1 (30-day half-life)
    counts a 60-day-old event a quarter as much as a fresh one."""
    model = build_summarizer(memory()).double().eval()
    as_of = 10**13
    fresh, old = (
        ([np.array([5])], [np.array([3])], [np.array([as_of - age])]) for age in (0, 60 * DAY_US)
    )
    s_fresh = model.state(as_double(encode_histories(*fresh, as_of, model.cfg)))
    s_old = model.state(as_double(encode_histories(*old, as_of, model.cfg)))
    torch.testing.assert_close(s_old[:, 0], s_fresh[:, 0])
    torch.testing.assert_close(s_old[:, 1], s_fresh[:, 1] / 4)


def test_memory_summary_keeps_magnitudes_unless_normalised():
    """The same history twice over: `log` summaries differ (the counts doubled), `rms`
    and `mean` ones do not (proportions only). Event weights count as repeats."""
    items, cats, ts = random_histories([40])
    doubled = [np.r_[a, a] for a in (items[0], cats[0], ts[0])]
    weighted = np.full(40, 2.0, np.float32)
    for magnitude, keeps in (("log", True), ("rms", False), ("mean", False)):
        model = build_summarizer(memory(magnitude=magnitude)).double().eval()
        once = model(as_double(encode_histories(items, cats, ts, 10**13, model.cfg)))
        twice = model(as_double(encode_histories(*([a] for a in doubled), 10**13, model.cfg)))
        by_weight = model(as_double(encode_histories(items, cats, ts, 10**13, model.cfg,
                                                     [weighted])))  # fmt: skip
        torch.testing.assert_close(by_weight, twice)
        assert (not torch.allclose(once, twice, atol=1e-6)) == keeps, magnitude


def test_memory_empty_history_is_defined():
    model = build_summarizer(memory()).eval()
    out = model(encode_histories([np.array([], np.int64)], [np.array([], np.int64)],
                                 [np.array([], np.int64)], 10**13, model.cfg))  # fmt: skip
    assert torch.isfinite(out).all()
    assert out.shape == (1, 4, 16)


def test_memory_checkpoint_round_trip_and_mode_mismatch(tmp_path):
    model = build_summarizer(memory())
    path = save_checkpoint(model, tmp_path / "m.pt")
    loaded = load_checkpoint(path, memory())
    assert loaded.version() == model.version()
    with pytest.raises(CheckpointMismatchError, match="mode: config bidirectional"):
        load_checkpoint(path, cfg())


def test_subsample_keeps_recent_events_and_estimates_the_whole_sum():
    """A 10,000-event history cut to 500: the last 100 events kept exactly, weights add
    up to the history's length, and a weighted count of any subset is unbiased."""
    n, rng = 10_000, np.random.default_rng(0)
    arrays = (np.arange(n), np.arange(n) % 7)
    estimates = []
    for _ in range(200):
        (kept, cat), weights = subsample(arrays, 500, 100, rng)
        assert len(kept) == 500
        assert (kept[-100:] == np.arange(n - 100, n)).all()
        assert np.all(np.diff(kept) > 0)
        assert weights.sum() == pytest.approx(n)
        estimates.append(weights[cat == 3].sum())
    assert np.mean(estimates) == pytest.approx((arrays[1] == 3).sum(), rel=0.02)
    short, weights = subsample(arrays, 20_000, 100, rng)
    assert len(short[0]) == n
    assert (weights == 1).all()


def test_memory_refresh_from_a_cached_state_equals_the_whole_history():
    """A user with 1,000,000 events: the state cached at one snapshot, advanced to the next
    and added to the state of the 1,000 events between them, is the state of the whole
    history at the next snapshot (fp32, 1e-5 relative), summary tokens included: a learned
    head and a sketch head, one of them decaying."""
    cfg_ = SummarizerConfig(mode="memory", address="softmax", head_pooling="slot",
                            slot_match=True, sketch_heads=1,
                            n_seeds=16, dim=32, n_heads=2, head_half_life_days=[0.0, 30.0],
                            vocab_size=4096, category_vocab_size=64, chunk_size=65536)  # fmt: skip
    model = build_summarizer(cfg_).eval()
    rng = np.random.default_rng(0)
    n, new = 1_000_000, 1_000
    ts = np.sort(rng.integers(0, 3 * 365 * DAY_US, n))
    items, cats = rng.integers(1, 100_000, n), rng.integers(0, 200, n)
    before, after = int(ts[n - new]), int(ts[-1]) + DAY_US // 3  # a snapshot, then 8 h later
    assert (ts < before).sum() == n - new
    with torch.no_grad():
        cached = model.state(encode_histories([items[: n - new]], [cats[: n - new]],
                                              [ts[: n - new]], before, cfg_))  # fmt: skip
        fresh = encode_histories([items[n - new :]], [cats[n - new :]], [ts[n - new :]], after,
                                 cfg_)  # fmt: skip
        refreshed = model.refresh(cached, before, fresh, after)
        whole = model.state(encode_histories([items], [cats], [ts], after, cfg_))
        scale = whole.abs().max()
        assert ((refreshed - whole).abs().max() / scale).item() < 1e-5
        n_events = torch.tensor([float(n)])
        tokens = model.tokens(whole, n_events)
        error = (model.tokens(refreshed, n_events) - tokens).abs().max() / tokens.abs().max()
        assert error.item() < 1e-5
    with pytest.raises(ValueError, match="earlier snapshot"):
        model.refresh(cached, before, fresh, before - 1)
