"""Sources over the lake's Delta tables (read through DuckDB's delta extension)."""

from __future__ import annotations

from typing import NamedTuple

from feast import FileSource
from feast.data_format import DeltaFormat

from feature_repo.settings import RepoSettings


class Sources(NamedTuple):
    user_summaries: FileSource
    user_history_tail: FileSource
    user_category_histories: FileSource


def data_sources(settings: RepoSettings) -> Sources:
    """One source per Delta table; each row is stamped ``event_timestamp`` (the snapshot
    it was computed at) and ``created_timestamp`` (when it was written)."""
    # each summarizer version writes a table of its own; the source reads the current one
    version = settings.summarizer_version
    user_summaries = FileSource(
        name="user_summaries",
        path=settings.user_summaries,
        file_format=DeltaFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=f"VISTA summary tokens of summarizer {version}, encoded, one row "
        "per (user, as_of snapshot).",
    )
    user_history_tail = FileSource(
        name="user_history_tail",
        path=settings.user_history_tail,
        file_format=DeltaFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description="Each user's most recent raw events per as_of snapshot (baseline rankers).",
    )
    user_category_histories = FileSource(
        name="user_category_histories",
        path=settings.user_category_histories,
        file_format=DeltaFormat(),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description="Per (user, category) the user's most recent items of it (SIM hard search).",
    )
    return Sources(user_summaries, user_history_tail, user_category_histories)
