"""The evaluation on the pipeline's Feast data: every variant, seeds, buckets, report;
and the report's intervals, verdicts and headroom tables on predictions made by hand."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.evaluation import metrics_by_bucket, verdict
from vista import pipeline, state
from vista.core.config import EvaluationConfig
from vista.evaluation import (
    WORLD,
    aggregate_runs,
    intervals,
    model_scores,
    predictions_frame,
    score_column,
)
from vista.report import LABELS, render_markdown, write_report


def _table(report: str, heading: str) -> dict[str, dict[str, str]]:
    """row label -> column -> cell of the markdown table under ``heading``."""
    block = report.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [r for r in block.splitlines() if r.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return {cells[0]: dict(zip(header[1:], cells[1:], strict=True))
            for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows[2:])}  # fmt: skip


def _verdicts_agree(report: str, evaluation: dict, reference: str = "vista") -> int:
    """Every verdict in the differences table is the one its interval gives; returns
    how many cells were checked."""
    table = _table(report, "minus each model: AUC difference")
    checked = 0
    for other in evaluation["variants"]:
        if other == reference:
            continue
        for bucket, text in table[LABELS.get(other, other)].items():
            gap = evaluation["intervals"]["buckets"][bucket]["difference"][reference][other]
            assert text.endswith(verdict(gap["low"], gap["high"])), (other, bucket, text)
            checked += 1
    return checked


def test_report_compares_every_variant_on_the_feast_evaluation_set(pipeline_run):
    cfg, as_of, _ = pipeline_run
    result = pipeline.evaluate_and_report(cfg, as_of, progress=False)
    files = result["files"]
    evaluation = json.loads(Path(files["evaluation"]).read_text())
    assert set(evaluation["variants"]) == {"blind", "vista", "din_last100", "sim_category",
                                           "full_attention"}  # fmt: skip
    # each variant kept the pooling with the lowest validation loss among its choices
    for v in evaluation["variants"].values():
        losses = v["validation_loss_by_pooling"]
        assert v["pooling"] == min(losses, key=losses.get)
    # the persisted predictions hold the evaluation window's impressions, one row each;
    # the labels checked against them come from the lake, not from the file
    predictions = pd.read_parquet(files["predictions"])
    _, eval_days = state.impression_windows(cfg, as_of)
    truth = state.read_impressions(cfg, eval_days).set_index("impression_id")["label"]
    assert sorted(predictions["impression_id"]) == sorted(truth.index)
    labels = truth.loc[predictions["impression_id"]].to_numpy()
    compared = evaluation["intervals"]["buckets"]
    for name, v in evaluation["variants"].items():
        assert len(v["runs"]) == cfg.ranker.seeds == 2
        assert [r["seed"] for r in v["runs"]] == [0, 1]
        overall = v["summary"]["all"]
        # the headline AUC is the mean over seeds of the persisted scores' AUC
        seeds = [roc_auc_score(labels, predictions[score_column(name, r["seed"])])
                 for r in v["runs"]]  # fmt: skip
        assert overall["auc"]["mean"] == pytest.approx(np.mean(seeds), abs=1e-12), name
        assert [r["metrics"]["all"]["auc"] for r in v["runs"]] == pytest.approx(seeds, abs=1e-12)
        assert overall["auc"]["n"] == 2
        assert overall["rows"]["mean"] == evaluation["eval_rows"]
        assert math.isfinite(overall["ne"]["mean"])
        # each bucket's rows add up to the whole window
        buckets = [b for b in v["summary"] if b != "all"]
        assert sum(v["summary"][b]["rows"]["mean"] for b in buckets) == evaluation["eval_rows"]
        for bucket in v["summary"]:
            cell = compared[bucket]["auc"][name]
            assert cell["estimate"] == pytest.approx(v["summary"][bucket]["auc"]["mean"])
            if compared[bucket]["resamples"]:
                assert cell["low"] <= cell["estimate"] <= cell["high"], (name, bucket)
        assert [c["history_length"] for c in v["scoring_cost"]] == [100, 1000, 10000]
        assert v["seconds_per_epoch"] > 0
    assert compared["all"]["users"] >= cfg.evaluation.min_users
    assert compared["all"]["valid_resamples"] == cfg.evaluation.resamples
    assert evaluation["oracle"]["all"]["auc"] > 0.7
    # the oracle beats every ranker by its interval on all users (it knows the truth)
    for name in evaluation["variants"]:
        gap = compared["all"]["difference"]["oracle_prob"][name]
        assert verdict(gap["low"], gap["high"]) == "beats", (name, gap)
    # every interval is recomputed, to the bit, from the persisted predictions alone
    stored = {k: v for k, v in evaluation["intervals"].items() if k != "seconds"}
    assert json.dumps(intervals(predictions, cfg.evaluation), default=float) == json.dumps(stored)
    report = Path(files["report"]).read_text()
    assert "| DIN, last 100 items |" in report
    assert "## What the figures say" in report
    others = len(evaluation["variants"]) - 1
    assert _verdicts_agree(report, evaluation) == others * len(compared)
    gap = compared["all"]["difference"]["vista"]["din_last100"]
    word = verdict(gap["low"], gap["high"])
    sentence = next(line for line in report.splitlines() if "On all users, VISTA" in line
                    and "DIN-last-100" in line)  # fmt: skip
    assert {
        "beats": " beats ",
        "trails": " trails ",
        "no significant difference": " shows no significant difference from ",
    }[word] in sentence
    for plot in ("auc_by_bucket", "scoring_cost", "training_curves"):
        with open(files[plot], "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(result["auc_by_bucket"]) == {*evaluation["variants"], "oracle"}


def test_feast_join_keeps_the_impressions_extra_columns(pipeline_run):
    """The oracle columns the generator adds to impressions reach the evaluation frame:
    the point-in-time join keeps every entity-frame column, row for row."""
    from vista import features, state

    cfg, as_of, _ = pipeline_run
    _, eval_days = state.impression_windows(cfg, as_of)
    entity_df = state.read_impressions(cfg, eval_days).drop(columns=["impression_date"])
    extra = {c: np.linspace(0, 1, len(entity_df)) for c in WORLD if c != "oracle_prob"}
    entity_df = entity_df.assign(**extra)
    got = features.training_frame(features.feature_store(cfg), entity_df,
                                  features.EVALUATION_SERVICE)  # fmt: skip
    want = entity_df.set_index("impression_id")
    got = got.set_index("impression_id").loc[want.index]
    for column in WORLD:
        np.testing.assert_array_equal(got[column].to_numpy(float), want[column].to_numpy(float))


def _world(n_users: int = 400, per_user: int = 10, seed: int = 0):
    """Hand-made predictions: the oracle sees more of a long history; VISTA is a noisy
    oracle, DIN a noisy oracle of the last 100 events, blind (nearly) the oracle that
    reads nothing, which on cold start is the whole oracle: no headroom there."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    lengths = np.repeat(rng.choice([0, 50, 500, 5000], n_users, p=[0.1, 0.3, 0.3, 0.3]),
                        per_user)  # fmt: skip
    depth = np.log1p(lengths) / np.log1p(5000)
    base, signal = rng.normal(0, 1, len(users)), rng.normal(0, 1, len(users))

    def prob(read: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(base + 2 * signal * read)))

    test = pd.DataFrame({"impression_id": np.arange(len(users)), "user_id": users,
                         "oracle_prob_blind": prob(0 * depth),
                         "oracle_prob_last100": prob(np.minimum(depth, 0.3)),
                         "oracle_prob_last2048": prob(np.minimum(depth, 0.8)),
                         "oracle_prob": prob(depth)})  # fmt: skip
    test["label"] = (rng.random(len(users)) < test["oracle_prob"]).astype(int)
    truth = test["oracle_prob"].to_numpy()
    scores = {"vista": {s: truth + rng.normal(0, 0.15, len(users)) for s in (0, 1)},
              "din_last100": {s: test["oracle_prob_last100"].to_numpy()
                              + rng.normal(0, 0.15, len(users)) for s in (0, 1)},
              "blind": {s: test["oracle_prob_blind"].to_numpy()
                        + rng.normal(0, 0.001, len(users)) for s in (0, 1)}}  # fmt: skip
    return predictions_frame(test, lengths, scores)


