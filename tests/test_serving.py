"""Online scoring: the FastAPI service over the Feast online store and the saved ranker."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
from fastapi.testclient import TestClient

from devservers.ports import free_port
from models.ranker import load_ranker, score
from tests.bad_requests import CASES, BadRequest, doc, padded
from tests.sockets import wait_for_health
from vista import api_docs, cli, http_input, pipeline, serving, state
from vista.core.config import PROJECT_ROOT, ConfigError, ServingConfig, load_config

_spec = importlib.util.spec_from_file_location("bad_input_table",
                                               PROJECT_ROOT / "bench" / "bad_input_table.py")  # fmt: skip
bad_input_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bad_input_table)

UNKNOWN_USER = 10**12


# the service's clock in these tests: half a day after the snapshot it serves (the data
# are synthetic and dated; at the real date every summary would be past its ttl)
SERVED_AFTER = dt.timedelta(hours=12)


@pytest.fixture(scope="module")
def served(pipeline_run):
    cfg, as_of, _ = pipeline_run
    trained = pipeline.train_and_evaluate_ranker(cfg, as_of, progress=False)
    service = serving.load_service(cfg, clock=lambda: as_of + SERVED_AFTER)
    return cfg, as_of, trained, service, TestClient(serving.create_app(service, cfg.serving))


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
    assert trained["artifact"]["summarizer_version"] == state.current_summarizer(cfg)["version"]
    _, metadata = load_ranker(state.current_ranker(cfg)["path"])
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


# ------------------------------------------------------------------ items by id alone
def lake_categories(cfg) -> pd.Series:
    """item id -> category as the lake's events and impressions hold it, read here with
    plain delta-rs (not the service's batched reader)."""
    from vista.core import lake

    rows = pd.concat([
        lake.read_arrow(cfg.paths.table(name), columns=["item_id", "category"]).to_pandas()
        for name in ("events", "impressions")
    ]).drop_duplicates()  # fmt: skip
    assert not rows["item_id"].duplicated().any()  # one category per item in this world
    return rows.set_index("item_id")["category"].sort_index()


def test_the_catalog_holds_every_item_of_the_lake(served):
    cfg, _, _, service, _ = served
    want = lake_categories(cfg)
    catalog = service.catalog
    assert catalog.ids.tolist() == want.index.tolist()
    assert catalog.categories.tolist() == want.tolist()
    # read in many small batches, the catalog is the same
    from vista.items import read_item_catalog

    small = read_item_catalog(cfg, batch_rows=997)
    assert np.array_equal(small.ids, catalog.ids)
    assert np.array_equal(small.categories, catalog.categories)


def test_candidates_by_item_id_alone_are_scored_with_the_lake_categories(served):
    """A request may carry only item ids: it scores as one that carries the categories
    the lake holds, and as the offline scoring path does with them."""
    cfg, as_of, _, service, client = served
    summaries = pipeline.read_summaries(cfg, as_of).set_index("user_id")
    user = int(summaries["history_length"].idxmax())
    known = lake_categories(cfg).sample(40, random_state=0)
    with_categories = [{"item_id": int(i), "category": int(c)} for i, c in known.items()]
    by_id = [{"item_id": int(i)} for i in known.index]
    answer = client.post("/score", json={"user_id": user, "candidates": by_id}).json()
    given = client.post("/score", json={"user_id": user, "candidates": with_categories}).json()
    assert answer["item_ids"] == given["item_ids"] == [c["item_id"] for c in by_id]
    assert answer["unknown_items"] == given["unknown_items"] == 0
    np.testing.assert_allclose(answer["scores"], given["scores"], rtol=1e-6)
    want = offline_scores(service.scorer.model, summaries.loc[user, "summary"], with_categories)
    np.testing.assert_allclose(answer["scores"], want, rtol=1e-5, atol=1e-6)
    # the categories are read: the same items under other categories score otherwise
    shifted = [{**c, "category": c["category"] + 1} for c in with_categories]
    other = client.post("/score", json={"user_id": user, "candidates": shifted}).json()
    assert np.abs(np.array(other["scores"]) - answer["scores"]).max() > 1e-4


def test_an_unknown_item_is_scored_as_unknown_and_counted(served):
    """An item the lake does not hold, sent without a category, is scored with the
    unknown category (what item_index maps -1 to); one sent with a category keeps it.
    The answer and /health count the unknown ones."""
    cfg, as_of, _, service, _ = served
    fresh = serving.ScoringService(service.scorer, service.summaries, ttl=service.ttl,
                                   clock=service.clock, catalog=service.catalog)  # fmt: skip
    client = TestClient(serving.create_app(fresh, cfg.serving))
    categories = lake_categories(cfg)
    unknown_id = int(categories.index.max()) + 10**9
    known_id = int(categories.index[0])
    cands = [{"item_id": known_id}, {"item_id": unknown_id},
             {"item_id": unknown_id, "category": 3}, {"item_id": unknown_id, "category": None}]  # fmt: skip
    user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
    body = client.post("/score", json={"user_id": user, "candidates": cands}).json()
    assert body["unknown_items"] == 2
    summary = pipeline.read_summaries(cfg, as_of).set_index("user_id").loc[user, "summary"]
    as_scored = [{"item_id": known_id, "category": int(categories.iloc[0])},
                 {"item_id": unknown_id, "category": -1},
                 {"item_id": unknown_id, "category": 3},
                 {"item_id": unknown_id, "category": -1}]  # fmt: skip
    want = offline_scores(service.scorer.model, summary, as_scored)
    np.testing.assert_allclose(body["scores"], want, rtol=1e-5, atol=1e-6)
    assert body["scores"][1] != pytest.approx(body["scores"][2], abs=1e-6)
    health = client.get("/health").json()
    assert health["items_known"] == len(categories)
    assert (health["candidates_looked_up"], health["unknown_items"]) == (3, 2)
    client.post("/score", json={"user_id": user, "candidates": [{"item_id": unknown_id}]})
    health = client.get("/health").json()
    assert (health["candidates_looked_up"], health["unknown_items"]) == (4, 3)


def test_unknown_category_is_the_lakes_and_the_rankers_unknown():
    from models.summarizer import UNKNOWN_ITEM, item_index
    from sources.loaders import UNKNOWN_CATEGORY
    from vista import items

    assert items.UNKNOWN_CATEGORY == UNKNOWN_CATEGORY
    assert item_index(np.array([items.UNKNOWN_CATEGORY]), 1024)[0] == UNKNOWN_ITEM


def test_latest_category_per_item_whatever_the_row_order():
    from vista.items import ItemCatalog, latest_per_item

    items = np.array([5, 7, 5, 9, 7, 5])
    categories = np.array([1, 2, 3, 4, 6, 8])
    stamps = np.array([10, 10, 30, 5, 10, 20])  # item 7: two rows at one time
    for order in (np.arange(6), np.arange(6)[::-1], np.array([3, 1, 5, 0, 4, 2])):
        ids, cats, _ = latest_per_item(items[order], categories[order], stamps[order])
        assert (ids.tolist(), cats.tolist()) == ([5, 7, 9], [3, 6, 4])
    catalog = ItemCatalog(*latest_per_item(items, categories, stamps)[:2])
    found, known = catalog.categories_of(np.array([9, 1, 5, 100]))
    assert (found.tolist(), known.tolist()) == ([4, -1, 3, -1], [True, False, True, False])
    empty, none = ItemCatalog.empty().categories_of(np.array([5]))
    assert (empty.tolist(), none.tolist()) == ([-1], [False])


# the largest answer any bad request may get: bounded whatever the body's size
ANSWER_LIMIT = 8 * 1024


def send(client, case: BadRequest, url: str = "") -> httpx.Response:
    """One bad request, as its case says: chunked bodies are sent in 64 KiB pieces with
    no Content-Length."""
    body = case.body()
    content = (body[i : i + 65536] for i in range(0, len(body), 65536)) if case.chunked else body
    headers = {"content-type": "application/json", **case.headers}
    if case.method == "GET":
        return client.get(f"{url}/score")
    return client.request(case.method, f"{url}/score", content=content, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_request_gets_its_status(served, case):
    """Every class in docs/BAD_INPUT.md: its status, the location named, no input echoed
    and a bounded answer (a 25 MB body once got a 23 MB 422, and NaN or 2**63 a 500)."""
    response = send(served[4], case)
    assert response.status_code == case.status, response.text[:1000]
    assert len(response.content) <= ANSWER_LIMIT, len(response.content)
    answer = response.json()
    if case.loc is None:
        return
    errors = answer["detail"]
    assert list(case.loc) in [error["loc"] for error in errors], errors
    for error in errors:  # location, message, type: never the input or its context
        assert set(error) == {"loc", "msg", "type"}, error
    if case.status == 422:
        assert answer["errors_total"] >= len(errors)
    if case.name == "over_limit_chunked":  # refused on the bytes received, not a header
        assert "sent more than" in errors[0]["msg"]
        assert "serving.max_body_bytes" in errors[0]["msg"]


def test_many_errors_are_counted_not_listed(served):
    case = next(c for c in CASES if c.name == "many_invalid_candidates")
    answer = send(served[4], case).json()
    assert len(answer["detail"]) == http_input.MAX_ERRORS
    assert answer["errors_total"] == 2 * serving.MAX_CANDIDATES  # item_id and category


def test_bad_input_table_is_the_rendering_of_the_cases():
    """docs/BAD_INPUT.md lists exactly the cases test_bad_request_gets_its_status sends."""
    assert len(CASES) >= 20
    assert len({case.name for case in CASES}) == len(CASES)
    assert bad_input_table.TABLE.read_text() == bad_input_table.render(), (
        "run: .venv/bin/python bench/bad_input_table.py"
    )


@contextlib.contextmanager
def http_service(app):
    """``app`` under uvicorn on a free loopback port, in a thread, as `vista serve` runs it
    (its start-up heap frozen too; thawed after, for the tests that follow)."""
    import uvicorn

    serving.freeze_startup_heap()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped at start-up"
        assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        gc.unfreeze()


def max_size_body(user: int, limit: int, valid: bool = True) -> bytes:
    """A request of exactly ``limit`` bytes with the most candidates allowed, ids as long
    as ids get (valid), or every candidate invalid (the most errors to report)."""
    rng = np.random.default_rng(5)
    n = serving.MAX_CANDIDATES
    if valid:
        cands = [{"item_id": int(i), "category": int(c)}
                 for i, c in zip(rng.integers(0, serving.MAX_ID, n), rng.integers(0, serving.MAX_ID, n),
                                 strict=True)]  # fmt: skip
    else:
        cands = [{"item_id": f"x{i}", "category": -i - 1} for i in range(n)]
    body = json.dumps({"user_id": user, "candidates": cands}).encode()
    assert len(body) <= limit, f"{len(body)} bytes: the limit no longer holds the largest request"
    return padded(body, limit)


def test_health_answers_while_max_size_requests_are_parsed_and_scored(served):
    """Over real HTTP: while requests of the maximum size are parsed, validated and scored
    back to back, /health answers every probe in under 100 ms."""
    cfg, as_of, _, service, _ = served
    user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
    limit = cfg.serving.max_body_bytes
    bodies = [max_size_body(user, limit), max_size_body(user, limit, valid=False)]
    headers = {"content-type": "application/json"}
    with http_service(serving.create_app(service, cfg.serving)) as url:
        busy = threading.Event()
        stop = threading.Event()
        heavy: list[tuple[int, float]] = []

        def send_max_size() -> None:
            with httpx.Client(base_url=url, timeout=120) as client:
                while not stop.is_set():
                    body = bodies[len(heavy) % 2]
                    started = time.perf_counter()
                    busy.set()
                    response = client.post("/score", content=body, headers=headers)
                    busy.clear()
                    heavy.append((response.status_code, time.perf_counter() - started))

        worker = threading.Thread(target=send_max_size, daemon=True)
        probes: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as client:
            client.get("/health").raise_for_status()  # a warm connection
            worker.start()
            deadline = time.monotonic() + 60
            while len(probes) < 60 and time.monotonic() < deadline:
                if not busy.wait(timeout=5):
                    continue
                started = time.perf_counter()
                response = client.get("/health")
                seconds = time.perf_counter() - started
                if busy.is_set():  # the large request was in flight for the whole probe
                    assert response.status_code == 200
                    probes.append(seconds)
                time.sleep(0.005)
        stop.set()
        worker.join(timeout=120)
    statuses = Counter(status for status, _ in heavy)
    assert set(statuses) == {200, 422}, statuses
    assert len(probes) >= 30, f"only {len(probes)} probes overlapped a large request"
    ms = np.array(probes) * 1000
    heavy_ms = np.median([s for _, s in heavy]) * 1000
    print(f"/health during max-size requests (median {heavy_ms:.0f} ms each): "
          f"{len(ms)} probes, median {np.median(ms):.1f} ms, max {ms.max():.1f} ms")  # fmt: skip
    assert ms.max() < 100, sorted(ms)[-5:]


def test_body_limit_holds_over_http_declared_or_chunked(served):
    """Over real HTTP, uvicorn's framing: a body one byte over the limit gets 413 whether it
    declares its length or streams in chunks; one exactly at the limit is read."""
    cfg, as_of, _, service, _ = served
    user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
    limit = cfg.serving.max_body_bytes
    over = [c for c in CASES if c.name in ("over_limit_declared", "over_limit_chunked")]
    with (http_service(serving.create_app(service, cfg.serving)) as url,
          httpx.Client(timeout=60) as client):  # fmt: skip
        for case in over:
            response = send(client, case, url)
            assert response.status_code == 413, (case.name, response.text[:500])
            assert "serving.max_body_bytes" in response.json()["detail"][0]["msg"]
        at_limit = padded(doc(user_id=user, candidates=candidates(5)), limit)
        chunks = (at_limit[i : i + 4096] for i in range(0, limit, 4096))
        response = client.post(f"{url}/score", content=chunks,
                               headers={"content-type": "application/json"})  # fmt: skip
        assert response.status_code == 200, response.text[:500]
        assert client.get(f"{url}/health").status_code == 200


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
    now = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    ttl = dt.timedelta(days=14)

    def status(found, version="v1", width=8, at=now):
        return serving.summary_status(found, version, width, at, ttl)

    assert status(serving.UserSummary(None, None, None)) == "cold_start"
    fresh = serving.UserSummary(tokens, 10, "v1", now - ttl)
    assert status(fresh) == "fresh"  # exactly the ttl old: Feast's offline join still has it
    assert status(fresh, at=now + dt.timedelta(seconds=1)) == "stale"
    assert status(serving.UserSummary(tokens, 10, "v1", None)) == "stale"  # age unknown
    assert status(fresh, "v2") == "version_mismatch"
    assert status(fresh, width=16) == "version_mismatch"  # other K x D
    # another version's summary is never read, however old: that is the stronger reason
    assert status(fresh, "v2", at=now + 2 * ttl) == "version_mismatch"
    assert serving.scored_from_summary("fresh", "cold_start")
    assert not serving.scored_from_summary("stale", "cold_start")
    assert serving.scored_from_summary("stale", "score")
    assert not serving.scored_from_summary("version_mismatch", "score")
    assert not serving.scored_from_summary("cold_start", "score")


def test_a_summary_older_than_the_ttl_is_served_stale(served):
    """Feast returns an online row of any age; the service compares the row's snapshot
    time with its clock. One second past features.ttl_days the answer is "stale", scored
    as serving.stale_summaries says, and /health counts it."""
    cfg, as_of, _, service, _ = served
    summaries = pipeline.read_summaries(cfg, as_of).set_index("user_id")
    user = int(summaries["history_length"].idxmax())
    assert service.summaries.fetch(user).event_timestamp == as_of  # the snapshot, as stored
    ttl = dt.timedelta(days=cfg.features.ttl_days)
    cands = candidates(40, seed=3)
    model = service.scorer.model
    from_summary = offline_scores(model, summaries.loc[user, "summary"], cands)
    cold = offline_scores(model, None, cands)
    payload = {"user_id": user, "candidates": cands}

    def answer(at: dt.datetime, stale: str = "cold_start", svc=None) -> tuple[dict, dict]:
        svc = svc or serving.ScoringService(service.scorer, service.summaries, ttl=ttl,
                                            stale=stale, clock=lambda: at)  # fmt: skip
        client = TestClient(serving.create_app(svc, cfg.serving))
        response = client.post("/score", json=payload)
        assert response.status_code == 200, response.text
        return response.json(), client.get("/health").json()

    edge, _ = answer(as_of + ttl)
    assert edge["summary_status"] == "fresh"
    np.testing.assert_allclose(edge["scores"], from_summary, rtol=1e-5, atol=1e-6)

    late = as_of + ttl + dt.timedelta(seconds=1)
    body, health = answer(late)  # the default: cold start
    assert cfg.serving.stale_summaries == "cold_start"
    assert body["summary_status"] == "stale"
    assert body["history_length"] is None
    np.testing.assert_allclose(body["scores"], cold, rtol=1e-5, atol=1e-6)
    assert health["answers_by_summary_status"] == {"stale": 1}

    # serving.stale_summaries: score, through the config and load_service
    scoring = cfg.model_copy(update={"serving": ServingConfig(stale_summaries="score")})
    body, health = answer(late, svc=serving.load_service(scoring, clock=lambda: late))
    assert body["summary_status"] == "stale"
    assert body["history_length"] == int(summaries.loc[user, "history_length"])
    np.testing.assert_allclose(body["scores"], from_summary, rtol=1e-5, atol=1e-6)
    assert health["answers_by_summary_status"] == {"stale": 1}
    assert health["stale_summaries"] == "score"


def test_api_docs_render_with_no_outside_url(served):
    """/docs and /redoc as a browser gets them over HTTP: no URL to any host but the
    service, every asset they load served by the service, and the bundles' own outside
    requests (Swagger UI's validator badge, ReDoc's vendor logo) switched off."""
    cfg, _, _, service, _ = served
    with (http_service(serving.create_app(service, cfg.serving)) as url,
          httpx.Client(base_url=url, timeout=30) as client):  # fmt: skip
        pages = {path: client.get(path) for path in ("/docs", "/redoc", "/docs/oauth2-redirect")}
        for path, page in pages.items():
            assert page.status_code == 200, path
            hosts = {urlsplit(u).hostname for u in re.findall(r"https?://[^\s\"'<>)]+", page.text)}
            assert hosts <= {"127.0.0.1"}, (path, hosts)
            for ref in re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", page.text):
                assert re.match(r"/[^/]", ref), (path, ref)  # this host, not //host
                assert client.get(ref).status_code == 200, (path, ref)
        assert '"validatorUrl": null' in pages["/docs"].text
        redoc = client.get(f"{api_docs.ASSETS_URL}/redoc.standalone.js")
        assert redoc.status_code == 200
        assert "Redoc" in redoc.text
        assert "cdn.redoc.ly" not in redoc.text
        assert client.get(f"{api_docs.ASSETS_URL}/%2e%2e%2fcore.py").status_code == 404
        spec = client.get("/openapi.json").json()
        body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["properties"]["candidates"]["items"]["properties"]["item_id"]
        assert "$ref" not in json.dumps(body)  # inlined: nothing points into a missing $defs


def test_serving_settings_are_typed_config():
    """serving.* come from profiles and VISTA__SERVING__* like any setting, and a bad value
    fails at start-up naming it."""
    cfg = load_config("tiny", environ={"VISTA__SERVING__STALE_SUMMARIES": "score",
                                       "VISTA__SERVING__MAX_BODY_BYTES": "65536"})  # fmt: skip
    assert cfg.serving == ServingConfig(max_body_bytes=65536, stale_summaries="score")
    with pytest.raises(ConfigError, match=r"serving\.max_body_bytes"):
        load_config("tiny", environ={"VISTA__SERVING__MAX_BODY_BYTES": "10"})
    with pytest.raises(ConfigError, match=r"serving\.stale_summaries"):
        load_config("tiny", environ={"VISTA__SERVING__STALE_SUMMARIES": "fresh"})


def test_a_smaller_body_limit_is_applied(served):
    service = served[3]
    client = TestClient(serving.create_app(service, ServingConfig(max_body_bytes=4096)))
    response = client.post("/score", content=padded(doc(), 4097),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 413
    assert "limit of 4096 bytes" in response.json()["detail"][0]["msg"]
    assert client.post("/score", content=padded(doc(), 4096),
                       headers={"content-type": "application/json"}).status_code == 200  # fmt: skip


def test_vista_serve_listens_on_loopback_by_default():
    assert inspect.signature(cli.serve).parameters["host"].default == "127.0.0.1"


# ------------------------------------------------------------------ fuzzing /score
FUZZ_EXAMPLES = 2500
RAW_TOKENS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e18", "1.0", "-0",
              "0.5", "9" * 5000, "-" + "9" * 30, str(2**63), str(2**64), str(-(2**63)), "true",
              "null", '"1"', "[]", "{}", "01", "0x10", "+1", ".5", "1_000"]  # fmt: skip


def fuzz_bodies(user: int, limit: int):
    """Request bodies as bytes: random JSON documents, valid bodies (ids anywhere in
    0..2**63-1), valid bodies whose values are replaced by anything (huge and negative numbers, NaN tokens, wrong types, extra and
    duplicated keys), byte mutations of a valid body, random bytes, and a few bodies of
    the maximum size."""
    from hypothesis import strategies as st

    leaves = (st.none() | st.booleans() | st.integers() | st.integers(-(10**40), 10**40)
              | st.floats() | st.text(max_size=12))  # fmt: skip
    values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                          max_leaves=16)  # fmt: skip
    token = (st.sampled_from(RAW_TOKENS) | st.integers().map(str)
             | values.map(json.dumps))  # fmt: skip
    key = st.sampled_from(["user_id", "candidates", "item_id", "category", "x"]) | st.text(
        max_size=6
    )

    @st.composite
    def templated(draw) -> bytes:
        """A request's text with tokens put where values go, and keys that may repeat."""
        items = [f'"{draw(st.sampled_from(["item_id", "category", "x"]) | key)}": {draw(token)}'
                 for _ in range(draw(st.integers(0, 4)))]  # fmt: skip
        cands = ", ".join("{" + ", ".join(items) + "}" for _ in range(draw(st.integers(0, 3))))
        fields = [f'"user_id": {draw(token)}', f'"candidates": [{cands}]']
        fields += [
            f"{json.dumps(draw(key))}: {draw(token)}" for _ in range(draw(st.integers(0, 2)))
        ]
        order = draw(st.permutations(fields))
        return ("{" + ", ".join(order[: draw(st.integers(0, len(order)))]) + "}").encode()

    valid = doc(user_id=user, candidates=candidates(3, seed=9))

    @st.composite
    def mutated(draw) -> bytes:
        body = bytearray(valid)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(body)))
            what = draw(st.sampled_from(["insert", "replace", "delete"]))
            chunk = draw(st.binary(min_size=1, max_size=4))
            if what == "insert":
                body[at:at] = chunk
            elif what == "replace":
                body[at : at + len(chunk)] = chunk
            else:
                del body[at : at + len(chunk)]
        return bytes(body)

    shaped = st.fixed_dictionaries(
        {"user_id": values | st.integers(-(2**64), 2**64), "candidates": st.lists(
            st.dictionaries(key, values | st.integers(-(2**64), 2**64), max_size=3), max_size=4)},
        optional={"x": values},
    ).map(lambda body: json.dumps(body).encode())  # fmt: skip
    ids = st.integers(0, serving.MAX_ID) | st.sampled_from([0, serving.MAX_ID])
    valid_bodies = st.builds(
        lambda u, c: doc(user_id=u, candidates=c), st.sampled_from([user, 10**12]) | ids,
        st.lists(st.fixed_dictionaries({"item_id": ids, "category": ids}), min_size=1,
                 max_size=20),
    )  # fmt: skip
    big = st.sampled_from([
        max_size_body(user, limit), max_size_body(user, limit, valid=False),
        b"[" * limit, padded(doc(user_id="x" * (limit - 100)), limit),
    ])  # fmt: skip
    return (values.map(lambda v: json.dumps(v).encode()) | templated() | mutated() | shaped
            | st.binary(max_size=64) | valid_bodies | big)  # fmt: skip


