"""Online scoring: for one user and N candidate items, read the user's summary tokens
from the Feast online store and score the candidates with the trained ranker.

The cost of a request is one online-store read of K x D values plus N x K attention,
whatever the user's history length: the history was summarized offline.

Three answers a client must be able to rely on:
- a user with a summary of the ranker's summarizer version is scored from it
  (``summary_status: "fresh"``);
- a user without one (new, or not materialized yet) gets the cold-start answer: the
  candidates scored with the all-zero summary, which is what the ranker saw in training
  for impressions that had no summary yet (``"cold_start"``);
- a user whose stored summary comes from another summarizer version is never scored
  from it: its tokens live in another space than the ranker was trained on. The user
  gets the cold-start answer (``"version_mismatch"``), and /health counts these, as
  they mean the ranker and the summaries were not rolled out together;
- a user whose stored summary is older than the feature view's ttl
  (``features.ttl_days``) is answered as ``"stale"``: Feast drops such a summary from
  training sets but still serves it online, so the age is checked here. It is scored
  as ``serving.stale_summaries`` says (cold start by default), and /health counts these
  too: they mean summaries stopped being refreshed.

A candidate needs only its item id: its category (the one other item attribute the
ranker reads) is looked up in the items the lake holds (vista/items.py), read when the
service starts. A candidate that carries a category is scored with it, as before; one
whose item the lake does not hold is scored with the unknown category (the ranker's
unknown row), counted in the answer (``unknown_items``) and in /health.

Requests are untrusted (vista/http_input.py): a body over ``serving.max_body_bytes`` gets
413; any other body that is not a valid request gets 422 naming the failing field's
location, never echoing the input; parsing, validation and scoring run in a worker thread,
so a large request never holds up the event loop (and /health).

Long because it holds the service's whole contract (each answer above, /health's
counters, the request checks' wiring) in the one place a service owner reads.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.requests import Request

from vista import http_input
from vista.core.config import ServingConfig, VistaConfig
from vista.items import ItemCatalog

log = logging.getLogger(__name__)

MAX_CANDIDATES = 10_000
# ids are int64 in the lake and the online store: 0 <= id < 2**63
MAX_ID = 2**63 - 1
SummaryStatus = Literal["fresh", "cold_start", "version_mismatch", "stale"]
StalePolicy = Literal["cold_start", "score"]
Id = Annotated[StrictInt, Field(ge=0, le=MAX_ID)]


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[Id, Field(description="the candidate item's id (0 <= id < 2**63)")]
    category: Annotated[
        Id | None,
        Field(description="the item's category id; left out (or null), the service looks "
              "it up in the items the lake holds, and an item it does not hold is scored "
              "with the unknown category"),
    ] = None  # fmt: skip


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[Id, Field(description="the user to rank for (0 <= id < 2**63)")]
    candidates: Annotated[
        list[Candidate],
        Field(min_length=1, max_length=MAX_CANDIDATES, description="items to score"),
    ]


class ScoreResponse(BaseModel):
    user_id: int
    # both in the order of the request's candidates: plain lists, as a thousand small
    # objects would cost more to build and check than scoring them does
    item_ids: list[int]
    scores: list[float]
    summary_status: SummaryStatus
    history_length: int | None
    # candidates without a category whose item the lake does not hold: scored as unknown
    unknown_items: int
    ranker: str
    summarizer_version: str


@dataclass(frozen=True)
class UserSummary:
    """What the online store holds for one user (all None when it holds nothing);
    ``event_timestamp``: the snapshot the summary was computed at."""

    tokens: np.ndarray | None
    history_length: int | None
    summarizer_version: str | None
    event_timestamp: dt.datetime | None = None


def summary_status(
    found: UserSummary, ranker_version: str, width: int, now: dt.datetime, ttl: dt.timedelta
) -> SummaryStatus:
    """Whether the stored summary may be scored by a ranker of ``ranker_version`` at
    ``now``. Older than ``ttl`` is stale, as in Feast's offline join (a summary exactly
    ``ttl`` old is still joined there); one of unknown age is stale too, as nothing says
    it is recent."""
    if found.tokens is None:
        return "cold_start"
    if found.summarizer_version != ranker_version or found.tokens.size != width:
        return "version_mismatch"
    if found.event_timestamp is None or now - found.event_timestamp > ttl:
        return "stale"
    return "fresh"


def scored_from_summary(status: SummaryStatus, stale: StalePolicy) -> bool:
    """Whether an answer of ``status`` reads the stored tokens (else: cold start)."""
    return status == "fresh" or (status == "stale" and stale == "score")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RankerScorer:
    """The trained ranker, scoring one user's candidates against K summary tokens."""

    def __init__(self, model, metadata: dict) -> None:
        self.model = model
        self.metadata = metadata
        shape = model.spec.summary
        self.width = shape.n_tokens * shape.token_dim
        self.summarizer_version = metadata["summarizer_version"]

    def score(self, tokens: np.ndarray | None, items: np.ndarray, categories: np.ndarray):
        """Click probabilities of the candidates; ``tokens`` None scores cold start."""
        import torch

        from models.ranker import score_one_user
        from models.summarizer import item_index

        spec = self.model.spec
        summary = np.zeros((1, self.width), np.float32) if tokens is None else tokens[None, :]
        empty = torch.zeros((1, 0), dtype=torch.long)
        with torch.inference_mode():
            logits = score_one_user(
                self.model,
                (
                    torch.from_numpy(item_index(items, spec.vocab_size)),
                    torch.from_numpy(item_index(categories, spec.category_vocab_size)),
                ),
                torch.from_numpy(np.ascontiguousarray(summary, dtype=np.float32)),
                empty,
                empty,
            )
            return torch.sigmoid(logits).numpy()


