from feast import FeatureService
from feature_views import (
    user_category_history,
    user_history_tail,
    user_summary,
    user_summary_encoded,
)

# the decoded tokens, plus the stored row's metadata (which model, how long a history)
ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[
        user_summary,
        user_summary_encoded[["history_length", "is_empty_history", "summarizer_version"]],
    ],
    description="Features of ranker_v1: the candidate attends to the user's summary tokens "
    "(decoded to float32 on read).",
)

# everything the evaluation compares: VISTA's summaries and the baselines' raw history,
# joined point-in-time from the same snapshots
ranker_evaluation = FeatureService(
    name="ranker_evaluation",
    features=[
        user_summary,
        user_summary_encoded[["history_length", "is_empty_history", "summarizer_version"]],
        user_history_tail,
        user_category_history,
    ],
    description="VISTA and the raw-history baselines (DIN, SIM, full attention) side by side.",
)
