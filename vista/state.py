"""Where the pipeline's state lives and the pointers to what it made: report folders,
model checkpoints and their ``current.json`` pointers, the summaries table of each
summarizer version, and the impression days a snapshot trains and evaluates on.

The steps, the evaluation, the Feast glue, the probes and the scoring service all read
these; this module imports none of them, so they can all import it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.errors import MissingStateError, SettingError
from vista.core.names import IMPRESSION_DATE, IMPRESSIONS, SUMMARIES, SUMMARY_STATES
from vista.core.snapshot import Snapshot


def report_dir(cfg: VistaConfig, as_of: Snapshot) -> Path:
    return cfg.paths.reports / as_of.iso


def checkpoint_dir(cfg: VistaConfig) -> Path:
    return cfg.paths.state / "models" / "summarizer"


def ranker_dir(cfg: VistaConfig) -> Path:
    return cfg.paths.state / "models" / "ranker"


def current_ranker(cfg: VistaConfig) -> dict[str, Any]:
    """The pointer to the ranker that serving loads: its file and the summarizer
    version it was trained on."""
    pointer = ranker_dir(cfg) / "current.json"
    if not pointer.exists():
        raise MissingStateError(
            f"no trained ranker at {pointer}: run `vista train-and-evaluate-ranker` (or the "
            "vista_ranker DAG, or `vista run`) first"
        )
    return json.loads(pointer.read_text())


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    tmp.replace(path)
    return path


def impression_windows(cfg: VistaConfig, as_of: Snapshot) -> tuple[list[str], list[str]]:
    """Impression dates on or after ``as_of``: all but the last ``eval_days`` train,
    the last ``eval_days`` evaluate (a later time window)."""
    dates = sorted(lake.open_table(cfg.paths.table(IMPRESSIONS)).partitions(), key=str)
    days = sorted({p[IMPRESSION_DATE] for p in dates if p[IMPRESSION_DATE] >= as_of.iso})
    eval_days = cfg.ranker.eval_days
    if len(days) <= eval_days:
        per_user = cfg.source is not None and cfg.source.split == "per_user"
        raise SettingError(windows_problem(days, eval_days, as_of.date(), per_user))
    return days[:-eval_days], days[-eval_days:]


def windows_problem(days: list[str], eval_days: int, as_of: dt.date, per_user: bool = False) -> str:
    """One line: the impression days found, the setting, and what this data needs."""
    found = f"{len(days)} impression day(s) on or after as_of {as_of}" + (
        f" ({days[0]} .. {days[-1]})" if days else ""
    )
    if len(days) >= 2:
        need = f"this data needs ranker.eval_days <= {len(days) - 1}"
    elif per_user:
        # a user's only held-out event lands on the last day: few held-out events per
        # user leave the first days empty
        need = ("this data needs held-out events on at least 2 days: a larger "
                "source.per_user_share, or a lower source.min_user_events if few users "
                "were split (the ingest's split counts say)")  # fmt: skip
    else:
        need = ("this data needs at least 2 impression days on or after the snapshot: an "
                "earlier as_of (source.cutoff_date)")  # fmt: skip
    return (f"found {found}, but ranker.eval_days={eval_days} needs more than {eval_days} "
            f"(the last {eval_days} evaluate, the rest train): {need}")  # fmt: skip


def read_impressions(cfg: VistaConfig, days: list[str]) -> pd.DataFrame:
    table = lake.read_arrow(cfg.paths.table(IMPRESSIONS), filters=[(IMPRESSION_DATE, "in", days)])
    return table.to_pandas()


def current_summarizer(cfg: VistaConfig) -> dict[str, str]:
    pointer = checkpoint_dir(cfg) / "current.json"
    if not pointer.exists():
        raise MissingStateError(
            f"no trained summarizer at {pointer}: run `vista train-summarizer` first"
        )
    return json.loads(pointer.read_text())


def summaries_path(cfg: VistaConfig, version: str | None = None) -> Path:
    """The summaries of one summarizer version (default: the current one).

    Each version has a Delta table of its own, so rows of two models never mix: a new
    version starts an empty table (every user is summarized anew), the Feast source
    moves to it, and the old version's table stays readable until it is dropped."""
    return cfg.paths.table(SUMMARIES) / (version or current_summarizer(cfg)["version"])


def states_path(cfg: VistaConfig, version: str | None = None) -> Path:
    """The cached memory-mode states of one summarizer version (default: the current
    one): a version change finds no states and folds every history anew."""
    return cfg.paths.table(SUMMARY_STATES) / (version or current_summarizer(cfg)["version"])


def summarizer_versions(cfg: VistaConfig) -> list[str]:
    """Versions with a summaries table, in the order their tables were created."""
    root = cfg.paths.table(SUMMARIES)
    if not root.exists():
        return []
    created = {
        p.name: lake.open_table(p).history()[-1]["timestamp"]
        for p in root.iterdir()
        if lake.table_exists(p)
    }
    return sorted(created, key=lambda name: (created[name], name))
