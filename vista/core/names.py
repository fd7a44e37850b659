"""The lake's table names and partition columns: one constant each, used by every room.

The table names are also the folder names under ``paths.lake`` and the names the Feast
sources, the suites and the error messages use, so renaming one is a migration, not an
edit.

Snapshot tables (histories, raw-history features, summaries) are partitioned by the
snapshot date, ``PARTITION_COL`` (``YYYY-MM-DD``); the input tables by the day of their
rows (``EVENT_DATE``, ``IMPRESSION_DATE``) and the quarantine by the run date of the
ingest that set the rows aside (``INGEST_DATE``).
"""

from __future__ import annotations

# input tables, written by the ingest step
EVENTS = "events"
IMPRESSIONS = "impressions"
QUARANTINE = "quarantine"
# snapshot tables, one partition per as_of date
HISTORIES = "user_histories"
HISTORY_TAIL = "user_history_tail"
CATEGORY_HISTORIES = "user_category_histories"
SUMMARIES = "user_summaries"  # one table per summarizer version below this folder
# memory-mode summarizer states of long histories, one table per version (refresh cache)
SUMMARY_STATES = "user_summary_states"

# partition columns
PARTITION_COL = "as_of_date"
EVENT_DATE = "event_date"
IMPRESSION_DATE = "impression_date"
INGEST_DATE = "ingest_date"

# the category of an item whose category is unknown (or of an event without one); the
# ranker embeds it as its unknown row (models.summarizer.item_index)
UNKNOWN_CATEGORY = -1