def _evaluation(predictions: pd.DataFrame, settings: EvaluationConfig) -> dict:
    """The evaluation dict vista.evaluation would build, from predictions alone."""
    labels, users = predictions["label"].to_numpy(), predictions["user_id"].to_numpy()
    lengths = predictions["history_length"].to_numpy()
    variants = {}
    for name, seeds in model_scores(predictions).items():
        runs = [{"seed": k, "curve": {"validation_loss": [0.7, 0.6]},
                 "metrics": metrics_by_bucket(labels, s, users, lengths)}
                for k, s in enumerate(seeds)]  # fmt: skip
        variants[name] = {"runs": runs, "summary": aggregate_runs(runs), "seconds_per_epoch": 1.0,
                          "scoring_cost": [{"history_length": 100, "seconds": 0.01},
                                           {"history_length": 1000, "seconds": 0.01}]}  # fmt: skip
    out = {"as_of": "2026-08-01", "train_rows": 0, "eval_rows": len(predictions), "seeds": 2,
           "summary_shape": [4, 16], "variants": variants,
           "intervals": intervals(predictions, settings)}  # fmt: skip
    if "oracle_prob" in predictions:
        oracle = predictions["oracle_prob"].to_numpy()
        out["oracle"] = metrics_by_bucket(labels, oracle, users, lengths)
    return out


