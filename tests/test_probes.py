"""Linear probes on summaries (models/probes.py, vista/probing.py, `vista probe`): exact
ground truth, probes that find what is there and nothing where nothing is, and bad
input refused before any work."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

from models import probes
from models.probes import History, Truth
from tests.conftest import tiny_config
from vista.cli import app
from vista.core import names
from vista.core.config import ConfigError, ProbeConfig, SummarizerConfig, load_config
from vista.core.snapshot import Snapshot

DAY = probes.MICROS_PER_DAY
runner = CliRunner()


def history(items, categories, days_ago, as_of_us=100 * DAY) -> History:
    ts = [as_of_us - int(d * DAY) for d in days_ago]
    return History(*(np.asarray(a, np.int64) for a in (items, categories, ts)))


# ---------------------------------------------------------------- ground truth
def test_counts_and_days_since_last_are_exact_on_a_hand_made_history():
    h = history([5, 9, 5, 8, 2], [3, 1, 3, 2, 3], [9.0, 6.0, 2.5, 1.0, 0.25])
    probed = np.array([3, 2, 7, 1])
    assert probes.category_counts(h.categories, probed).tolist() == [3, 1, 0, 1]
    days = probes.days_since_last(h.categories, h.timestamps, probed, 100 * DAY)
    assert days[[0, 1, 3]].tolist() == [0.25, 1.0, 6.0]
    assert np.isnan(days[2])  # never seen: no recency to probe


def test_needle_is_planted_at_the_exact_depth_and_found_there():
    h = history(np.arange(10), np.arange(10) % 3, np.arange(10, 0, -1))
    needles = np.array([99, 77, 55])
    planted = probes.plant_needles(h, needles, np.array([1, 10, 0]))
    assert planted.items[-1] == 99
    assert planted.items[0] == 77
    assert planted.items[1:-1].tolist() == list(range(1, 9))
    # only the item's identity marks the needle: category and time stay
    assert np.array_equal(planted.categories, h.categories)
    assert np.array_equal(planted.timestamps, h.timestamps)
    assert probes.needle_depths(planted.items, needles).tolist() == [1, 10, 0]
    assert probes.needle_depths(np.array([5, 9, 5, 8]), np.array([5])).tolist() == [2]
    with pytest.raises(ValueError, match="depth 11"):
        probes.plant_needles(h, needles, np.array([11, 0, 0]))


def test_needles_are_planted_independently_at_distinct_depths_that_fit():
    plan = probes.plan_needles(4000, 100, [1, 10, 100, 1000], 4, np.random.default_rng(0))
    assert plan.max() <= 100
    for row in plan[:500]:
        present = row[row > 0]
        assert len(set(present.tolist())) == len(present)
    assert np.isin(plan[plan > 0], [1, 10, 100]).mean() > 0.75  # the rest: collisions, moved
    assert np.allclose((plan > 0).mean(0), 0.5, atol=0.03)
    # needle 1's depth does not tell where needle 0 is (else a probe could read it off)
    deep_0, absent_0 = plan[:, 0] == 100, plan[:, 0] == 0
    for depth in (0, 1, 10):
        assert abs((plan[deep_0, 1] == depth).mean() - (plan[absent_0, 1] == depth).mean()) < 0.05


def test_sampled_history_keeps_the_source_mix_span_and_is_seeded():
    rng = np.random.default_rng(1)
    n = 300
    source = History(
        rng.integers(0, 50, n),
        np.r_[np.zeros(200), np.ones(100)].astype(np.int64),
        np.sort(rng.integers(0, 30 * DAY, n)),
    )
    a = probes.sample_history(source, 5000, probes.user_rng(0, 5000, 3))
    b = probes.sample_history(source, 5000, probes.user_rng(0, 5000, 3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(a.items) == 5000
    assert np.all(np.diff(a.timestamps) >= 0)
    assert source.timestamps[0] <= a.timestamps[0]
    assert a.timestamps[-1] <= source.timestamps[-1]
    assert np.isin(a.items, source.items).all()
    # the source's drift survives: category 0 early, category 1 late
    assert (a.categories[:1000] == 0).mean() > 0.9
    assert (a.categories[-1000:] == 1).mean() > 0.9
    assert abs((a.categories == 1).mean() - 1 / 3) < 0.05


def test_long_sources_are_thinned_evenly_keeping_their_span():
    h = History(np.arange(1000), np.arange(1000) // 500, np.arange(1000) * DAY)
    thin = probes.thin_history(h, 100)
    assert len(thin.items) == 100
    assert thin.items[0] == 0
    assert thin.items[-1] == 999
    assert np.all(np.diff(thin.timestamps) > 0)
    assert (thin.categories == 1).mean() == 0.5
    assert probes.thin_history(h, 5000) is h


def test_needles_avoid_every_row_the_sources_use():
    used = np.array([1, 2, 3, 5])
    candidates = np.arange(10, 20)
    rows = candidates % 7  # 10->3, 11->4, 12->5, 13->6, 14->0, ...
    assert probes.pick_needles(candidates, rows, used, 3).tolist() == [11, 13, 14]
    with pytest.raises(probes.ProbeInputError, match="only 3 of 9"):
        probes.pick_needles(candidates[:7], rows[:7], used, 9)


# ---------------------------------------------------------------- the probe machinery
def synthetic_truth(n: int, seed: int = 0) -> Truth:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(1.0, 20.0, (n, 4)))
    days = np.where(counts > 0, rng.gamma(1.0, 5.0, (n, 4)), np.nan)
    plan = np.stack([probes.plan_needles(1, 1000, [1, 100, 1000], 3, rng)[0] for _ in range(n)])
    return Truth(counts, days, plan)


def test_probes_recover_informative_features_and_find_nothing_in_noise():
    n = 240
    truth = synthetic_truth(n)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(n, 24))
    informative = np.hstack(
        [
            np.log1p(truth.counts) + 0.05 * rng.normal(size=(n, 4)),
            np.log1p(np.nan_to_num(truth.days, nan=30.0)),
            (truth.needles > 0) + 0.05 * rng.normal(size=(n, 3)),
            noise,
        ]
    )
    folds = probes.fold_ids(n, 4, 0)
    good = probes.evaluate_probes(informative, truth, [1, 100, 1000], folds, 50, 0)
    bad = probes.evaluate_probes(noise, truth, [1, 100, 1000], folds, 50, 0)
    assert good["count_r2"]["value"] > 0.95
    assert good["recency_r2"]["value"] > 0.9
    assert -0.3 < bad["count_r2"]["value"] < 0.1
    assert -0.3 < bad["recency_r2"]["value"] < 0.1
    assert set(good["needle_auc"]) == {"1", "100", "1000"}
    for depth, cell in good["needle_auc"].items():
        assert cell["value"] > 0.97, depth
        assert cell["lo"] <= cell["value"] <= cell["hi"]
        assert cell["positives"] > 20
        assert 0.35 < bad["needle_auc"][depth]["value"] < 0.65, depth
        assert bad["needle_auc"][depth]["lo"] < 0.5 < bad["needle_auc"][depth]["hi"]
    # fitting on fewer users (as at every length) still finds a strong signal
    few = probes.evaluate_probes(informative, truth, [1], folds, 20, 0, train_size=40)
    assert few["count_r2"]["value"] > 0.8
    assert few["needle_auc"]["1"]["value"] > 0.9


def test_wide_features_are_fitted_exactly_in_the_training_rows_span():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 500)), rng.normal(size=(30, 1))
    folds = probes.fold_ids(30, 3, 0)
    projected = probes.ridge_oof(x, y, folds)
    train, test = folds != 0, folds == 0
    from sklearn.linear_model import RidgeCV

    mean, std = x[train].mean(0), x[train].std(0)
    direct = RidgeCV(alphas=probes.ALPHAS).fit((x[train] - mean) / std, y[train, 0])
    assert np.allclose(projected[test, 0], direct.predict((x[test] - mean) / std), atol=1e-6)


class Histogram(torch.nn.Module):
    """A "summarizer" with perfect memory: log(1 + histogram) of item and category rows,
    as (B, 1, V + C) tokens. Any module mapping a HistoryBatch to (B, K, D) will do."""

    def __init__(self, cfg: SummarizerConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, batch) -> torch.Tensor:
        def histogram(rows, size):
            out = torch.zeros(rows.shape[0], size)
            return out.scatter_add_(1, rows, batch.mask.float())

        items = histogram(batch.items, self.cfg.vocab_size)
        cats = histogram(batch.categories, self.cfg.category_vocab_size)
        return torch.log1p(torch.cat([items, cats], 1))[:, None, :]


def test_a_summary_with_perfect_memory_finds_every_needle_and_last_100_only_recent_ones():
    # 3 categories x 20 items: ids 0..59 -> rows 1..60 of 72; needles 61..63 -> rows 62..64
    summarizer_cfg = SummarizerConfig(
        vocab_size=72, category_vocab_size=8, n_seeds=1, dim=4, n_heads=1
    )
    probe_cfg = ProbeConfig(
        lengths=[400], depths=[1, 50, 300], users=160, min_users=160, needles=3, categories=3
    )
    as_of_us = 200 * DAY
    sources = probes.synthetic_sources(160, 3, as_of_us, seed=0)
    categories = probes.top_categories(sources, 3)
    needles = np.array([61, 62, 63])
    build = (
        Histogram(summarizer_cfg),
        sources,
        400,
        160,
        categories,
        needles,
        as_of_us,
        summarizer_cfg,
        probe_cfg,
    )
    data = probes.build_probe_set(*build)
    again = probes.build_probe_set(*build)  # seeded: the same histories, truth and features
    assert all(
        np.array_equal(a, b, equal_nan=True) for a, b in zip(data.truth, again.truth, strict=True)
    )
    assert np.array_equal(data.features["last_n"], again.features["last_n"])
    # on the grid, or one or two events older after a collision
    assert set(np.unique(data.truth.needles)) <= {0, 1, 2, 3, 50, 51, 52, 300, 301, 302}
    folds = probes.fold_ids(160, 4, 0)
    full = probes.evaluate_probes(data.features["full"], data.truth, [1, 50, 300], folds, 30, 0)
    last = probes.evaluate_probes(data.features["last_n"], data.truth, [1, 50, 300], folds, 30, 0)
    assert full["count_r2"]["value"] > 0.95
    assert {d: c["value"] > 0.95 for d, c in full["needle_auc"].items()} == {
        "1": True,
        "50": True,
        "300": True,
    }
    assert last["needle_auc"]["1"]["value"] > 0.95
    assert last["needle_auc"]["50"]["value"] > 0.95
    assert 0.3 < last["needle_auc"]["300"]["value"] < 0.7  # deeper than the last 100 events


# ---------------------------------------------------------------- bad input
def test_a_depth_beyond_the_longest_length_is_refused_with_the_field_and_range():
    with pytest.raises(ConfigError) as caught:
        load_config("tiny", overrides={"probe": {"depths": [1, 5000]}}, environ={})
    message = str(caught.value)
    assert "probe" in message
    assert "depths [5000]" in message
    assert "1..1600" in message
    ProbeConfig(lengths=[100, 1000], depths=[1, 1000])  # at the longest length is fine
    with pytest.raises(ValueError, match=r"needles \(4\) must be <= the shortest length \(2\)"):
        ProbeConfig(lengths=[2, 100], depths=[1], needles=4)


def test_cli_refuses_a_deep_needle_before_any_work(tmp_path, monkeypatch):
    for key in ("STATE", "LAKE", "REPORTS"):
        monkeypatch.setenv(f"VISTA__PATHS__{key}", str(tmp_path / key.lower()))
    result = runner.invoke(app, ["probe", "-p", "tiny", "--length", "100", "--depth", "101"])
    assert result.exit_code == 2
    assert "depths [101] beyond the longest history length 100" in result.output
    assert not any(tmp_path.iterdir())


def test_probe_refuses_to_mix_two_summarizer_versions(tmp_path):
    from models.summarizer import build_summarizer, save_checkpoint
    from vista import pipeline, probing, state
    from vista.core import lake

    cfg = tiny_config(tmp_path)
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    model = build_summarizer(cfg.summarizer)
    path = save_checkpoint(model, state.checkpoint_dir(cfg) / "m.pt")
    (state.checkpoint_dir(cfg) / "current.json").write_text(
        json.dumps({"version": model.version(), "path": str(path)})
    )
    # the snapshot's summaries were made by another version
    day = as_of.date().isoformat()
    rows = pa.table({"user_id": [1], "as_of_date": [day]})
    lake.write_arrow(
        cfg.paths.table(names.SUMMARIES) / "s-other",
        rows,
        ["as_of_date"],
        metadata={"vista.partition": f"as_of_date={day}", "vista.summarizer_version": "s-other"},
    )
    with pytest.raises(probing.ProbeVersionError) as caught:
        probing.run_probes(cfg, as_of, progress=False)
    message = str(caught.value)
    assert model.version() in message
    assert "s-other" in message
    assert "\n" not in message
    assert not state.report_dir(cfg, as_of).exists()


def test_sources_fall_back_to_synthetic_users_without_a_snapshot(tmp_path):
    from vista import pipeline, probing

    cfg = tiny_config(tmp_path)
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    sources, info = probing.load_sources(cfg, as_of, 12)
    assert info["kind"] == "synthetic"
    assert len(sources) == 12
    assert all(len(s.items) >= cfg.probe.min_source_events for s in sources)
    assert all(s.timestamps.max() < as_of.timestamp() * 1e6 for s in sources)


# ---------------------------------------------------------------- the CLI on the pipeline
@pytest.mark.slow
def test_probe_cli_on_the_tiny_pipeline_writes_the_report(pipeline_run, monkeypatch):
    cfg, as_of, steps = pipeline_run
    for key, path in (
        ("STATE", cfg.paths.state),
        ("LAKE", cfg.paths.lake),
        ("REPORTS", cfg.paths.reports),
    ):
        monkeypatch.setenv(f"VISTA__PATHS__{key}", str(path))
    result = runner.invoke(
        app, ["probe", "-p", "tiny", "--length", "100", "--length", "400", "--users", "24"]
    )
    assert result.exit_code == 0, result.output
    folder = Path(cfg.paths.reports) / as_of.date().isoformat()
    got = json.loads((folder / "probes.json").read_text())
    assert {
        "as_of",
        "profile",
        "summarizer_version",
        "source",
        "categories",
        "needle_items",
        "baseline",
        "settings",
        "lengths",
        "train_users",
    } <= set(got)
    assert got["summarizer_version"] == steps["summarize"]["summarizer_version"]
    assert got["source"]["kind"] == "user_histories"
    assert [row["length"] for row in got["lengths"]] == [100, 400]
    for row in got["lengths"]:
        assert row["users"] == 24
        for name in ("full", "last_n"):
            figures = row[name]
            assert {"count_r2", "recency_r2", "needle_auc"} == set(figures)
            assert {"value", "lo", "hi", "n"} <= set(figures["count_r2"])
            assert set(figures["needle_auc"]) <= {"1", "10", "100", "400"}
    # at 100 events the last 100 are the whole history
    assert got["lengths"][0]["full"] == got["lengths"][0]["last_n"]
    assert "## What a summary remembers" in (folder / "probes.md").read_text()
    assert (folder / "probes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "summary / last 100" in result.output
