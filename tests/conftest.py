"""Shared fixtures: a tiny profile rooted in a temp folder, one SparkSession, and
one in-process run of the pipeline that several test modules read.

Markers (pyproject.toml): `slow` marks the end-to-end paths; `integration` marks the
heavy ones that are not end to end, and every test that uses the ``spark``,
``pipeline_run`` or ``s3`` fixture (directly or through another fixture) gets it here,
so that `make test-quick` (``-m "not slow and not integration"``) starts no JVM, no
local S3, Redis or PostgreSQL server and no browser."""

from __future__ import annotations

import os
import sys

import pytest

from vista.core.snapshot import Snapshot

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("FEAST_USAGE", "False")

# pytest-xdist's workers (make test runs two) have a bare __main__, no __spec__ and no
# __file__, which pyspark.sql.connect (imported by Great Expectations) takes for a doctest
# run: it then calls sys.exit(0) in the middle of collection. A worker's __main__ names
# itself so that pyspark sees an ordinary program.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"


# a test whose fixtures include one of these (directly or not) is an integration test:
# a SparkSession, the tiny pipeline run, the local S3 server (tests/test_object_storage.py)
HEAVY_FIXTURES = {"spark", "pipeline_run", "s3"}


# the files that take longest (docs/results/test_suite.json's slowest), run first: `make
# test` hands whole files to its two processes in this order (--dist loadfile
# --no-loadscope-reorder), and the longest first keeps either from finishing alone
# (the first two start side by side, the next two follow them: the browser test, whose
# pages are slow on a busy machine, comes after the backfill rather than beside it)
RUN_FIRST = ("test_dag.py", "test_faults.py", "test_browser.py", "test_readme.py",
             "test_spark_cluster.py", "test_bench.py", "test_dag_failures.py")  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    rank = {name: i for i, name in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept


def tiny_config(root, **overrides):
    from vista.core.config import load_config

    paths = {"state": str(root / "state"), "lake": str(root / "lake"),
             "reports": str(root / "reports")}  # fmt: skip
    return load_config("tiny", overrides={"paths": paths, **overrides}, environ={})


@pytest.fixture(scope="session")
def spark():
    from spark_jobs.session import spark_session
    from vista.core.config import SparkConfig

    session = spark_session(SparkConfig(master="local[2]", shuffle_partitions=2))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory, spark):
    """The whole pipeline on tiny data, in this process; returns (cfg, as_of, steps)."""
    from vista import pipeline

    cfg = tiny_config(tmp_path_factory.mktemp("pipeline"))
    as_of = Snapshot.of(pipeline.default_as_of(cfg))
    steps = {"ingest_events": pipeline.ingest_events(cfg)}
    steps["validate_events"] = pipeline.validate_events(cfg, as_of)
    steps["build_histories"] = pipeline.build_histories(cfg, as_of)
    steps["validate_histories"] = pipeline.validate_histories(cfg, as_of)
    steps["build_raw_features"] = pipeline.build_raw_features(cfg, as_of)
    steps["train_summarizer"] = pipeline.train_summarizer(cfg, as_of, progress=False)
    steps["summarize"] = pipeline.summarize(cfg, as_of)
    steps["validate_summaries"] = pipeline.validate_summaries(cfg, as_of)
    steps["publish_features"] = pipeline.publish_features(cfg, as_of)
    return cfg, as_of, steps


def served_ranker_auc(cfg, as_of: str) -> float:
    """ranker_v1's AUC recomputed outside the pipeline: the artifact serving points at,
    scored on the evaluation window's Feast frame, against the lake's labels."""
    import json

    from sklearn.metrics import roc_auc_score

    from models.ranker import load_ranker, score
    from vista import pipeline, state

    pointer = json.loads((state.ranker_dir(cfg) / "current.json").read_text())
    model, _ = load_ranker(pointer["path"])
    _, eval_days = state.impression_windows(cfg, Snapshot.of(as_of))
    frame = pipeline.training_set(cfg, eval_days)
    labels = state.read_impressions(cfg, eval_days).set_index("impression_id")["label"]
    return float(roc_auc_score(labels.loc[frame["impression_id"]], score(model, frame)))