def test_report_renders_verdicts_headroom_and_the_worlds_headroom(tmp_path):
    predictions = _world()
    settings = EvaluationConfig(resamples=300, min_users=30)
    evaluation = _evaluation(predictions, settings)
    compared = evaluation["intervals"]["buckets"]
    labels = predictions["label"].to_numpy()
    # headroom captured: (AUC - blind) / (oracle - blind) from the persisted scores
    auc = {m: np.mean([roc_auc_score(labels, s) for s in seeds])
           for m, seeds in model_scores(predictions).items()}  # fmt: skip
    oracle = roc_auc_score(labels, predictions["oracle_prob"])
    want = (auc["vista"] - auc["blind"]) / (oracle - auc["blind"])
    assert compared["all"]["headroom"]["vista"]["estimate"] == pytest.approx(want)
    assert set(compared["all"]["headroom"]) == {"vista", "din_last100"}
    # the world: the share of the oracle's lift beyond its last 2,048 events
    whole, last, blind = (roc_auc_score(labels, predictions[c])
                          for c in ("oracle_prob", "oracle_prob_last2048", "oracle_prob_blind"))  # fmt: skip
    beyond = compared["all"]["beyond_last2048"]
    assert beyond["estimate"] == pytest.approx((whole - last) / (whole - blind))
    assert beyond["low"] <= beyond["estimate"] <= beyond["high"]
    # VISTA (a noisy oracle) beats the blind ranker on the longest histories
    gap = compared["1k-10k"]["difference"]["vista"]["blind"]
    assert verdict(gap["low"], gap["high"]) == "beats"

    files = write_report(tmp_path, {**evaluation, "predictions": predictions}, "hand-made")
    report = Path(files["report"]).read_text()
    assert _verdicts_agree(report, evaluation) == 2 * len(compared)
    assert "0 (cold start)" in _table(report, "## Rows and users per bucket")["users"]
    headroom = _table(report, "## Headroom captured")
    assert headroom[LABELS["vista"]]["all"].startswith(f"{want:.0%} [")
    # no history, nothing to gain: cold start has no headroom to share out
    assert headroom[LABELS["vista"]]["0 (cold start)"] == "no headroom"
    world = _table(report, "## The world's headroom")
    assert world["share of the lift beyond the last 2,048"]["0 (cold start)"] == "no lift"
    assert world["from the last 2,048 events"]["all"].startswith(f"{last:.4f} [")
    sentences = [line for line in report.splitlines() if line.startswith("- ")]
    assert any("On histories 1k-10k, VISTA beats the history-blind ranker" in s for s in sentences)
    assert any(s.startswith("- VISTA captures ") for s in sentences)
    assert any("lies beyond the last 2,048 events on all users" in s for s in sentences)
    assert pd.read_parquet(files["predictions"]).equals(predictions)
    assert "predictions" not in json.loads(Path(files["evaluation"]).read_text())


def test_real_data_without_an_oracle_has_no_headroom_sections():
    # real data: the loaders write a NaN oracle, the generator's extra columns are absent
    predictions = _world().drop(columns=list(WORLD)).assign(oracle_prob=np.nan)
    settings = EvaluationConfig(resamples=200)
    evaluation = _evaluation(predictions.drop(columns=["oracle_prob"]), settings)
    evaluation["intervals"] = intervals(predictions, settings)
    compared = evaluation["intervals"]["buckets"]["all"]
    assert "oracle_prob" not in compared["auc"]
    assert compared["headroom"] == {}
    assert "beyond_last2048" not in compared
    report = render_markdown(evaluation, {"auc_by_bucket": "a", "scoring_cost": "b",
                                          "training_curves": "c"}, "real")  # fmt: skip
    assert "## Headroom captured" not in report
    assert "## The world's headroom" not in report
    assert "| VISTA minus |" in report
    assert re.search(r"\| DIN, last 100 items \| [+-]\d\.\d{4} \[", report)


def test_targets_are_reported_met_or_missed_by_their_intervals():
    """A profile's targets (evaluation.targets) come back met, met by the estimate only
    or missed, from the same paired bootstrap as every other figure."""
    from vista.core.config import TargetConfig
    from vista.report import target_checks

    predictions = _world()
    targets = [
        TargetConfig(versus="blind", buckets=["1k-10k"], margin=0.0),  # a lift it has
        TargetConfig(versus="blind", buckets=["1k-10k"], margin=0.9),  # one it has not
        TargetConfig(versus="best_raw", buckets=["all"], margin=-1.0),
        TargetConfig(versus="headroom", buckets=["all"], margin=0.0),
        TargetConfig(versus="full_attention", buckets=["all"]),  # not in this evaluation
    ]
    settings = EvaluationConfig(resamples=300, min_users=30, targets=targets)
    evaluation = _evaluation(predictions, settings)
    checks = target_checks(evaluation["intervals"]["buckets"],
                           evaluation["intervals"]["targets"])  # fmt: skip
    assert [c["status"] for c in checks] == ["met", "missed", "met", "met", "not measured"]
    assert checks[2]["against"] == "din_last100"  # the only raw-history ranker here
    gap = evaluation["intervals"]["buckets"]["1k-10k"]["difference"]["vista"]["blind"]
    assert checks[0]["figure"] == gap
    report = render_markdown(evaluation, {"auc_by_bucket": "a", "scoring_cost": "b",
                                          "training_curves": "c"}, "targets")  # fmt: skip
    table = _table(report, "## Targets")
    assert "3 of 5 met" in report
    assert list(table)[1] == "VISTA minus the history-blind ranker >= +0.900 AUC"
    with pytest.raises(ValueError, match="versus"):
        TargetConfig(versus="oracle")
