"""An events file whose label is a repeat, the way grocery exports carry one (as
Instacart's ``reordered``: 1 when the user bought this item before): the check that a
summary remembers *which items* a user consumed, which a category count cannot answer.

The events are the `lifelong` world's (docs/WORLDS.md, its parameters unchanged; only
the size below), written as a plain CSV a user would bring: ``user_id, item_id,
category, timestamp`` (unix seconds) and ``reordered``. The label is a fact of the data,
not of a model: ``reordered`` is 1 when the same (user, item) occurs earlier in the
file. ``conf/repeat.yaml`` reads it through the generic loader with a global cutoff
(the last 21 days are the impressions, the last 7 evaluate).

    .venv/bin/python bench/repeat_world.py   # -> .state/data/repeat-world/events.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa

from sources.synthetic import generate
from vista.core.config import load_config

OUT = Path(".state/data/repeat-world/events.csv")
# the world's size: fewer and shorter histories than the `lifelong` profile, so that
# every event of the last 21 days can be an impression on 2 cores; dated in the past
# (a loader quarantines events later than the ingest time)
SIZE = {"n_users": 1000, "max_history": 20_000, "long_user_impressions": 0,
        "start_date": dt.date(2025, 6, 1)}  # fmt: skip


def repeat_events(generator) -> pd.DataFrame:
    """The world's events with ``reordered``: the (user, item) occurred before."""
    tables = [ev.select(["user_id", "item_id", "category", "event_timestamp"])
              for ev, _ in generate(generator)]  # fmt: skip
    frame = pa.concat_tables(tables).to_pandas()
    frame = frame.sort_values(["user_id", "event_timestamp"], kind="stable")
    epoch = pd.Timestamp(0, tz="UTC")
    frame["timestamp"] = (frame.pop("event_timestamp") - epoch) // pd.Timedelta(seconds=1)
    frame["reordered"] = frame.groupby(["user_id", "item_id"]).cumcount().gt(0).astype("int8")
    return frame.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    base = load_config("lifelong").generator
    frame = repeat_events(base.model_copy(update=SIZE))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    last = pd.to_datetime(frame.timestamp.max(), unit="s")
    print(f"{len(frame):,} events of {frame.user_id.nunique():,} users to {args.out}; "
          f"reordered share {frame.reordered.mean():.3f}; last event {last}")  # fmt: skip


if __name__ == "__main__":
    main()
