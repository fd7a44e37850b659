import numpy as np
import pyarrow as pa
import pytest

from models.train_summarizer import train_summarizer
from sources.synthetic import generate
from vista.core.config import GeneratorConfig, SummarizerConfig


def _histories_and_impressions(gen: GeneratorConfig):
    """Synthetic histories (as the histories table holds them) and impressions."""
    blocks = list(generate(gen))
    events = pa.concat_tables(b[0] for b in blocks).to_pandas()
    imps = pa.concat_tables(b[1] for b in blocks).to_pandas()
    events["ts"] = events.event_timestamp.astype("int64") // 1000
    hist = events.groupby("user_id").agg(
        item_ids=("item_id", list), categories=("category", list), event_timestamps=("ts", list)
    ).reset_index()  # fmt: skip
    return hist, imps, int(gen.cutoff.timestamp() * 1e6)


@pytest.mark.integration
def test_source_model_learns_and_keeps_the_best_validated_weights():
    gen = GeneratorConfig(n_users=800, n_items=100, n_clusters=8, min_history=30,
                          max_history=400, history_days=30, impressions_per_user=16)  # fmt: skip
    hist, imps, as_of = _histories_and_impressions(gen)
    cfg = SummarizerConfig(n_seeds=4, dim=16, n_layers=1, n_heads=2, vocab_size=128,
                           category_vocab_size=16, train_steps=120, train_users_per_step=32,
                           eval_every=40, lr=0.01)  # fmt: skip
    model, curve = train_summarizer(hist, imps, as_of, cfg, progress=False)
    p = imps.label.mean()
    constant = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    assert curve.validation_step == [40, 80, 120]
    assert min(curve.validation_loss) < constant - 0.02  # beats predicting the base rate
    assert curve.best_step == curve.validation_step[int(np.argmin(curve.validation_loss))]
    assert not any(p.requires_grad for p in model.parameters())


def _small_data():
    gen = GeneratorConfig(n_users=200, n_items=60, n_clusters=6, min_history=10,
                          max_history=120, history_days=20, impressions_per_user=8)  # fmt: skip
    return _histories_and_impressions(gen)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    import pytest

    from models.summarizer import CheckpointMismatchError

    hist, imps, as_of = _small_data()
    cfg = SummarizerConfig(n_seeds=2, dim=8, n_layers=1, n_heads=2, vocab_size=64,
                           category_vocab_size=8, train_steps=24, train_users_per_step=8,
                           eval_every=8, checkpoint_every=5, recon_weight=1.0,
                           recon_window=16)  # fmt: skip
    straight, straight_curve = train_summarizer(hist, imps, as_of, cfg, progress=False)
    ckpt = tmp_path / "train.pt"
    train_summarizer(hist, imps, as_of, cfg, progress=False, checkpoint=ckpt, stop_after=13)
    resumed, resumed_curve = train_summarizer(hist, imps, as_of, cfg, progress=False,
                                              checkpoint=ckpt)  # fmt: skip
    assert resumed.version() == straight.version()
    assert resumed_curve.train_loss == straight_curve.train_loss
    other = cfg.model_copy(update={"lr": 0.5})
    with pytest.raises(CheckpointMismatchError, match=r"lr: config 0\.5"):
        train_summarizer(hist, imps, as_of, other, progress=False, checkpoint=ckpt)
