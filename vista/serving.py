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
  they mean the ranker and the summaries were not rolled out together.
Malformed requests are refused with 422 and the failing field's location.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from vista.config import VistaConfig

log = logging.getLogger(__name__)

MAX_CANDIDATES = 10_000
SummaryStatus = Literal["fresh", "cold_start", "version_mismatch"]


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[StrictInt, Field(ge=0, description="the candidate item's id")]
    category: Annotated[StrictInt, Field(ge=0, description="the candidate item's category id")]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[StrictInt, Field(description="the user to rank for")]
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
    ranker: str
    summarizer_version: str


@dataclass(frozen=True)
class UserSummary:
    """What the online store holds for one user (all None when it holds nothing)."""

    tokens: np.ndarray | None
    history_length: int | None
    summarizer_version: str | None


def summary_status(found: UserSummary, ranker_version: str, width: int) -> SummaryStatus:
    """Whether the stored summary may be scored by a ranker of ``ranker_version``."""
    if found.tokens is None:
        return "cold_start"
    if found.summarizer_version != ranker_version or found.tokens.size != width:
        return "version_mismatch"
    return "fresh"


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

        row = online_summaries(self.store, [user_id])
        tokens = row["summary"][0]
        length = row["history_length"][0]
        return UserSummary(
            tokens=None if tokens is None else np.asarray(tokens, dtype=np.float32),
            history_length=None if length is None else int(length),
            summarizer_version=row["summarizer_version"][0],
        )


class ScoringService:
    """The request path, apart from HTTP: fetch, check the version, score."""

    def __init__(self, scorer: RankerScorer, summaries: OnlineSummaries) -> None:
        self.scorer = scorer
        self.summaries = summaries
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def score(self, request: ScoreRequest) -> ScoreResponse:
        found = self.summaries.fetch(request.user_id)
        status = summary_status(found, self.scorer.summarizer_version, self.scorer.width)
        if status == "version_mismatch":
            log.warning(
                "user %s: stored summary of summarizer %s, ranker trained on %s: cold start",
                request.user_id, found.summarizer_version, self.scorer.summarizer_version,
            )  # fmt: skip
        items = np.fromiter((c.item_id for c in request.candidates), np.int64)
        categories = np.fromiter((c.category for c in request.candidates), np.int64)
        probs = self.scorer.score(found.tokens if status == "fresh" else None, items, categories)
        with self._lock:
            self.counts[status] += 1
        return ScoreResponse(
            user_id=request.user_id,
            item_ids=items.tolist(),
            scores=probs.astype(float).tolist(),
            summary_status=status,
            history_length=found.history_length if status == "fresh" else None,
            ranker=self.scorer.metadata["name"],
            summarizer_version=self.scorer.summarizer_version,
        )


def load_service(cfg: VistaConfig) -> ScoringService:
    """The current ranker and the configured online store; fails at start-up, not at
    the first request, when either is missing."""
    from pathlib import Path

    from models.ranker import load_ranker
    from vista import features
    from vista.pipeline import current_ranker

    pointer = current_ranker(cfg)
    model, metadata = load_ranker(Path(pointer["path"]))
    store = features.feature_store(cfg)
    return ScoringService(RankerScorer(model, metadata), OnlineSummaries(store))


def create_app(service: ScoringService):
    """The FastAPI app over ``service``: POST /score, GET /health."""
    from fastapi import FastAPI

    app = FastAPI(
        title="VISTA online scoring",
        description="Scores candidate items for a user from the cached VISTA summary tokens.",
    )
    started = time.time()

    # plain def: FastAPI runs it in its thread pool, so a slow store read never blocks
    # the event loop
    @app.post("/score", response_model=ScoreResponse)
    def score(request: ScoreRequest) -> ScoreResponse:
        return service.score(request)

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "ranker": service.scorer.metadata["name"],
            "ranker_as_of": service.scorer.metadata.get("as_of"),
            "summarizer_version": service.scorer.summarizer_version,
            "summary_tokens": service.scorer.width,
            "uptime_s": round(time.time() - started, 1),
            "answers_by_summary_status": dict(service.counts),
        }

    return app
