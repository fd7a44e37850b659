"""What the feature repo needs to know about a profile, as one value (no feast import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RepoSettings:
    """The values the definitions take; ``vista.features.repo_settings`` makes them from
    the typed configuration and the current summarizer.

    ``user_summaries`` is the Delta table of one summarizer version (rows: user_id,
    event_timestamp, created_timestamp, summary_codes, summary_scales, summary_codec,
    history_length, is_empty_history, summarizer_version); ``n_tokens`` x ``token_dim``
    is K x D of the summary tokens those rows encode with ``codec``."""

    user_summaries: str  # Delta table of the summaries of `summarizer_version`
    user_history_tail: str  # Delta table: each user's last raw events per snapshot
    user_category_histories: str  # Delta table: per (user, category) the recent items
    summarizer_version: str  # content hash of the summarizer; "none" before the first
    n_tokens: int = 16  # K summary tokens per user
    token_dim: int = 32  # D floats per token
    codec: str = "int8"  # how the tokens are stored: int8, bf16 or float32
    ttl_days: int = 14  # a feature older than this is not joined offline
