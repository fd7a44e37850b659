import os
from datetime import timedelta

from data_sources import user_summaries_source
from entities import user
from feast import FeatureView, Field
from feast.types import Array, Bool, Float32, Int64, String

# K and D are recorded so readers can reshape the flat vector without the model.
N_TOKENS = int(os.environ.get("VISTA_SUMMARY_TOKENS", "16"))
TOKEN_DIM = int(os.environ.get("VISTA_SUMMARY_DIM", "32"))

user_summary_v1 = FeatureView(
    name="user_summary_v1",
    entities=[user],
    # a summary older than this is not served: the refresh cadence must beat it
    ttl=timedelta(days=int(os.environ.get("VISTA_FEATURE_TTL_DAYS", "14"))),
    schema=[
        Field(
            name="summary",
            dtype=Array(Float32),
            description=f"{N_TOKENS} x {TOKEN_DIM} summary tokens, flattened token-major "
            "(row-major: token 0's D values first).",
        ),
        Field(name="history_length", dtype=Int64, description="events summarized"),
        Field(name="is_empty_history", dtype=Bool, description="no events before as_of"),
        Field(name="summarizer_version", dtype=String, description="content hash of the model"),
    ],
    source=user_summaries_source,
    online=True,
    tags={
        "n_tokens": str(N_TOKENS),
        "token_dim": str(TOKEN_DIM),
        "layout": "token-major",
        "owner": "vista",
    },
    description="Cached VISTA summary of each user's lifelong history.",
)
