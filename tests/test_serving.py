"""Online scoring: the FastAPI service over the Feast online store and the saved ranker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.ranker import load_ranker, score
from vista import pipeline, serving
from vista.config import PROJECT_ROOT
from vista.ports import free_port

UNKNOWN_USER = 10**12


@pytest.fixture(scope="module")
def served(pipeline_run):
    cfg, as_of, _ = pipeline_run
    trained = pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)
    service = serving.load_service(cfg)
    return cfg, as_of, trained, service, TestClient(serving.create_app(service))


def candidates(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"item_id": int(i), "category": int(c)}
            for i, c in zip(rng.integers(0, 400, n), rng.integers(0, 12, n), strict=True)]  # fmt: skip


def offline_scores(model, summary, cands: list[dict]) -> np.ndarray:
    """The batch scoring path used in evaluation, for the same user and candidates."""
    frame = pd.DataFrame(cands).assign(
        user_id=1, label=0, event_timestamp=pd.Timestamp("2026-01-01", tz="UTC"),
        summary=[summary] * len(cands),
    )  # fmt: skip
    return score(model, frame)


def test_ranker_artifact_records_the_summarizer_version_it_read(served):
    cfg, _, trained, service, _ = served
    assert trained["artifact"]["summarizer_version"] == pipeline.current_summarizer(cfg)["version"]
    _, metadata = load_ranker(pipeline.current_ranker(cfg)["path"])
    assert metadata["summarizer_version"] == service.scorer.summarizer_version
    assert metadata["metrics"]["auc"] == trained["metrics"]["ranker_v1"]["auc"]


def test_a_known_user_is_scored_from_the_online_summary_as_offline(served):
    cfg, as_of, _, service, client = served
    summaries = pipeline.read_summaries(cfg, as_of).set_index("user_id")
    user = int(summaries["history_length"].idxmax())
    cands = candidates(50)
    response = client.post("/score", json={"user_id": user, "candidates": cands})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary_status"] == "fresh"
    assert body["history_length"] == int(summaries.loc[user, "history_length"])
    assert body["item_ids"] == [c["item_id"] for c in cands]
    got = np.array(body["scores"])
    want = offline_scores(service.scorer.model, summaries.loc[user, "summary"], cands)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the summary matters: the same candidates score differently without it
    cold = offline_scores(service.scorer.model, None, cands)
    assert np.abs(got - cold).max() > 1e-4


def test_an_unknown_user_gets_the_cold_start_answer(served):
    _, _, _, service, client = served
    cands = candidates(20, seed=1)
    response = client.post("/score", json={"user_id": UNKNOWN_USER, "candidates": cands})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary_status"] == "cold_start"
    assert body["history_length"] is None
    got = np.array(body["scores"])
    np.testing.assert_allclose(got, offline_scores(service.scorer.model, None, cands), rtol=1e-5)
    assert np.isfinite(got).all()
    assert ((got > 0) & (got < 1)).all()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user_id": 1}, ["body", "candidates"]),
        ({"user_id": 1, "candidates": []}, ["body", "candidates"]),
        (
            {
                "user_id": 1,
                "candidates": [{"item_id": 1, "category": 2}, {"item_id": "x1", "category": 2}],
            },
            ["body", "candidates", 1, "item_id"],
        ),
        ({"user_id": 1, "candidates": [{"item_id": 1}]}, ["body", "candidates", 0, "category"]),
        (
            {"user_id": 1, "candidates": [{"item_id": -5, "category": 1}]},
            ["body", "candidates", 0, "item_id"],
        ),
        (
            {"user_id": 1, "candidates": [{"item_id": 1.5, "category": 1}]},
            ["body", "candidates", 0, "item_id"],
        ),
        (
            {"user_id": 1, "candidates": [{"item_id": 1, "category": 1, "price": 3}]},
            ["body", "candidates", 0, "price"],
        ),
        ({"user_id": "u1", "candidates": [{"item_id": 1, "category": 1}]}, ["body", "user_id"]),
        ({"user_id": 1, "candidates": "1,2,3"}, ["body", "candidates"]),
    ],
    ids=[
        "missing",
        "empty",
        "item_id_text",
        "no_category",
        "negative_id",
        "float_id",
        "unknown_field",
        "user_text",
        "not_a_list",
    ],
)
def test_malformed_candidates_get_422_naming_the_field(served, payload, field):
    client = served[4]
    response = client.post("/score", json=payload)
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert field in locations, locations


def test_too_many_candidates_get_422(served):
    client = served[4]
    payload = {"user_id": 1, "candidates": candidates(serving.MAX_CANDIDATES + 1)}
    response = client.post("/score", json=payload)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "candidates"]


def test_a_summary_of_another_summarizer_version_is_never_scored(served):
    """A ranker trained on another summarizer than the one whose summaries are online:
    every user gets the cold-start answer, flagged, and /health counts them."""
    cfg, as_of, _, service, _ = served
    other = serving.RankerScorer(
        service.scorer.model, {**service.scorer.metadata, "summarizer_version": "other-model"}
    )
    mismatched = serving.ScoringService(other, service.summaries)
    client = TestClient(serving.create_app(mismatched))
    user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
    cands = candidates(30, seed=2)
    body = client.post("/score", json={"user_id": user, "candidates": cands}).json()
    assert body["summary_status"] == "version_mismatch"
    assert body["summarizer_version"] == "other-model"
    got = np.array(body["scores"])
    np.testing.assert_allclose(got, offline_scores(service.scorer.model, None, cands), rtol=1e-5)
    health = client.get("/health").json()
    assert health["answers_by_summary_status"] == {"version_mismatch": 1}


def test_summary_status_rules():
    tokens = np.zeros(8, np.float32)
    assert serving.summary_status(serving.UserSummary(None, None, None), "v1", 8) == "cold_start"
    fresh = serving.UserSummary(tokens, 10, "v1")
    assert serving.summary_status(fresh, "v1", 8) == "fresh"
    assert serving.summary_status(fresh, "v2", 8) == "version_mismatch"
    assert serving.summary_status(fresh, "v1", 16) == "version_mismatch"  # other K x D


@pytest.mark.slow
def test_vista_serve_answers_over_http(served):
    """`vista serve` as a user starts it: a uvicorn process on loopback."""
    cfg, as_of, _, _, _ = served
    port = free_port()
    env = {
        **os.environ,
        "VISTA__PATHS__STATE": str(cfg.paths.state),
        "VISTA__PATHS__LAKE": str(cfg.paths.lake),
        "VISTA__PATHS__REPORTS": str(cfg.paths.reports),
    }
    command = [sys.executable, "-m", "vista.cli", "serve", "-p", "tiny", "--port", str(port)]
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "vista serve did not start in 120 s"
                time.sleep(0.5)
        assert health.json()["summarizer_version"] == pipeline.current_summarizer(cfg)["version"]
        user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
        response = httpx.post(f"http://127.0.0.1:{port}/score",
                              json={"user_id": user, "candidates": candidates(5)}, timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["summary_status"] == "fresh"
        bad = httpx.post(f"http://127.0.0.1:{port}/score",
                         json={"user_id": user, "candidates": [{"item_id": "x"}]}, timeout=30)  # fmt: skip
        assert bad.status_code == 422
    finally:
        server.terminate()
        server.wait(timeout=30)
