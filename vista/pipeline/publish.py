"""Stage 5, features: register the Feast objects and materialize the snapshot's
summaries into the online store (``publish_features``).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from vista import features
from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.errors import MissingStateError
from vista.core.snapshot import Snapshot
from vista.pipeline.summaries import read_summaries
from vista.state import (
    summaries_path,
)


def publish_features(cfg: VistaConfig, as_of: Snapshot) -> dict[str, Any]:
    """feast apply, then materialize the summaries stamped before the next snapshot
    (``snapshots.every_hours`` after ``as_of``): the online store serves ``as_of``'s."""
    summaries = summaries_path(cfg)
    if not lake.table_exists(summaries):
        # else Feast fails deep in DuckDB, naming neither the table nor the step
        raise MissingStateError(f"no summaries at {summaries}: run `vista summarize` first")
    store = features.apply_repo(cfg)
    started = time.perf_counter()
    end = as_of + dt.timedelta(hours=cfg.snapshots.every_hours)
    features.materialize(store, start=end - dt.timedelta(days=cfg.features.materialize_days),
                         end=end)  # fmt: skip
    sample = read_summaries(cfg, as_of)["user_id"].head(3).tolist()
    online = features.online_summaries(store, sample)
    served = sum(v is not None for v in online["summary"])
    if served != len(sample):
        raise RuntimeError(f"online store serves {served} of {len(sample)} sampled users")
    return {
        "materialized_until": end.isoformat(),
        "materialize_seconds": round(time.perf_counter() - started, 2),
        "online_users_checked": len(sample),
    }
