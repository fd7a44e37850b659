"""Ablation arms run in their own state, read the main lake, and leave it untouched."""

import pytest

from spark_jobs import lake
from vista import ablations, pipeline


@pytest.mark.slow
def test_ablation_arms_are_isolated_and_differ_where_they_should(pipeline_run):
    cfg, as_of, _ = pipeline_run
    histories = cfg.paths.table(pipeline.HISTORIES)
    before = (lake.table_version(histories), pipeline.current_summarizer(cfg)["version"])
    arms = ablations.arms(cfg)
    recon = "recon_off" if cfg.summarizer.recon_weight else "recon_on"
    assert {"baseline", recon, "k_32", "k_64", "k_128", "stale_1d", "stale_3d"} == set(arms)
    result = ablations.run_ablations(cfg, as_of, only=["baseline", recon, "stale_1d"],
                                     progress=False)  # fmt: skip
    got = result["arms"]
    assert list(got) == ["baseline", recon, "stale_1d"]
    # the recon arm trains another summarizer; the stale arm reuses the baseline's
    assert got[recon]["summarizer_version"] != got["baseline"]["summarizer_version"]
    assert got["stale_1d"]["summarizer_version"] == got["baseline"]["summarizer_version"]
    assert got["stale_1d"]["snapshot"] < got["baseline"]["snapshot"] == str(as_of.date())
    for arm in got.values():
        assert 0 < arm["summary"]["all"]["auc"]["mean"] < 1
        assert arm["summary"]["all"]["auc"]["n"] == cfg.ranker.seeds
    # the main pipeline's lake and summarizer are as they were
    after = (lake.table_version(histories), pipeline.current_summarizer(cfg)["version"])
    assert after == before
    text = ablations.render_ablations(result)
    flipped = 0.0 if cfg.summarizer.recon_weight else 1.0
    assert f"| {recon} | recon_weight={flipped} |" in text