class OnlineSummaries:
    """Reads one user's summary through the Feast SDK (SQLite or Redis, per config)."""

    def __init__(self, store) -> None:
        self.store = store

    def fetch(self, user_id: int) -> UserSummary:
        from vista.features import online_summaries

        row = online_summaries(self.store, [user_id], event_timestamps=True)
        tokens = row["summary"][0]
        length = row["history_length"][0]
        return UserSummary(
            tokens=None if tokens is None else np.asarray(tokens, dtype=np.float32),
            history_length=None if length is None else int(length),
            summarizer_version=row["summarizer_version"][0],
            event_timestamp=stored_at(row["history_length__ts"][0]) if tokens is not None else None,
        )


def stored_at(seconds: int | None) -> dt.datetime | None:
    """A Feast online row's event timestamp (whole seconds since the epoch; 0 or none
    when the row has none)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC) if seconds else None


class ScoringService:
    """The request path, apart from HTTP: fetch, check version and age, score.

    ``clock`` is the service's "now" for the age check (injectable: tests and benches on
    synthetic dates serve as of their snapshot)."""

    def __init__(
        self,
        scorer: RankerScorer,
        summaries: OnlineSummaries,
        ttl: dt.timedelta = dt.timedelta(days=14),
        stale: StalePolicy = "cold_start",
        clock: Callable[[], dt.datetime] = utc_now,
        catalog: ItemCatalog | None = None,
    ) -> None:
        self.scorer = scorer
        self.summaries = summaries
        self.ttl = ttl
        self.stale = stale
        self.clock = clock
        self.catalog = catalog if catalog is not None else ItemCatalog.empty()
        self.counts: Counter[str] = Counter()
        self.item_counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def candidate_categories(self, request: ScoreRequest) -> tuple[np.ndarray, np.ndarray, int]:
        """(item ids, categories, how many items were unknown): each candidate's own
        category, else its item's in the catalog, else the unknown category."""
        n = len(request.candidates)
        items = np.fromiter((c.item_id for c in request.candidates), np.int64, n)
        missing = np.fromiter((c.category is None for c in request.candidates), bool, n)
        categories = np.fromiter((c.category or 0 for c in request.candidates), np.int64, n)
        if not missing.any():
            return items, categories, 0
        found, known = self.catalog.categories_of(items[missing])
        categories[missing] = found
        unknown = int((~known).sum())
        with self._lock:
            self.item_counts["looked_up"] += int(missing.sum())
            self.item_counts["unknown"] += unknown
        if unknown:
            log.info("user %s: %d candidate item(s) not in the lake's items: scored as unknown",
                     request.user_id, unknown)  # fmt: skip
        return items, categories, unknown

    def score(self, request: ScoreRequest) -> ScoreResponse:
        found = self.summaries.fetch(request.user_id)
        status = summary_status(found, self.scorer.summarizer_version, self.scorer.width,
                                self.clock(), self.ttl)  # fmt: skip
        if status == "version_mismatch":
            log.warning(
                "user %s: stored summary of summarizer %s, ranker trained on %s: cold start",
                request.user_id, found.summarizer_version, self.scorer.summarizer_version,
            )  # fmt: skip
        elif status == "stale":
            log.warning(
                "user %s: stored summary of %s is older than features.ttl_days (%s): %s",
                request.user_id, found.event_timestamp, self.ttl.days,
                "scored from it" if self.stale == "score" else "cold start",
            )  # fmt: skip
        from_summary = scored_from_summary(status, self.stale)
        items, categories, unknown = self.candidate_categories(request)
        probs = self.scorer.score(found.tokens if from_summary else None, items, categories)
        with self._lock:
            self.counts[status] += 1
        return ScoreResponse(
            user_id=request.user_id,
            item_ids=items.tolist(),
            scores=probs.astype(float).tolist(),
            summary_status=status,
            history_length=found.history_length if from_summary else None,
            unknown_items=unknown,
            ranker=self.scorer.metadata["name"],
            summarizer_version=self.scorer.summarizer_version,
        )

    def answer_counts(self) -> dict[str, int]:
        with self._lock:  # a copy while a worker thread may be adding a status
            return dict(self.counts)

    def item_lookups(self) -> dict[str, int]:
        """The catalog's size, candidates whose category was looked up, and those of
        them whose item the lake does not hold (scored as unknown)."""
        with self._lock:
            return {"items_known": len(self.catalog),
                    "candidates_looked_up": self.item_counts["looked_up"],
                    "unknown_items": self.item_counts["unknown"]}  # fmt: skip


