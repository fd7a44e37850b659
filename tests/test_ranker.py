import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.ranker import (
    RankerSpec,
    SummaryShape,
    TrainingSetError,
    check_training_set,
    score,
    train_ranker,
)
from models.scoring_cost import scoring_cost
from vista import pipeline
from vista.core.config import RankerConfig

from .conftest import served_ranker_auc

SHAPE = SummaryShape(n_tokens=4, token_dim=8)
N_CATS = 8


def spec(variant, **kw):
    return RankerSpec(variant, SHAPE, vocab_size=128, category_vocab_size=16, **kw)


def planted(n_users=300, per_user=24, seed=0):
    """Each user engaged with a dormant category A (their 200 oldest events) and a recent
    category B (their last 100); a candidate is clicked with p 0.8 if its category is A or
    B, else 0.1. Only a model that sees beyond the last 100 events can recognise A."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        a, b = rng.choice(N_CATS, 2, replace=False)
        tail_cats = np.r_[np.full(200, a), np.full(100, b)]
        tail_items = tail_cats * 10 + rng.integers(0, 10, 300)
        tokens = rng.normal(0, 0.1, (4, 8)).astype(np.float32)
        tokens[0, [a, b]] += 1.0
        for _ in range(per_user):
            cat = int(rng.integers(0, N_CATS))
            prob = 0.8 if cat in (a, b) else 0.1
            mine = tail_items[tail_cats == cat][::-1][:100]
            rows.append({
                "user_id": user, "item_id": cat * 10 + int(rng.integers(0, 10)), "category": cat,
                "label": int(rng.random() < prob), "true_prob": prob, "dormant": cat == a,
                "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
                "summary": tokens.reshape(-1), "tail_item_ids": tail_items,
                "tail_categories": tail_cats, "category_item_ids": mine,
                "raw_history_length": 300,
            })  # fmt: skip
    return pd.DataFrame(rows)


CFG = RankerConfig(epochs=10, patience=3, batch_size=256, lr=0.01, dim=16)


@pytest.fixture(scope="module")
def planted_data():
    return planted(seed=0), planted(seed=1)


@pytest.mark.integration
def test_vista_ranker_learns_to_read_the_summary_tokens(planted_data):
    train, test = planted_data
    model, curve = train_ranker(train, CFG, spec("vista"), progress=False)
    assert curve.train_loss[-1] < curve.train_loss[0]
    assert min(curve.validation_loss) == curve.validation_loss[curve.best_epoch]
    assert len(curve.epoch_seconds) == len(curve.train_loss)
    ceiling = roc_auc_score(test.label, test.true_prob)
    assert roc_auc_score(test.label, score(model, test)) > ceiling - 0.05
    # the signal is in the tokens: other users' summaries score no better than chance
    scrambled = test.assign(summary=test.summary.sample(frac=1, random_state=0).to_numpy())
    assert roc_auc_score(scrambled.label, score(model, scrambled)) < 0.6


@pytest.mark.integration
def test_only_rankers_that_see_old_events_recognise_a_dormant_interest(planted_data):
    """DIN reads the last 100 events and misses category A; SIM's category search and
    full attention over the 300 events find it."""
    train, test = planted_data
    ceiling = roc_auc_score(test.label, test.true_prob)
    auc = {}
    for variant in ("din_last100", "sim_category", "full_attention"):
        model, _ = train_ranker(train, CFG, spec(variant), progress=False)
        auc[variant] = roc_auc_score(test.label, score(model, test))
    assert auc["sim_category"] > ceiling - 0.05
    assert auc["full_attention"] > ceiling - 0.06
    assert auc["din_last100"] < min(auc["sim_category"], auc["full_attention"]) - 0.05


def test_training_set_errors_name_column_and_row_count():
    df = planted(n_users=10, per_user=10)
    with pytest.raises(TrainingSetError, match=r"misses column\(s\) \['category'\]"):
        check_training_set(df.drop(columns=["category"]), spec("vista"))
    with pytest.raises(TrainingSetError, match=r"misses column\(s\) \['tail_item_ids'\]"):
        check_training_set(df.drop(columns=["tail_item_ids"]), spec("din_last100"))
    check_training_set(df.drop(columns=["tail_item_ids"]), spec("vista"))  # vista needs none
    bad_label = df.copy()
    bad_label.loc[:2, "label"] = 2
    with pytest.raises(TrainingSetError, match=r"'label': 3 row\(s\) outside"):
        check_training_set(bad_label, spec("sim_category"))
    short = df.copy()
    short.at[5, "summary"] = np.zeros(7, np.float32)
    with pytest.raises(TrainingSetError, match=r"'summary': 1 row\(s\) .* 4 x 8 = 32"):
        check_training_set(short, spec("vista"))
    undecoded = df.copy()
    undecoded.at[3, "summary"] = np.full(32, np.nan, np.float32)
    undecoded.at[4, "summary"] = None  # no summary yet: allowed
    with pytest.raises(TrainingSetError, match=r"'summary': 1 row\(s\) with NaN or infinite"):
        check_training_set(undecoded, spec("vista"))
    ragged = df.copy()
    ragged.at[0, "tail_categories"] = np.zeros(3, np.int64)
    with pytest.raises(TrainingSetError, match=r"'tail_categories': 1 row\(s\) of different"):
        check_training_set(ragged, spec("full_attention"))
    with pytest.raises(ValueError, match="unknown ranker variant 'dnn'"):
        spec("dnn")


@pytest.mark.parametrize(
    ("variant", "extra"),
    [("vista", {}), ("vista", {"pooling": "sum", "recent_items": 50}), ("din_last100", {}),
     ("sim_category", {}), ("sim_category", {"pooling": "softmax_sum"}), ("full_attention", {}),
     ("full_attention", {"pooling": "sum"}), ("full_attention", {"pooling": "softmax_sum"}),
     ("blind", {})],
)  # fmt: skip
def test_serving_path_scores_one_users_candidates_like_the_batch_path(variant, extra):
    import torch

    from models.ranker import prepare, score_one_user

    train = planted(n_users=30, per_user=8)
    model, _ = train_ranker(train, CFG.model_copy(update={"epochs": 1}), spec(variant, **extra),
                            progress=False)  # fmt: skip
    rows = train[train.user_id == 3].reset_index(drop=True)
    want = score(model, rows)
    items, cats, summaries, seq_items, seq_cats, mask = prepare(rows, model.spec).batch(
        np.arange(len(rows))
    )
    shared = slice(None) if variant == "sim_category" else slice(0, 1)  # SIM: per candidate
    with torch.no_grad():
        got = score_one_user(model, (items, cats), summaries[:1], seq_items[shared],
                             seq_cats[shared], mask[shared])  # fmt: skip
    np.testing.assert_allclose(torch.sigmoid(got).numpy(), want, rtol=1e-5, atol=1e-6)


def test_serving_cost_reads_k_tokens_for_vista_and_n_events_for_full_attention():
    train = planted(n_users=20, per_user=5)
    lengths = (100, 1000, 5000)
    read = {}
    for variant in ("vista", "din_last100", "sim_category", "full_attention"):
        model, _ = train_ranker(train, CFG.model_copy(update={"epochs": 1}), spec(variant),
                                progress=False)  # fmt: skip
        rows = scoring_cost(model, lengths, n_candidates=50, repeats=1)
        assert [r["history_length"] for r in rows] == list(lengths)
        assert all(r["seconds"] > 0 for r in rows)
        read[variant] = [r["keys_per_candidate"] for r in rows]
        if variant == "sim_category":
            assert all(r["index_seconds"] is not None for r in rows)
    assert read["vista"] == [SHAPE.n_tokens] * 3
    assert read["din_last100"] == [100, 100, 100]
    assert read["full_attention"] == list(lengths)
    assert all(0 < k <= 100 for k in read["sim_category"])


def test_ranker_step_trains_on_feast_training_set(pipeline_run):
    cfg, as_of, _ = pipeline_run
    result = pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)
    assert result["summary_coverage"] == 1.0
    assert result["train_rows"] > 0
    assert result["eval_rows"] > 0
    assert result["train_days"][-1] < result["eval_days"][0]  # evaluated on a later window
    ranker, oracle = result["metrics"]["ranker_v1"], result["metrics"]["oracle"]
    # the saved artifact that serving loads scores the evaluation window to the same AUC,
    # and no ranker beats the generator's oracle (a label leak would)
    assert ranker["auc"] == pytest.approx(served_ranker_auc(cfg, as_of.date().isoformat()),
                                          abs=1e-9)  # fmt: skip
    assert ranker["auc"] < oracle["auc"]
    assert oracle["auc"] > 0.7  # the generator's signal is there to be found
    assert ranker["log_loss"] > 0


@pytest.mark.integration
def test_blind_ranker_reads_no_history(planted_data):
    """Another user's history changes nothing for the blind model (and everything for
    the others): it is the floor a history-reading model must clear."""
    train, test = planted_data
    model, _ = train_ranker(train, CFG, spec("blind"), progress=False)
    shuffled = test.assign(
        **{c: test[c].sample(frac=1, random_state=1).to_numpy()
           for c in ("summary", "tail_item_ids", "tail_categories", "category_item_ids")}
    )  # fmt: skip
    np.testing.assert_allclose(score(model, test), score(model, shuffled))
    vista, _ = train_ranker(train, CFG, spec("vista"), progress=False)
    blind_auc = roc_auc_score(test.label, score(model, test))
    assert roc_auc_score(test.label, score(vista, test)) > blind_auc + 0.1


def test_sum_pooling_reads_the_tokens_linearly():
    """Sum pooling is linear in the tokens: over memory-mode summaries (tokens = a linear
    read of the state) the candidate reads the state itself."""
    import torch

    from models.attention import TokenPooling

    torch.manual_seed(0)
    pool = TokenPooling(8, 4, "sum")
    cand, t1, t2 = torch.randn(2, 3, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(pool(cand, 2 * t1 - 3 * t2),
                                   2 * pool(cand, t1) - 3 * pool(cand, t2))  # fmt: skip
    with pytest.raises(ValueError, match="unknown pooling 'mean'"):
        spec("vista", pooling="mean")
    with pytest.raises(ValueError, match="not din"):
        spec("vista", pooling="din")
    with pytest.raises(ValueError, match="not softmax_sum"):
        spec("vista", pooling="softmax_sum")


def test_softmax_sum_pooling_keeps_a_short_historys_composition_and_a_long_ones_counts():
    """A raw-history baseline reads users with 20 and with 16,384 events: the softmax read
    of 3 keys is as large as any softmax read, where the sum read (scaled for 16,384 keys)
    is all but zero; the same keys twice leave the softmax read unchanged and double
    the sum read, so the mixed context tells them apart."""
    import torch

    from models.ranker.modules import SoftmaxSumPooling

    torch.manual_seed(0)
    pool = SoftmaxSumPooling(8, max_len=16384)
    cand, keys = torch.randn(1, 2, 8), torch.randn(1, 3, 8)
    twice = torch.cat([keys, keys], 1)
    mask3, mask6 = torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        soft, total = pool.softmax(cand, keys, mask3), pool.sum(cand, keys, mask3)
        assert soft.norm() > 20 * total.norm()
        torch.testing.assert_close(pool.softmax(cand, twice, mask6), soft)
        torch.testing.assert_close(pool.sum(cand, twice, mask6), 2 * total)
        assert not torch.allclose(pool(cand, twice, mask6), pool(cand, keys, mask3))


def test_rankers_start_from_the_summarizers_embeddings():
    import torch

    from models.ranker import Ranker
    from models.summarizer import build_summarizer
    from vista.core.config import SummarizerConfig

    summarizer = build_summarizer(SummarizerConfig(mode="memory", n_seeds=4, dim=16,
                                                   n_heads=2, vocab_size=128,
                                                   category_vocab_size=16))  # fmt: skip
    ranker = Ranker(RankerSpec("vista", SummaryShape(4, 16), 128, 16), CFG)
    assert ranker.init_from_summarizer(summarizer)
    torch.testing.assert_close(ranker.item_embedding.weight, summarizer.item_embedding.weight)
    torch.testing.assert_close(ranker.token_proj.weight, torch.eye(16))
    other = Ranker(spec("din_last100"), CFG.model_copy(update={"dim": 8}))
    assert not other.init_from_summarizer(summarizer)  # sizes differ: left as it was


def test_slot_ranker_starts_reading_where_the_summarizer_writes():
    """With address softmax, the ranker's slot read starts as the summarizer's own address
    of the candidate: the same logits, from the copied embeddings."""
    import torch

    from models.ranker import Ranker
    from models.summarizer import build_summarizer
    from vista.core.config import SummarizerConfig

    summarizer = build_summarizer(SummarizerConfig(
        mode="memory", address="softmax", head_pooling="slot", n_seeds=4, dim=16, n_heads=2,
        vocab_size=128, category_vocab_size=16))  # fmt: skip
    ranker = Ranker(RankerSpec("vista", SummaryShape(4, 16, 2), 128, 16, pooling="slot"), CFG)
    assert ranker.init_from_summarizer(summarizer)
    items, cats = torch.tensor([[3, 7, 9]]), torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        want = summarizer.address_logits(summarizer.embed_candidates(items, cats))
        got = ranker.token_pool.weights(ranker.embed(items, cats)).view(1, 3, 2, 4)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_slot_match_grows_with_how_often_the_candidate_was_consumed():
    """The slot match reads item-level memory: for a candidate the user consumed n times,
    <value(candidate), slot read> grows with n, and it is larger than for the same
    history without that item; the ranker starts from the summarizer's value map."""
    import torch

    from models.attention import TokenPooling, slot_match
    from models.ranker import Ranker
    from models.summarizer import build_summarizer, encode_histories
    from vista.core.config import SummarizerConfig

    torch.manual_seed(0)
    cfg = SummarizerConfig(mode="memory", address="softmax", head_pooling="slot",
                           slot_match=True, n_seeds=4, dim=16, n_heads=2, vocab_size=128,
                           category_vocab_size=16)  # fmt: skip
    summarizer = build_summarizer(cfg).eval()
    pool = TokenPooling(16, 4, "slot", 2)
    item, cat = 5, 3
    others = np.arange(20, 40)

    def match(history_items):
        n = len(history_items)
        batch = encode_histories([np.asarray(history_items)], [np.full(n, cat)],
                                 [np.zeros(n, np.int64)], 0, cfg)  # fmt: skip
        with torch.no_grad():
            tokens = summarizer(batch)
            cand = summarizer.embed_candidates(
                torch.tensor([[item + 1]]), torch.tensor([[cat + 1]])
            )
            context = pool(cand, tokens, slot_logits=summarizer.address_logits(cand))
            return slot_match(summarizer.value(cand), context, 2).sum().item()

    counts = [match(np.r_[others, np.full(n, item)]) for n in (1, 4, 16, 64)]
    assert all(a < b for a, b in itertools.pairwise(counts)), counts
    assert match(others) < counts[0]
    ranker = Ranker(RankerSpec("vista", SummaryShape(4, 16, 2), 128, 16, pooling="slot",
                               slot_match=True), CFG)  # fmt: skip
    assert ranker.match_heads == 2
    assert ranker.init_from_summarizer(summarizer)
    torch.testing.assert_close(ranker.match_value.weight, summarizer.value.weight)
    softmax = Ranker(RankerSpec("vista", SummaryShape(4, 16, 2), 128, 16, pooling="softmax",
                                slot_match=True), CFG)  # fmt: skip
    assert softmax.match_heads == 0  # the match reads slots: other poolings go without
    with pytest.raises(ValueError, match="slot_match needs mode: memory"):
        SummarizerConfig(slot_match=True)


