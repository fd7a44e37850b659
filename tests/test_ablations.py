"""Ablation arms run in their own state, read the main lake, and leave it untouched."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.evaluation import verdict
from vista import ablations, state
from vista.core import lake, names
from vista.evaluation import score_column


@pytest.mark.slow
def test_ablation_arms_are_isolated_and_differ_where_they_should(pipeline_run, tmp_path):
    cfg, as_of, _ = pipeline_run
    histories = cfg.paths.table(names.HISTORIES)
    before = (lake.table_version(histories), state.current_summarizer(cfg)["version"])
    arms = ablations.arms(cfg)
    recon = "recon_off" if cfg.summarizer.recon_weight else "recon_on"
    assert {"baseline", recon, "k_32", "k_64", "k_128", "stale_1d", "stale_3d"} <= set(arms)
    # the memory design's parts, each flipped (tiny has the default's memory design)
    train_long = f"train_{cfg.summarizer.train_max_events * 8 // 1024}k"
    parts = {"magnitude_rms", "slot_match_off", "sketch_off", train_long, "bidirectional"}
    assert parts == set(arms) - {
        "baseline",
        recon,
        "k_32",
        "k_64",
        "k_128",
        "stale_1d",
        "stale_3d",
    }
    assert arms["slot_match_off"]["summarizer"] == {"slot_match": False, "sketch_heads": 0}
    assert arms["bidirectional"]["summarizer"]["mode"] == "bidirectional"
    result = ablations.run_ablations(cfg, as_of, only=["baseline", recon, "stale_1d"],
                                     progress=False)  # fmt: skip
    got = result["arms"]
    assert list(got) == ["baseline", recon, "stale_1d"]
    # the recon arm trains another summarizer; the stale arm reuses the baseline's
    assert got[recon]["summarizer_version"] != got["baseline"]["summarizer_version"]
    assert got["stale_1d"]["summarizer_version"] == got["baseline"]["summarizer_version"]
    assert got["stale_1d"]["snapshot"] < got["baseline"]["snapshot"] == str(as_of.date())
    # every arm scored the same impressions; its AUC is its persisted scores' AUC against
    # the lake's labels, and its interval holds it
    predictions = result["predictions"]
    _, eval_days = state.impression_windows(cfg, as_of)
    truth = state.read_impressions(cfg, eval_days).set_index("impression_id")["label"]
    assert sorted(predictions["impression_id"]) == sorted(truth.index)
    labels = truth.loc[predictions["impression_id"]].to_numpy()
    compared = result["intervals"]["buckets"]["all"]
    for name, arm in got.items():
        seeds = [roc_auc_score(labels, predictions[score_column(name, r["seed"])])
                 for r in arm["runs"]]  # fmt: skip
        assert arm["summary"]["all"]["auc"]["mean"] == pytest.approx(np.mean(seeds), abs=1e-12)
        assert arm["summary"]["all"]["auc"]["n"] == cfg.ranker.seeds
        cell = compared["auc"][name]
        assert cell["estimate"] == pytest.approx(np.mean(seeds))
        assert cell["low"] <= cell["estimate"] <= cell["high"]
    # the main pipeline's lake and summarizer are as they were
    after = (lake.table_version(histories), state.current_summarizer(cfg)["version"])
    assert after == before
    text = ablations.render_ablations(result)
    flipped = 0.0 if cfg.summarizer.recon_weight else 1.0
    assert f"| {recon} | recon_weight={flipped} |" in text
    # each arm against the baseline: the rendered verdict is its interval's
    for name in (recon, "stale_1d"):
        gap = compared["difference"][name]["baseline"]
        start = f"| {name} | {gap['estimate']:+.4f}"
        row = next(line for line in text.splitlines() if line.startswith(start))
        assert row.split(" | ")[1].endswith(verdict(gap["low"], gap["high"]))
    files = ablations.write_ablations(tmp_path, result)
    assert pd.read_parquet(files["predictions"]).equals(predictions)
    assert "predictions" not in json.loads((tmp_path / "ablations.json").read_text())


def test_arms_are_matched_on_impressions_and_rendered_against_the_baseline():
    from vista.core.config import EvaluationConfig
    from vista.evaluation import intervals, predictions_frame

    rng = np.random.default_rng(0)
    n_users, per = 200, 8
    test = pd.DataFrame({"impression_id": np.arange(n_users * per),
                         "user_id": np.repeat(np.arange(n_users), per)})  # fmt: skip
    test["label"] = rng.integers(0, 2, len(test))
    lengths = np.repeat(rng.choice([50, 500], n_users), per)
    good = {s: test["label"] + rng.normal(0, 1, len(test)) for s in (0, 1)}
    noise = {s: rng.random(len(test)) for s in (0, 1)}
    shuffled = test.sample(frac=1, random_state=1)  # another arm's rows in another order
    frames = {
        "baseline": predictions_frame(test, lengths, {"arm": good}),
        "stale_1d": predictions_frame(shuffled, lengths[shuffled.index],
                                      {"arm": {s: v[shuffled.index] for s, v in noise.items()}}),
    }  # fmt: skip
    merged = ablations.arm_predictions(frames)
    assert merged["impression_id"].tolist() == test["impression_id"].tolist()
    np.testing.assert_array_equal(merged[score_column("stale_1d", 0)], noise[0])
    result = {"as_of": "2026-08-01", "seeds": 2, "predictions": merged,
              "intervals": intervals(merged, EvaluationConfig(resamples=200)),
              "arms": {name: {"summarizer": {}, "snapshot": "2026-08-01", "summary": {}}
                       for name in frames}}  # fmt: skip
    gap = result["intervals"]["buckets"]["all"]["difference"]["stale_1d"]["baseline"]
    assert verdict(gap["low"], gap["high"]) == "trails"
    text = ablations.render_ablations(result)
    assert f"| stale_1d | {gap['estimate']:+.4f} [{gap['low']:+.4f}, " in text
    assert "| stale_1d | " in text.split("## Each arm minus the baseline")[1]
    with pytest.raises(ValueError, match="different impressions"):
        ablations.arm_predictions({**frames, "k_32": frames["baseline"].iloc[:-8]})
