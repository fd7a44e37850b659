import os
from datetime import timedelta

import pandas as pd
from data_sources import (
    SUMMARIZER_VERSION,
    user_category_histories_source,
    user_history_tail_source,
    user_summaries_source,
)
from entities import category, user
from feast import FeatureView, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Bytes, Float32, Int64, String

# K and D are recorded so readers can reshape the flat vector without the model.
N_TOKENS = int(os.environ.get("VISTA_SUMMARY_TOKENS", "16"))
TOKEN_DIM = int(os.environ.get("VISTA_SUMMARY_DIM", "32"))
CODEC = os.environ.get("VISTA_SUMMARY_CODEC", "int8")
TAGS = {
    "n_tokens": str(N_TOKENS),
    "token_dim": str(TOKEN_DIM),
    "layout": "token-major",
    "summarizer_version": SUMMARIZER_VERSION,
    "owner": "vista",
}

TTL = timedelta(days=int(os.environ.get("VISTA_FEATURE_TTL_DAYS", "14")))

user_summary_encoded = FeatureView(
    name="user_summary_encoded",
    entities=[user],
    # a summary older than this is not served: the refresh cadence must beat it
    ttl=TTL,
    schema=[
        Field(
            name="summary_codes",
            dtype=Bytes,
            description=f"{N_TOKENS} x {TOKEN_DIM} summary tokens, encoded by summary_codec, "
            "token-major (token 0's D values first).",
        ),
        Field(name="summary_scales", dtype=Array(Float32), description="int8: one per token"),
        Field(name="summary_codec", dtype=String, description="int8, bf16 or float32"),
        Field(name="history_length", dtype=Int64, description="events summarized"),
        Field(name="is_empty_history", dtype=Bool, description="no events before as_of"),
        Field(name="summarizer_version", dtype=String, description="content hash of the model"),
    ],
    source=user_summaries_source,
    online=True,
    tags={**TAGS, "codec": CODEC},
    description="Cached VISTA summary of each user's lifelong history, as stored (compact).",
)


@on_demand_feature_view(
    sources=[user_summary_encoded],
    # no field description: Feast 0.67 drops it from an on-demand view's registry copy,
    # and the feature service's copy then no longer matches ("does not have summary")
    schema=[Field(name="summary", dtype=Array(Float32))],
    mode="pandas",
    tags=TAGS,
    description=f"summary: {N_TOKENS} x {TOKEN_DIM} summary tokens decoded to float32 on "
    "read (token-major: token 0's D values first), offline and online alike.",
)
def user_summary(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function in its registry and runs it without this module's
    # globals, so the rows describe their own shape. `feast apply` also probes it with
    # placeholder values: a row that does not decode becomes NaNs, which the ranker's
    # training-set check rejects by name.
    import pandas as pd

    from vista.core.summary_codec import decode_rows

    return pd.DataFrame({"summary": decode_rows(inputs)}, index=inputs.index)


# Raw history for the baseline rankers (offline only: they are evaluated, not served).
user_history_tail = FeatureView(
    name="user_history_tail",
    entities=[user],
    ttl=TTL,
    schema=[
        Field(name="raw_history_length", dtype=Int64, description="events before as_of"),
        Field(name="tail_item_ids", dtype=Array(Int64), description="last events, oldest first"),
        Field(name="tail_categories", dtype=Array(Int64), description="their categories"),
    ],
    source=user_history_tail_source,
    online=False,
    tags={"owner": "vista", "used_by": "din_last100, full_attention"},
    description="The user's most recent raw events (DIN reads the last 100, full attention "
    "all of them).",
)

user_category_history = FeatureView(
    name="user_category_history",
    entities=[user, category],
    ttl=TTL,
    schema=[
        Field(
            name="category_item_ids",
            dtype=Array(Int64),
            description="the user's items of this category, most recent first, top 100",
        ),
    ],
    source=user_category_histories_source,
    online=False,
    tags={"owner": "vista", "used_by": "sim_category"},
    description="SIM-style hard search, precomputed: joined on the candidate's category.",
)