@pytest.mark.parametrize("variant", ["vista", "full_attention", "sim_category", "blind"])
def test_rows_sharing_keys_are_scored_together_as_one_by_one(variant):
    """Candidates of one user share one embedding of their keys (grouped), with the same
    logits as scoring each row alone; rows group only when keys and summary are equal."""
    import torch

    from models.ranker import Ranker, key_groups, prepare, unique_sequences
    from models.ranker.training import _logits

    rows = planted(n_users=12, per_user=6)
    data = prepare(rows, spec(variant))
    model = Ranker(spec(variant), CFG).eval()
    with torch.no_grad():
        alone = torch.cat([model(*data.batch(np.array([i]))) for i in range(len(data))])
        grouped = _logits(model, data, np.arange(len(data)), batch_size=16)
    torch.testing.assert_close(grouped, alone, rtol=1e-4, atol=1e-5)
    if variant in ("vista", "full_attention"):  # one group per user: each has other keys
        assert (rows.groupby(data.groups).user_id.nunique() == 1).all()
        assert len(np.unique(data.groups)) == rows.user_id.nunique()
    rows = [np.array([1, 2, 3]), np.array([1, 2, 3]), np.array([3, 2, 1])]  # 2: reversed
    items, _, offsets, row_sequence = unique_sequences(rows, [np.zeros(3)] * 3)
    assert list(row_sequence) == [0, 0, 1]  # kept once per distinct sequence
    assert list(items) == [1, 2, 3, 3, 2, 1]
    assert list(offsets) == [0, 3, 6]
    summaries = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 1.0]], np.float32)
    groups = key_groups(np.zeros(3, np.int64), summaries)
    assert groups[0] == groups[2] != groups[1]
