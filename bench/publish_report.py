"""Commit a `vista evaluate-and-report` run as a result file the README quotes.

`make report` writes reports/<profile>/<as_of>/report.md and evaluation.json, which are
not committed (each run makes new ones). This copies the run's figures into
docs/results/report-<profile>.{json,md}, with the machine and commit they came from
(the report's own provenance; for a report written before it recorded one, this
checkout's, which must then be the commit the report ran at), and keeps of report.md
the tables a reader of the README needs: AUC by bucket, VISTA minus each model, the
targets, the headroom captured and the world's headroom.

    .venv/bin/python bench/publish_report.py --profile lifelong
    .venv/bin/python bench/publish_report.py --profile local --ablations --command "..."
    .venv/bin/python bench/readme_results.py        # then the README's sections
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from vista.core.config import load_config
from vista.core.snapshot import Snapshot
from vista.provenance import PROJECT_ROOT, RESULTS_DIR, provenance
from vista.state import report_dir

KEPT = (
    "AUC by history length",
    "VISTA minus each model",
    "Targets",
    "Headroom captured",
    "The world's headroom",
)


def relative(path: Path) -> str:
    """``path`` from the project root when under it (a result file names no machine)."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path.name


def kept_sections(report: str) -> list[tuple[str, str]]:
    """(heading, body) of the report's ``## `` sections whose heading starts with one of KEPT."""
    parts = re.split(r"^## (.+)$", report, flags=re.MULTILINE)
    found = zip(parts[1::2], parts[2::2], strict=True)
    return [(h.strip(), b.strip()) for h, b in found if h.strip().startswith(KEPT)]


def origin_text(origin: dict) -> str:
    """Where a result came from, as the files' first line says it."""
    dirty = " (dirty)" if origin["dirty"] else ""
    return f"{origin['machine']['cpus']} CPUs, commit {origin['commit'][:10]}{dirty}"


def render(report: str, evaluation: dict, origin: dict, profile: str, command: str) -> str:
    head = (
        f"`{command}` (profile `{profile}`, snapshot {evaluation['as_of']}; "
        f"{evaluation['train_rows']:,} training and {evaluation['eval_rows']:,} evaluation "
        f"impressions, {evaluation['seeds']} seeds per model; {origin_text(origin)}; "
        f"`bench/publish_report.py`)"
    )
    blocks = [head, "**Pooling, chosen by each model's validation loss on held-out users "
              "(first seed).** " + "; ".join(
                  f"{name}: {v['pooling']} ("
                  + ", ".join(f"{p} {loss:.4f}" for p, loss in v["validation_loss_by_pooling"].items())
                  + ")" for name, v in evaluation["variants"].items())]  # fmt: skip
    for heading, body in kept_sections(report):
        blocks.append(f"**{heading}.**\n\n{body}")
    return "\n\n".join(blocks) + "\n"


def publish_run(folder: Path, kind: str, profile: str, command: str) -> int:
    """docs/results/<kind>-<profile>.{json,md} from the snapshot's <kind>.json: the probes
    (``vista probe``) or the ablations (``vista ablate``), rendered as their command does,
    headings made bold lines so the README's sections stay flat."""
    from vista.ablations import render_ablations
    from vista.probing import render_probe_section

    render, step = {"probes": (render_probe_section, "probe"),
                    "ablations": (render_ablations, "ablate")}[kind]  # fmt: skip
    source = folder / f"{kind}.json"
    if not source.exists():
        print(f"error: no {kind} in {folder}: run `vista {step} -p {profile}` first",
              file=sys.stderr)  # fmt: skip
        return 2
    found = json.loads(source.read_text())
    origin = found.get("provenance") or provenance()
    name = f"{kind}-{profile}"
    (RESULTS_DIR / f"{name}.json").write_text(
        json.dumps({**origin, "command": command, **found}, indent=1, default=str) + "\n"
    )
    what = [f"profile `{profile}`", f"snapshot {found['as_of']}"]
    if found.get("summarizer_version"):
        what.append(f"summarizer {found['summarizer_version']}")
    head = (f"`{command}` ({', '.join(what)}; {origin_text(origin)}; "
            f"`bench/publish_report.py --{kind}`)")  # fmt: skip
    body = re.sub(r"^#+ (.+)$", r"**\1.**", render(found).strip(), flags=re.M)
    (RESULTS_DIR / f"{name}.md").write_text(f"{head}\n\n{body}\n")
    print(f"wrote {RESULTS_DIR / name}.json and .md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="lifelong")
    parser.add_argument(
        "--as-of", default=None, help="the report's snapshot (default: the data cutoff)"
    )
    parser.add_argument("--command", default="make report", help="what produced the report")
    parser.add_argument("--probes", action="store_true",
                        help="publish the snapshot's probes.md (vista probe) instead")  # fmt: skip
    parser.add_argument("--ablations", action="store_true",
                        help="publish the snapshot's ablations (vista ablate) instead")  # fmt: skip
    args = parser.parse_args(argv)
    cfg = load_config(args.profile)
    from vista import pipeline

    folder = report_dir(cfg, Snapshot.of(args.as_of or pipeline.default_as_of(cfg)))
    for kind in ("probes", "ablations"):
        if getattr(args, kind):
            return publish_run(folder, kind, cfg.profile, args.command)
    report_md, evaluation_json = folder / "report.md", folder / "evaluation.json"
    if not report_md.exists() or not evaluation_json.exists():
        print(f"error: no report in {folder}: run `vista evaluate-and-report -p {args.profile}` "
              "first", file=sys.stderr)  # fmt: skip
        return 2
    evaluation = json.loads(evaluation_json.read_text())
    origin = evaluation.get("provenance") or provenance()
    name = f"report-{cfg.profile}"
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps({**origin, "command": args.command, "profile": cfg.profile,
                               "report": relative(report_md), "evaluation": evaluation},
                              indent=1, default=str) + "\n")  # fmt: skip
    text = render(report_md.read_text(), evaluation, origin, cfg.profile, args.command)
    Path(RESULTS_DIR / f"{name}.md").write_text(text)
    print(f"wrote {out} and {name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
