"""Sources over the lake's Delta tables (read through DuckDB's delta extension)."""

import os
from pathlib import Path

from feast import FileSource
from feast.data_format import DeltaFormat

LAKE = Path(os.environ.get("VISTA_LAKE_DIR", Path(__file__).resolve().parents[1] / ".state/lake"))
# each summarizer version writes a table of its own; the source reads the current one
SUMMARIZER_VERSION = os.environ.get("VISTA_SUMMARIZER_VERSION", "none")

user_summaries_source = FileSource(
    name="user_summaries",
    path=str(LAKE / "user_summaries" / SUMMARIZER_VERSION),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description=f"VISTA summary tokens of summarizer {SUMMARIZER_VERSION}, encoded, one row "
    "per (user, as_of snapshot).",
)

user_history_tail_source = FileSource(
    name="user_history_tail",
    path=str(LAKE / "user_history_tail"),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Each user's most recent raw events per as_of snapshot (baseline rankers).",
)

user_category_histories_source = FileSource(
    name="user_category_histories",
    path=str(LAKE / "user_category_histories"),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Per (user, category) the user's most recent items of it (SIM hard search).",
)