def freeze_startup_heap() -> None:
    """Put every object alive at start-up (torch, Feast, the model: several 10^5 of them)
    out of the garbage collector's reach. A full collection walks every tracked object
    holding the GIL; a max-size request makes ~10^5 short-lived objects, so a run of them
    set off full collections that stalled the whole process, /health included, for half a
    second each (tests/test_serving.py measures /health meanwhile). Objects made after this
    are collected as usual."""
    gc.collect()
    gc.freeze()


def load_service(cfg: VistaConfig, clock: Callable[[], dt.datetime] = utc_now) -> ScoringService:
    """The current ranker, the configured online store and the lake's items; fails at
    start-up, not at the first request, when any is missing."""
    from pathlib import Path

    from models.ranker import load_ranker
    from vista import features
    from vista.items import read_item_catalog
    from vista.state import current_ranker

    pointer = current_ranker(cfg)
    model, metadata = load_ranker(Path(pointer["path"]))
    store = features.feature_store(cfg)
    catalog = read_item_catalog(cfg)
    log.info("item catalog: %d items from the lake's events and impressions", len(catalog))
    return ScoringService(RankerScorer(model, metadata), OnlineSummaries(store),
                          ttl=dt.timedelta(days=cfg.features.ttl_days),
                          stale=cfg.serving.stale_summaries, clock=clock,
                          catalog=catalog)  # fmt: skip


