"""Item attributes for online scoring, as the lake holds them.

The ranker reads two things of a candidate: its item id and its category. The pipeline
keeps no separate items table: every row of ``events`` and ``impressions`` carries its
item's category (from the generator, the mapped column or the source's items file), so
the catalog is built from those two tables: per item, the category of its latest row (a
re-categorised item takes its newest category). It is read once, in batches, when the
service starts; an item first seen later is unknown until the next start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vista.core.names import UNKNOWN_CATEGORY

if TYPE_CHECKING:
    import pyarrow as pa

    from vista.core.config import VistaConfig

# tables whose rows carry an item's category, and the time that orders them
ITEM_SOURCES = (("events", "event_timestamp"), ("impressions", "event_timestamp"))


@dataclass(frozen=True)
class ItemCatalog:
    """item id -> category, as sorted arrays (a lookup is a binary search)."""

    ids: np.ndarray  # int64, sorted, unique
    categories: np.ndarray  # int64, aligned with ids

    @classmethod
    def empty(cls) -> ItemCatalog:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def categories_of(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each item's category, whether the item is known); an unknown item gets
        UNKNOWN_CATEGORY, which the ranker embeds as its unknown row (item_index)."""
        items = np.asarray(items, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(items), UNKNOWN_CATEGORY, np.int64), np.zeros(len(items), bool)
        at = np.minimum(np.searchsorted(self.ids, items), len(self.ids) - 1)
        known = self.ids[at] == items
        return np.where(known, self.categories[at], UNKNOWN_CATEGORY), known


def latest_per_item(
    items: np.ndarray, categories: np.ndarray, stamps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item ids sorted, the category of each one's latest row, that row's time). Rows
    at the same time are ordered by category, so the result does not depend on row
    order (batches may come in any order)."""
    order = np.lexsort((categories, stamps, items))
    ordered = items[order]
    last = order[np.r_[ordered[1:] != ordered[:-1], True]]
    return items[last], categories[last], stamps[last]


def _batch_arrays(batch: pa.RecordBatch, time_column: str) -> tuple[np.ndarray, ...]:
    import pyarrow as pa
    import pyarrow.compute as pc

    items = batch.column("item_id")
    keep = pc.is_valid(items)
    categories = pc.fill_null(batch.column("category"), UNKNOWN_CATEGORY)
    stamps = pc.cast(batch.column(time_column), pa.timestamp("us")).cast(pa.int64())
    return tuple(
        np.asarray(pc.filter(column, keep), dtype=np.int64)
        for column in (items, categories, stamps)
    )


def read_item_catalog(cfg: VistaConfig, batch_rows: int = 1 << 20) -> ItemCatalog:
    """Every item the lake's events and impressions hold, with its latest category. Read
    in batches, each reduced to one row per item at once, so memory follows the number
    of items, not of events. No events table fails as a missing table (nothing to
    serve); no impressions table (a source without labels) means no impressions."""
    from vista.core import lake

    parts: list[tuple[np.ndarray, ...]] = []
    for name, time_column in ITEM_SOURCES:
        path = cfg.paths.table(name)
        if name != "events" and not lake.table_exists(path):
            continue
        for batch in lake.arrow_batches(path, ["item_id", "category", time_column], batch_rows):
            parts.append(latest_per_item(*_batch_arrays(batch, time_column)))
            if len(parts) > 8:  # fold the parts now and then: bounded by the items
                parts = [latest_per_item(*map(np.concatenate, zip(*parts, strict=True)))]
    if not parts:
        return ItemCatalog.empty()
    ids, categories, _ = latest_per_item(*map(np.concatenate, zip(*parts, strict=True)))
    return ItemCatalog(ids, categories)
