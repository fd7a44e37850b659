from feast import FeatureService
from feature_views import user_summary_v1

ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[user_summary_v1],
    description="Features of ranker_v1: the candidate attends to the user's summary tokens.",
)