def _inline_defs(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its ``#/$defs/X`` references replaced by the definitions: a
    request body given through ``openapi_extra`` cannot point into ``$defs``."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline_defs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_defs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_defs(v, defs) for v in schema]
    return schema


# the body /docs' "Try it out" starts from: without it Swagger UI builds one from the
# schema's bounds, 2**63-1, which JavaScript rounds up to 2**63, past the bound: a 422
SCORE_EXAMPLE = {"user_id": 1, "candidates": [{"item_id": 17, "category": 3},
                                              {"item_id": 42, "category": 5}]}  # fmt: skip


def score_request_openapi() -> dict[str, Any]:
    """/score's request body in the OpenAPI document (the endpoint reads the body itself)."""
    schema = ScoreRequest.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": _inline_defs(schema, schema.get("$defs", {})), "example": SCORE_EXAMPLE}}}}  # fmt: skip


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "body over serving.max_body_bytes"},
    415: {"description": "Content-Type is not JSON"},
    422: {"description": "not a valid request: detail names each failing field's location "
          "(the first 20; errors_total counts them all); the input is never echoed"},
}  # fmt: skip


def json_response(status: int, content: Any):
    from fastapi.responses import Response

    # ensure_ascii: a lone surrogate in a key (a \ud800 escape) stays writable
    return Response(json.dumps(content, ensure_ascii=True), status_code=status,
                    media_type="application/json")  # fmt: skip


def unprocessable(errors: list[dict[str, Any]], total: int):
    return json_response(422, http_input.error_body(errors, total))


def answer_score(service: ScoringService, body: bytes):
    """The whole work of one /score request from its raw body (in a worker thread)."""
    from fastapi.responses import Response

    try:
        request = ScoreRequest.model_validate(http_input.parse_json(body))
    except http_input.BadBodyError as exc:
        return unprocessable(exc.errors, len(exc.errors))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        shown = http_input.validation_errors(errors[: http_input.MAX_ERRORS], ("body",))
        return unprocessable(shown, exc.error_count())
    return Response(service.score(request).model_dump_json(), media_type="application/json")


def create_app(service: ScoringService, settings: ServingConfig | None = None):
    """The FastAPI app over ``service``: POST /score, GET /health, API docs at /docs and
    /redoc (assets served from the fastapi-offline package: no CDN)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool

    from vista import api_docs

    settings = settings or ServingConfig()
    app = FastAPI(
        title="VISTA online scoring",
        description="Scores candidate items for a user from the cached VISTA summary tokens.",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(http_input.BodyLimit, max_bytes=settings.max_body_bytes)
    api_docs.add_offline_docs(app)
    started = time.time()

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        # FastAPI's own answer echoes the input; this one names the location only
        errors = list(exc.errors())
        shown = http_input.validation_errors(errors[: http_input.MAX_ERRORS])
        return unprocessable(shown, len(errors))

    @app.post("/score", response_model=ScoreResponse, responses=ERROR_RESPONSES,
              openapi_extra=score_request_openapi())  # fmt: skip
    async def score(request: Request):
        content_type = request.headers.get("content-type")
        if not http_input.is_json_media_type(content_type):
            message = f"Content-Type {content_type!r} is not JSON: send application/json"
            return json_response(415, http_input.error_body(
                [http_input.error(["header", "content-type"], message, "media_type")], 1))  # fmt: skip
        body = await request.body()  # BodyLimit stops it past serving.max_body_bytes
        # parsing, validation, the store read and scoring all run in a worker thread: a
        # large or slow request holds that thread, never the event loop
        return await run_in_threadpool(answer_score, service, body)

    # async: answered on the event loop itself, so it answers even while every worker
    # thread is busy scoring
    @app.get("/health")
    async def health() -> dict:
        return {
            "status": "ok",
            "ranker": service.scorer.metadata["name"],
            "ranker_as_of": service.scorer.metadata.get("as_of"),
            "summarizer_version": service.scorer.summarizer_version,
            "summary_tokens": service.scorer.width,
            "summary_ttl_days": service.ttl.days,
            "stale_summaries": service.stale,
            "uptime_s": round(time.time() - started, 1),
            "answers_by_summary_status": service.answer_counts(),
            **service.item_lookups(),
        }

    return app
