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
