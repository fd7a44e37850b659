"""Feature services: the features one model version reads, by name."""

from __future__ import annotations

from typing import NamedTuple

from feast import FeatureService

from feature_repo.feature_views import Views


class Services(NamedTuple):
    ranker_v1: FeatureService
    ranker_evaluation: FeatureService


def feature_services(views: Views) -> Services:
    """``ranker_v1`` (what serving's ranker reads) and ``ranker_evaluation`` (VISTA and
    the raw-history baselines side by side)."""
    stored_metadata = views.user_summary_encoded[
        ["history_length", "is_empty_history", "summarizer_version"]
    ]
    # the decoded tokens, plus the stored row's metadata (which model, how long a history)
    ranker_v1 = FeatureService(
        name="ranker_v1",
        features=[views.user_summary, stored_metadata],
        description="Features of ranker_v1: the candidate attends to the user's summary tokens "
        "(decoded to float32 on read).",
    )
    # everything the evaluation compares: VISTA's summaries and the baselines' raw history,
    # joined point-in-time from the same snapshots
    ranker_evaluation = FeatureService(
        name="ranker_evaluation",
        features=[
            views.user_summary,
            stored_metadata,
            views.user_history_tail,
            views.user_category_history,
        ],
        description="VISTA and the raw-history baselines (DIN, SIM, full attention) side by side.",
    )
    return Services(ranker_v1, ranker_evaluation)
