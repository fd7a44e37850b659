"""Stage 7, evaluation and report: every ranker variant x seeds against the
raw-history baselines on the Feast evaluation set (``vista.evaluation``), written as
``reports/<as_of>/report.md`` with its tables, plots and predictions
(``vista.report``).
"""

from __future__ import annotations

import time
from typing import Any

from vista.core.config import VistaConfig
from vista.core.snapshot import Snapshot
from vista.evaluation import evaluate_rankers
from vista.provenance import provenance
from vista.report import write_report
from vista.state import (
    report_dir,
)


def evaluate_and_report(cfg: VistaConfig, as_of: Snapshot, progress: bool = True) -> dict[str, Any]:
    """Every ranker variant x seeds on the Feast evaluation set -> reports/<as_of>/report.md
    (tables and plots); returns the headline figures and the files written."""
    started = time.perf_counter()
    origin = provenance()  # the code that trains and scores, before it runs for an hour
    evaluation = {**evaluate_rankers(cfg, as_of, progress), "provenance": origin}
    title = f"Ranker evaluation: VISTA against raw-history baselines ({cfg.profile}, {as_of.iso})"
    files = write_report(report_dir(cfg, as_of), evaluation, title)
    headline = {
        name: {bucket: cell["auc"]["mean"] for bucket, cell in v["summary"].items()}
        for name, v in evaluation["variants"].items()
    }
    if "oracle" in evaluation:
        headline["oracle"] = {b: m["auc"] for b, m in evaluation["oracle"].items()}
    return {"auc_by_bucket": headline, "files": files,
            "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