def test_fuzzed_bodies_never_get_500_and_memory_comes_back(served, tmp_path):
    """Thousands of generated bodies against `vista serve` (a process of its own, over
    HTTP): every answer is 200, 413 or 422 (never 500), and the server holds no more than
    10% more memory afterwards than after a warm-up with the same kinds of body."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.configuration import set_hypothesis_home_dir

    # Hypothesis caches (constants, unicode data) under ./.hypothesis by default: the repo
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    cfg, as_of, _, _, _ = served
    user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
    headers = {"content-type": "application/json"}
    statuses: Counter[int] = Counter()
    bodies = fuzz_bodies(user, cfg.serving.max_body_bytes)
    # a ttl that keeps the dated tiny snapshot fresh: valid bodies reach the ranker
    with vista_serve(cfg, VISTA__FEATURES__TTL_DAYS="36500") as (server, base), \
            httpx.Client(base_url=base, timeout=60) as client:  # fmt: skip

        def rss_bytes() -> int:
            return psutil.Process(server.pid).memory_info().rss

        # derandomized: the same bodies on every run, so a failure in CI reproduces
        # anywhere; database=None: nothing written under the repo
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(body=bodies)
        def post(body: bytes) -> None:
            response = client.post("/score", content=body, headers=headers)
            statuses[response.status_code] += 1
            assert response.status_code in (200, 413, 422), (response.status_code, body[:200])
            assert len(response.content) <= max(ANSWER_LIMIT, 64 * serving.MAX_CANDIDATES)

        for _ in range(3):  # warm-up: allocator pools and caches of every path reach their size
            for body in [max_size_body(user, cfg.serving.max_body_bytes),
                         max_size_body(user, cfg.serving.max_body_bytes, valid=False),
                         doc(user_id=user, candidates=candidates(50))]:  # fmt: skip
                client.post("/score", content=body, headers=headers)
        before = rss_bytes()
        started = time.perf_counter()
        try:
            post()
        finally:
            set_hypothesis_home_dir(None)
        seconds = time.perf_counter() - started
        after = rss_bytes()
        health = client.get("/health").json()
    print(f"fuzz: {sum(statuses.values())} bodies in {seconds:.1f} s, statuses {dict(statuses)},"
          f" server RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB")  # fmt: skip
    assert sum(statuses.values()) >= FUZZ_EXAMPLES * 0.9
    assert statuses[200] > 0
    assert statuses[422] > 0
    assert health["answers_by_summary_status"].get("fresh", 0) > 0, health
    assert after <= before * 1.10, f"RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB"


@contextlib.contextmanager
def vista_serve(cfg, **env: str):
    """`vista serve` as a user starts it, on the state of ``cfg``: a uvicorn process on
    loopback; yields (process, base URL) once /health answers."""
    port = free_port()
    env = {
        **os.environ, **env,
        "VISTA__PATHS__STATE": str(cfg.paths.state),
        "VISTA__PATHS__LAKE": str(cfg.paths.lake),
        "VISTA__PATHS__REPORTS": str(cfg.paths.reports),
    }  # fmt: skip
    command = [sys.executable, "-m", "vista.cli", "serve", "-p", "tiny", "--port", str(port)]
    # its log to a file: a pipe nobody reads fills up and blocks the server
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log,
                                  text=True)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_health(base, server, lambda: log.seek(0) or log.read())
            yield server, base
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.mark.slow
def test_vista_serve_answers_over_http(served):
    """`vista serve` as a user starts it: a uvicorn process on loopback."""
    cfg, as_of, _, _, _ = served
    with vista_serve(cfg) as (_, base):
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.json()["summarizer_version"] == state.current_summarizer(cfg)["version"]
        user = int(pipeline.read_summaries(cfg, as_of)["user_id"].iloc[0])
        response = httpx.post(f"{base}/score",
                              json={"user_id": user, "candidates": candidates(5)}, timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text
        # `vista serve` tells time by the real clock: the tiny world's snapshot is dated,
        # and is stale once features.ttl_days have passed since it
        age = dt.datetime.now(dt.UTC) - as_of
        expected = "stale" if age > dt.timedelta(days=cfg.features.ttl_days) else "fresh"
        assert response.json()["summary_status"] == expected
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["answers_by_summary_status"] == {expected: 1}
        bad = httpx.post(f"{base}/score",
                         json={"user_id": user, "candidates": [{"item_id": "x"}]}, timeout=30)  # fmt: skip
        assert bad.status_code == 422
