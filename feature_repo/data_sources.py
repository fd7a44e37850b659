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


def delta_source(name: str, path: str, description: str) -> FileSource:
    """A Delta table whose rows carry ``event_timestamp`` (the snapshot they were
    computed at) and ``created_timestamp`` (when they were written)."""
    return FileSource(name=name, path=path, file_format=DeltaFormat(),
                      timestamp_field="event_timestamp",
                      created_timestamp_column="created_timestamp",
                      description=description)  # fmt: skip


def data_sources(settings: RepoSettings) -> Sources:
    """One source per Delta table of the lake."""
    # each summarizer version writes a table of its own; the source reads the current one
    version = settings.summarizer_version
    return Sources(
        delta_source("user_summaries", settings.user_summaries,
                     f"VISTA summary tokens of summarizer {version}, encoded, one row "
                     "per (user, as_of snapshot)."),
        delta_source("user_history_tail", settings.user_history_tail,
                     "Each user's most recent raw events per as_of snapshot (baseline rankers)."),
        delta_source("user_category_histories", settings.user_category_histories,
                     "Per (user, category) the user's most recent items of it (SIM hard search)."),
    )  # fmt: skip
