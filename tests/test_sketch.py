"""The item sketch (models/sketch.py): a summary remembers which items, not only kinds."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from models.ranker import Ranker, RankerSpec, SummaryShape, score, score_one_user, train_ranker
from models.sketch import sketch_features, sketch_read
from models.summarizer import build_summarizer, encode_histories, item_index
from vista.core.config import RankerConfig, SummarizerConfig

VOCAB = 4099


def memory(**kw) -> SummarizerConfig:
    base = {"mode": "memory", "address": "softmax", "head_pooling": "slot", "slot_match": True,
            "n_seeds": 64, "dim": 32, "n_heads": 2, "vocab_size": VOCAB,
            "category_vocab_size": 16, "magnitude": "mean", "chunk_size": 16}  # fmt: skip
    return SummarizerConfig(**{**base, **kw})


def sketch_of(model, items: np.ndarray) -> torch.Tensor:
    """The sketch heads of the state of one history of ``items`` (all at the snapshot):
    (1, K, Hs, head_dim), as a summary stores it."""
    n = len(items)
    batch = encode_histories([items], [np.zeros(n, np.int64)], [np.zeros(n, np.int64)], 0,
                             model.cfg)  # fmt: skip
    with torch.no_grad():
        state = model.state(batch)  # (1, H, K, hd)
    return state.transpose(1, 2)[:, :, model.learned_heads :]


def test_sketch_reads_back_each_items_count_and_zero_for_items_never_seen():
    model = build_summarizer(memory(sketch_heads=1)).eval()
    rows = item_index(np.arange(1, 400), VOCAB)
    slots = model.sketch_slots[torch.from_numpy(rows), 0].numpy()
    # ids alone in their slot read back exactly; an id whose slot stays empty reads 0
    _, first = np.unique(slots, return_index=True)
    alone = np.arange(1, 400)[first][:6]
    counts = np.array([1, 2, 3, 5, 8, 13])
    history = np.repeat(alone[:5], counts[:5])
    sketch = sketch_of(model, np.random.default_rng(0).permutation(history))
    read = sketch_read(torch.from_numpy(item_index(alone, VOCAB))[None], sketch,
                       model.sketch_slots, model.sketch_signatures)[0, :, 0]  # fmt: skip
    np.testing.assert_allclose(read.numpy(), [*counts[:5], 0.0], atol=1e-6)
    # the unknown item (row 0) writes nothing
    torch.testing.assert_close(sketch_of(model, np.r_[history, -1]), sketch)


def test_sketch_features_tell_a_clean_slot_from_a_crowded_one():
    """An item alone in its slot reads an RMS equal to its count; an item sharing its slot
    with a heavy one reads an RMS far above its count estimate."""
    model = build_summarizer(memory(sketch_heads=1)).eval()
    ids = np.arange(1, 2000)
    slots = model.sketch_slots[torch.from_numpy(item_index(ids, VOCAB)), 0].numpy()
    values, first, counts = np.unique(slots, return_index=True, return_counts=True)
    alone = ids[first[0]]
    shared = np.flatnonzero(slots == values[np.argmax(counts)])  # a slot two or more share
    light, heavy = ids[shared[0]], ids[shared[1]]
    history = np.r_[np.repeat(alone, 3), light, np.repeat(heavy, 40)]
    sketch = sketch_of(model, history)
    candidates = torch.from_numpy(item_index(np.array([alone, light]), VOCAB))[None]
    count, rms = sketch_features(candidates, sketch, model.sketch_slots,
                                 model.sketch_signatures)[0].T  # fmt: skip
    np.testing.assert_allclose([count[0], rms[0]], [3.0, 3.0], atol=1e-5)
    assert rms[1] > 30, rms[1]
    assert rms[1] > 2 * abs(count[1]), (count[1], rms[1])


def test_sketch_state_adds_up_over_any_split_of_the_history():
    model = build_summarizer(memory(sketch_heads=1, head_half_life_days=[0.0, 30.0])).eval()
    rng = np.random.default_rng(1)
    items = rng.integers(1, 3000, 90)
    ts = np.sort(rng.integers(0, 10**13, 90))
    cats = rng.integers(0, 10, 90)

    def state(s):
        with torch.no_grad():
            return model.state(encode_histories([items[s]], [cats[s]], [ts[s]], 10**13,
                                                model.cfg))  # fmt: skip

    torch.testing.assert_close(state(slice(0, 31)) + state(slice(31, 90)), state(slice(0, 90)),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_sketch_needs_the_slot_memory():
    with pytest.raises(ValueError, match="sketch_heads needs mode: memory"):
        SummarizerConfig(sketch_heads=1, n_heads=2)
    with pytest.raises(ValueError, match=r"sketch_heads \(2\) must be < n_heads \(2\)"):
        memory(sketch_heads=2)
    with pytest.raises(ValueError, match="sketch_heads needs slot_match"):
        memory(sketch_heads=1, slot_match=False)


def repeat_label(model, n_users: int, seed: int) -> pd.DataFrame:
    """Each user consumed 40 random items of 3,000; half the candidates are among them
    (clicked with p 0.9), half are not (p 0.1): the label is a repeat, which no category
    or topic can tell (there is one category)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        history = rng.choice(np.arange(1, 3000), 40, replace=False)
        n = len(history)
        batch = encode_histories([history], [np.zeros(n, np.int64)], [np.zeros(n, np.int64)],
                                 0, model.cfg)  # fmt: skip
        with torch.no_grad():
            summary = model(batch)[0].reshape(-1).numpy()
        unseen = np.setdiff1d(np.arange(1, 3000), history)
        for seen in (True, False) * 8:
            item = int(rng.choice(history if seen else unseen))
            rows.append({"user_id": user, "item_id": item, "category": 0,
                         "label": int(rng.random() < (0.9 if seen else 0.1)),
                         "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
                         "summary": summary})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.integration
