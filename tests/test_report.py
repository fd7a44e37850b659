"""The evaluation on the pipeline's Feast data: every variant, seeds, buckets, report."""

import json
import math
from pathlib import Path

from vista import pipeline


def test_report_compares_every_variant_on_the_feast_evaluation_set(pipeline_run):
    cfg, as_of, _ = pipeline_run
    result = pipeline.evaluate_and_report(cfg, as_of, progress=False)
    files = result["files"]
    evaluation = json.loads(Path(files["evaluation"]).read_text())
    assert set(evaluation["variants"]) == {"vista", "din_last100", "sim_category",
                                           "full_attention"}  # fmt: skip
    for name, v in evaluation["variants"].items():
        assert len(v["runs"]) == cfg.ranker.seeds == 2
        assert [r["seed"] for r in v["runs"]] == [0, 1]
        overall = v["summary"]["all"]
        assert 0 < overall["auc"]["mean"] < 1, name
        assert overall["auc"]["n"] == 2
        assert overall["rows"]["mean"] == evaluation["eval_rows"]
        assert math.isfinite(overall["ne"]["mean"])
        # each bucket's rows add up to the whole window
        buckets = [b for b in v["summary"] if b != "all"]
        assert sum(v["summary"][b]["rows"]["mean"] for b in buckets) == evaluation["eval_rows"]
        assert [c["history_length"] for c in v["scoring_cost"]] == [100, 1000, 10000]
        assert v["seconds_per_epoch"] > 0
    assert evaluation["oracle"]["all"]["auc"] > 0.7
    report = Path(files["report"]).read_text()
    assert "| DIN, last 100 items |" in report
    assert "## What the figures say" in report
    assert "DIN-last-100" in report
    for plot in ("auc_by_bucket", "scoring_cost", "training_curves"):
        with open(files[plot], "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(result["auc_by_bucket"]) == {*evaluation["variants"], "oracle"}
