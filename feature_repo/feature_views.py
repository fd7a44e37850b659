"""Feature views: the stored summaries, their decoded form, and the baselines' raw history."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

import pandas as pd
from feast import FeatureView, Field, OnDemandFeatureView
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Bytes, Float32, Int64, String

from feature_repo.data_sources import Sources
from feature_repo.entities import Entities
from feature_repo.settings import RepoSettings


class Views(NamedTuple):
    user_summary_encoded: FeatureView
    user_summary: OnDemandFeatureView
    user_history_tail: FeatureView
    user_category_history: FeatureView


def feature_views(settings: RepoSettings, entities: Entities, sources: Sources) -> Views:
    """The views over ``sources``; ``summary`` is K x D = ``settings.n_tokens`` x
    ``settings.token_dim`` float32 values, flat and token-major."""
    n_tokens, token_dim = settings.n_tokens, settings.token_dim
    # K and D are recorded so readers can reshape the flat vector without the model.
    tags = {
        "n_tokens": str(n_tokens),
        "token_dim": str(token_dim),
        "layout": "token-major",
        "summarizer_version": settings.summarizer_version,
        "owner": "vista",
    }
    ttl = timedelta(days=settings.ttl_days)
    user, category = entities.user, entities.category

    user_summary_encoded = FeatureView(
        name="user_summary_encoded",
        entities=[user],
        # a summary older than this is not served: the refresh cadence must beat it
        ttl=ttl,
        schema=[
            Field(
                name="summary_codes",
                dtype=Bytes,
                description=f"{n_tokens} x {token_dim} summary tokens, encoded by "
                "summary_codec, token-major (token 0's D values first).",
            ),
            Field(name="summary_scales", dtype=Array(Float32), description="int8: one per token"),
            Field(name="summary_codec", dtype=String, description="int8, bf16 or float32"),
            Field(name="history_length", dtype=Int64, description="events summarized"),
            Field(name="is_empty_history", dtype=Bool, description="no events before as_of"),
            Field(name="summarizer_version", dtype=String, description="content hash of the model"),
        ],
        source=sources.user_summaries,
        online=True,
        tags={**tags, "codec": settings.codec},
        description="Cached VISTA summary of each user's lifelong history, as stored (compact).",
    )

    @on_demand_feature_view(
        sources=[user_summary_encoded],
        # no field description: Feast 0.67 drops it from an on-demand view's registry copy,
        # and the feature service's copy then no longer matches ("does not have summary")
        schema=[Field(name="summary", dtype=Array(Float32))],
        mode="pandas",
        tags=tags,
        description=f"summary: {n_tokens} x {token_dim} summary tokens decoded to float32 on "
        "read (token-major: token 0's D values first), offline and online alike.",
    )
    def user_summary(inputs: pd.DataFrame) -> pd.DataFrame:
        # Feast stores this function's source in its registry and runs it without this
        # module's globals, so the rows describe their own shape. `feast apply` also probes
        # it with placeholder values: a row that does not decode becomes NaNs, which the
        # ranker's training-set check rejects by name.
        import pandas as pd

        from vista.core.summary_codec import decode_rows

        return pd.DataFrame({"summary": decode_rows(inputs)}, index=inputs.index)

    # Raw history for the baseline rankers (offline only: they are evaluated, not served).
    user_history_tail = FeatureView(
        name="user_history_tail",
        entities=[user],
        ttl=ttl,
        schema=[
            Field(name="raw_history_length", dtype=Int64, description="events before as_of"),
            Field(
                name="tail_item_ids", dtype=Array(Int64), description="last events, oldest first"
            ),
            Field(name="tail_categories", dtype=Array(Int64), description="their categories"),
        ],
        source=sources.user_history_tail,
        online=False,
        tags={"owner": "vista", "used_by": "din_last100, full_attention"},
        description="The user's most recent raw events (DIN reads the last 100, full attention "
        "all of them).",
    )

    user_category_history = FeatureView(
        name="user_category_history",
        entities=[user, category],
        ttl=ttl,
        schema=[
            Field(
                name="category_item_ids",
                dtype=Array(Int64),
                description="the user's items of this category, most recent first, top 100",
            ),
        ],
        source=sources.user_category_histories,
        online=False,
        tags={"owner": "vista", "used_by": "sim_category"},
        description="SIM-style hard search, precomputed: joined on the candidate's category.",
    )
    return Views(user_summary_encoded, user_summary, user_history_tail, user_category_history)