@pytest.mark.parametrize("sketch_heads", [0, 1])
def test_a_ranker_reading_the_sketch_knows_which_items_the_user_consumed(sketch_heads):
    """Summaries alone, from a summarizer never trained: with a sketch head the ranker
    tells a repeat from a new item (AUC near the label's ceiling, 0.86); without it, the
    learned slots of an untrained memory carry little of which items they hold (0.51
    when written)."""
    torch.manual_seed(0)
    model = build_summarizer(memory(sketch_heads=sketch_heads, magnitude="log")).eval()
    train, test = repeat_label(model, 200, seed=0), repeat_label(model, 80, seed=1)
    spec = RankerSpec("vista", SummaryShape(64, 32, 2, sketch_heads), VOCAB, 16, pooling="slot",
                      slot_match=True)  # fmt: skip
    cfg = RankerConfig(epochs=12, patience=3, batch_size=256, lr=0.01, dim=32)
    ranker, _ = train_ranker(train, cfg, spec, progress=False, summarizer=model)
    auc = roc_auc_score(test.label, score(ranker, test))
    if sketch_heads:
        assert auc > 0.8, auc
        # the serving path reads the same sketch
        user = test[test.user_id == 0]
        items = torch.from_numpy(item_index(user.item_id.to_numpy(), VOCAB))
        served = score_one_user(ranker, (items, torch.ones_like(items)),
                                torch.from_numpy(user.summary.iloc[0])[None],
                                torch.zeros((1, 0), dtype=torch.long),
                                torch.zeros((1, 0), dtype=torch.long))  # fmt: skip
        np.testing.assert_allclose(torch.sigmoid(served).numpy(), score(ranker, user), atol=1e-5)
    else:
        assert auc < 0.65, auc


def test_the_ranker_builds_the_summarizers_tables():
    shape = SummaryShape(64, 32, 2, 1)
    ranker = Ranker(RankerSpec("vista", shape, VOCAB, 16, pooling="slot", slot_match=True),
                    RankerConfig(dim=32))  # fmt: skip
    model = build_summarizer(memory(sketch_heads=1))
    torch.testing.assert_close(ranker.sketch_slots, model.sketch_slots)
    torch.testing.assert_close(ranker.sketch_signatures, model.sketch_signatures)
