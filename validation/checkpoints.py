"""Run a suite through a GX Checkpoint and build the run's Data Docs.

Each run's report folder holds a file-mode GX project (``gx/``) so that every
suite validated in the run, from any task, shows up in one Data Docs site
(``data_docs/index.html``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from validation.offline_docs import scrub_stylesheets, site_config
from validation.suites import SuiteSpec

DOCS_SITE = "run_report"


class DataQualityError(RuntimeError):
    """A critical suite failed; the message says which expectation failed on what."""


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    critical: bool
    evaluated: int
    failures: list[str] = field(default_factory=list)
    docs_index: str = ""

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _context(report_dir: Path):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    report_dir.mkdir(parents=True, exist_ok=True)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(report_dir))
    # a bar per metric batch floods task logs; the Data Docs carry the results
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    _use_offline_site(context, report_dir / "data_docs")
    return context


def _use_offline_site(context, docs_dir: Path) -> None:
    """The run's Data Docs site, rendered offline (validation/offline_docs.py). A report
    folder made before (GX's default views, which load from CDNs) is switched over and
    its pages rebuilt once, so no page of it still reaches out."""
    wanted = site_config(docs_dir)
    sites = context.list_data_docs_sites()
    if DOCS_SITE not in sites:
        context.add_data_docs_site(site_name=DOCS_SITE, site_config=wanted)
    elif dict(sites[DOCS_SITE]) != wanted:
        context.update_data_docs_site(site_name=DOCS_SITE, site_config=wanted)
        context.build_data_docs(site_names=[DOCS_SITE])


def describe_failure(result) -> str:
    """'expect_column_values_to_be_between on column user_id: 3 of 100 rows unexpected (e.g. [-1])'."""
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "column")}
    column = cfg.kwargs.get("column")
    where = f" on column '{column}'" if column else ""
    res = result.result or {}
    detail = ""
    if "unexpected_count" in res:
        total = res.get("element_count", "?")
        sample = res.get("partial_unexpected_list", [])[:5]
        detail = f": {res['unexpected_count']} of {total} rows unexpected (e.g. {sample})"
    elif "observed_value" in res:
        detail = f": observed {res['observed_value']!r}"
    return f"{cfg.type}{where} {kwargs}{detail}"


def run_suite(spec: SuiteSpec, frame: pd.DataFrame, report_dir: Path) -> SuiteOutcome:
    """Validate ``frame`` against ``spec``; raise DataQualityError if a critical suite fails."""
    import great_expectations as gx

    context = _context(report_dir)
    source = context.data_sources.add_or_update_pandas(name="vista")
    asset = next((a for a in source.assets if a.name == spec.name), None)
    if asset is None:
        asset = source.add_dataframe_asset(name=spec.name)
    batch_def = next((b for b in asset.batch_definitions if b.name == "whole_table"), None)
    if batch_def is None:
        batch_def = asset.add_batch_definition_whole_dataframe("whole_table")
    suite = gx.ExpectationSuite(name=spec.name, expectations=list(spec.expectations))
    suite = context.suites.add_or_update(suite)
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=spec.name, data=batch_def, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{spec.name}_checkpoint",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    scrub_stylesheets(report_dir / "data_docs")
    run_results = list(result.run_results.values())
    expectation_results = [r for vr in run_results for r in vr.results]
    failures = [describe_failure(r) for r in expectation_results if not r.success]
    outcome = SuiteOutcome(
        suite=spec.name,
        success=bool(result.success),
        critical=spec.critical,
        evaluated=len(expectation_results),
        failures=failures,
        docs_index=str(report_dir / "data_docs" / "index.html"),
    )
    if not outcome.success and spec.critical:
        raise DataQualityError(
            f"critical suite '{spec.name}' failed ({len(failures)} of "
            f"{outcome.evaluated} expectations):\n  "
            + "\n  ".join(failures)
            + f"\nData Docs: {outcome.docs_index}"
        )
    return outcome
