import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.ranker import SummaryShape, TrainingSetError, check_training_set, score, train_ranker
from vista import pipeline
from vista.config import RankerConfig

SHAPE = SummaryShape(n_tokens=4, token_dim=8)


def planted(n=4000, seed=0):
    """Label depends on whether the candidate's category is written in the user's tokens."""
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, 8, n)
    liked = rng.integers(0, 8, n)
    summaries = rng.normal(0, 0.1, (n, 4, 8)).astype(np.float32)
    summaries[np.arange(n), 0, liked] += 1.0
    prob = np.where(cats == liked, 0.8, 0.15)
    return pd.DataFrame({
        "user_id": np.arange(n), "item_id": rng.integers(0, 50, n), "category": cats,
        "label": (rng.random(n) < prob).astype(int), "true_prob": prob,
        "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
        "summary": list(summaries.reshape(n, -1)),
    })  # fmt: skip


def test_ranker_learns_to_read_the_summary_tokens():
    train, test = planted(seed=0), planted(seed=1)
    cfg = RankerConfig(epochs=12, patience=3, batch_size=256, lr=0.01, dim=16)
    model, curve = train_ranker(train, cfg, SHAPE, 64, 16, progress=False)
    assert curve.train_loss[-1] < curve.train_loss[0]
    assert min(curve.validation_loss) == curve.validation_loss[curve.best_epoch]
    ceiling = roc_auc_score(test.label, test.true_prob)
    assert roc_auc_score(test.label, score(model, test)) > ceiling - 0.05
    # the signal is in the tokens: other users' summaries score no better than chance
    scrambled = test.assign(summary=test.summary.sample(frac=1, random_state=0).to_numpy())
    assert roc_auc_score(scrambled.label, score(model, scrambled)) < 0.56


def test_training_set_errors_name_column_and_row_count():
    df = planted(100)
    with pytest.raises(TrainingSetError, match=r"misses column\(s\) \['category'\]"):
        check_training_set(df.drop(columns=["category"]), SHAPE)
    bad_label = df.copy()
    bad_label.loc[:2, "label"] = 2
    with pytest.raises(TrainingSetError, match=r"'label': 3 row\(s\) outside"):
        check_training_set(bad_label, SHAPE)
    short = df.copy()
    short.at[5, "summary"] = np.zeros(7, np.float32)
    with pytest.raises(TrainingSetError, match=r"'summary': 1 row\(s\) .* 4 x 8 = 32"):
        check_training_set(short, SHAPE)
    undecoded = df.copy()
    undecoded.at[3, "summary"] = np.full(32, np.nan, np.float32)
    undecoded.at[4, "summary"] = None  # no summary yet: allowed
    with pytest.raises(TrainingSetError, match=r"'summary': 1 row\(s\) with NaN or infinite"):
        check_training_set(undecoded, SHAPE)


def test_ranker_step_trains_on_feast_training_set(pipeline_run):
    cfg, as_of, _ = pipeline_run
    result = pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)
    assert result["summary_coverage"] == 1.0
    assert result["train_rows"] > 0
    assert result["eval_rows"] > 0
    assert result["train_days"][-1] < result["eval_days"][0]  # evaluated on a later window
    ranker, oracle = result["metrics"]["ranker_v1"], result["metrics"]["oracle"]
    assert 0.0 < ranker["auc"] < 1.0
    assert oracle["auc"] > 0.7  # the generator's signal is there to be found
    assert ranker["log_loss"] > 0
