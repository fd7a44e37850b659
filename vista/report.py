"""The ranker evaluation as a report: markdown tables and PNG plots in the run's folder.

reports/<as_of>/
  report.md              the claim, the tables, the plots, and what the figures say
  evaluation.json        everything measured (per seed, per bucket)
  auc_by_bucket.png      AUC by history-length bucket, per model, with the oracle
  scoring_cost.png       time to score 1,000 candidates against history length, per model
  training_curves.png    validation loss per epoch, per model (first seed)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from models.evaluation import BUCKET_LABELS

LABELS = {
    "vista": "VISTA (K summary tokens)",
    "din_last100": "DIN, last 100 items",
    "sim_category": "SIM hard search (category, top 100)",
    "full_attention": "full target attention (raw tail)",
}


def _fmt(value: float, digits: int = 4) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def _mean_std(summary: dict, bucket: str, metric: str) -> str:
    cell = summary.get(bucket, {}).get(metric)
    if cell is None or math.isnan(cell["mean"]):
        return "n/a"
    return f"{cell['mean']:.4f} ± {cell['std']:.4f}" if cell["n"] > 1 else f"{cell['mean']:.4f}"


def _buckets(evaluation: dict) -> list[str]:
    present = {b for v in evaluation["variants"].values() for b in v["summary"]}
    return [b for b in BUCKET_LABELS if b in present]


def findings(evaluation: dict) -> list[str]:
    """What the figures say about the claim, in sentences (never assumed)."""
    variants = evaluation["variants"]
    out = []
    buckets = _buckets(evaluation)
    longest = buckets[-1] if buckets else "all"

    def auc(name: str, bucket: str) -> float:
        cell = variants.get(name, {}).get("summary", {}).get(bucket, {}).get("auc")
        return float("nan") if cell is None else cell["mean"]

    def std(name: str, bucket: str) -> float:
        cell = variants.get(name, {}).get("summary", {}).get(bucket, {}).get("auc")
        return 0.0 if cell is None else cell["std"]

    if "vista" in variants and "din_last100" in variants:
        for bucket in ("all", longest):
            gap = auc("vista", bucket) - auc("din_last100", bucket)
            noise = max(std("vista", bucket), std("din_last100", bucket), 1e-4)
            verdict = "beats" if gap > 2 * noise else "trails" if gap < -2 * noise else "matches"
            out.append(
                f"On {'all users' if bucket == 'all' else f'histories {bucket}'}, VISTA "
                f"{verdict} DIN-last-100: AUC {_fmt(auc('vista', bucket))} vs "
                f"{_fmt(auc('din_last100', bucket))} (difference {gap:+.4f}; seed spread "
                f"{noise:.4f})."
            )
    if "vista" in variants and "full_attention" in variants:
        gap = auc("vista", longest) - auc("full_attention", longest)
        out.append(
            f"Against full attention over the raw tail (the intended upper bound), VISTA's AUC on "
            f"histories {longest} differs by {gap:+.4f}."
        )
    if "oracle" in evaluation:
        out.append(
            f"The generator's oracle AUC (the ceiling) is {_fmt(evaluation['oracle']['all']['auc'])}"
            f" overall and {_fmt(evaluation['oracle'].get(longest, {}).get('auc'))} on {longest}."
        )
    for name, v in variants.items():
        cost = v["scoring_cost"]
        if len(cost) > 1:
            growth = cost[-1]["seconds"] / max(cost[0]["seconds"], 1e-12)
            out.append(
                f"{LABELS.get(name, name)}: scoring 1,000 candidates takes "
                f"{cost[0]['seconds'] * 1e3:.1f} ms at {cost[0]['history_length']:,} events and "
                f"{cost[-1]['seconds'] * 1e3:.1f} ms at {cost[-1]['history_length']:,} "
                f"({growth:.1f}x)."
            )
    return out


def _plots(evaluation: dict, folder: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = evaluation["variants"]
    buckets = _buckets(evaluation)
    files = {}

    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = list(range(len(buckets)))
    for name, v in variants.items():
        means = [v["summary"].get(b, {}).get("auc", {}).get("mean", math.nan) for b in buckets]
        stds = [v["summary"].get(b, {}).get("auc", {}).get("std", 0.0) for b in buckets]
        ax.errorbar(x, means, yerr=stds, marker="o", capsize=3, label=LABELS.get(name, name))
    if "oracle" in evaluation:
        ax.plot(x, [evaluation["oracle"].get(b, {}).get("auc", math.nan) for b in buckets],
                "k--", label="oracle (ceiling)")  # fmt: skip
    ax.set_xticks(x, buckets)
    ax.set_xlabel("history length (events before the snapshot)")
    ax.set_ylabel("AUC (mean ± std over seeds)")
    ax.set_title("AUC by history-length bucket")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files["auc_by_bucket"] = "auc_by_bucket.png"
    fig.savefig(folder / files["auc_by_bucket"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, v in variants.items():
        cost = v["scoring_cost"]
        ax.plot([c["history_length"] for c in cost], [c["seconds"] * 1e3 for c in cost],
                marker="o", label=LABELS.get(name, name))  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("user's history length (events)")
    ax.set_ylabel("ms to score 1,000 candidates")
    ax.set_title("Ranking cost against history length")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    files["scoring_cost"] = "scoring_cost.png"
    fig.savefig(folder / files["scoring_cost"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, v in variants.items():
        curve = v["runs"][0]["curve"]
        ax.plot(range(1, len(curve["validation_loss"]) + 1), curve["validation_loss"],
                marker=".", label=f"{LABELS.get(name, name)} (validation)")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("log loss on held-out users")
    ax.set_title("Training curves (first seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files["training_curves"] = "training_curves.png"
    fig.savefig(folder / files["training_curves"], dpi=110)
    plt.close(fig)
    return files


def render_markdown(evaluation: dict, plots: dict[str, str], title: str) -> str:
    variants = evaluation["variants"]
    buckets = ["all", *_buckets(evaluation)]
    lines = [
        f"# {title}",
        "",
        "The claim under test: a ranker that reads K cached summary tokens matches or beats "
        "rankers that read raw history, on users with long histories, at a ranking cost that "
        "does not grow with history length.",
        "",
        f"Snapshot (as_of) {evaluation['as_of']}; {evaluation['train_rows']:,} training and "
        f"{evaluation['eval_rows']:,} evaluation impressions (a later time window), all "
        "features joined point-in-time through Feast; "
        f"{evaluation['seeds']} seed(s) per model, same embedding size, optimizer and epochs; "
        f"summary tokens K x D = {evaluation['summary_shape'][0]} x "
        f"{evaluation['summary_shape'][1]}.",
        "",
        "## What the figures say",
        "",
        *(f"- {line}" for line in findings(evaluation)),
        "",
        "## AUC by history length (mean ± std over seeds)",
        "",
        "| model | " + " | ".join(buckets) + " |",
        "|---|" + "---|" * len(buckets),
    ]
    for name, v in variants.items():
        cells = [_mean_std(v["summary"], b, "auc") for b in buckets]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    if "oracle" in evaluation:
        cells = [_fmt(evaluation["oracle"].get(b, {}).get("auc")) for b in buckets]
        lines.append("| oracle (ceiling) | " + " | ".join(cells) + " |")
    rows = [_fmt(next(iter(variants.values()))["summary"].get(b, {}).get("rows", {}).get("mean"),
                  0) for b in buckets]  # fmt: skip
    lines += ["| rows | " + " | ".join(rows) + " |", ""]
    lines += [
        "## All metrics, all users",
        "",
        "| model | AUC | GAUC | log loss | NE | s / epoch | scoring 1k candidates |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        s = v["summary"]["all"]
        cost = v["scoring_cost"]
        span = (
            f"{cost[0]['seconds'] * 1e3:.1f} ms @ {cost[0]['history_length']:,} → "
            f"{cost[-1]['seconds'] * 1e3:.1f} ms @ {cost[-1]['history_length']:,}"
        )
        lines.append(
            f"| {LABELS.get(name, name)} | {_mean_std(v['summary'], 'all', 'auc')} | "
            f"{_mean_std(v['summary'], 'all', 'gauc')} | {_mean_std(v['summary'], 'all', 'log_loss')}"
            f" | {_mean_std(v['summary'], 'all', 'ne')} | {v['seconds_per_epoch']:.2f} | {span} |"
        )
        del s
    if "oracle" in evaluation:
        o = evaluation["oracle"]["all"]
        lines.append(
            f"| oracle (ceiling) | {_fmt(o['auc'])} | {_fmt(o['gauc'])} | {_fmt(o['log_loss'])} "
            f"| {_fmt(o['ne'])} | | |"
        )
    lines += ["", "## GAUC by history length", "", "| model | " + " | ".join(buckets) + " |",
              "|---|" + "---|" * len(buckets)]  # fmt: skip
    for name, v in variants.items():
        cells = [_mean_std(v["summary"], b, "gauc") for b in buckets]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    lengths = [c["history_length"] for c in next(iter(variants.values()))["scoring_cost"]]
    lines += [
        "",
        "## Scoring cost: ms to score 1,000 candidates of one user",
        "",
        "| model | " + " | ".join(f"{n:,} events" for n in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for name, v in variants.items():
        cells = [f"{c['seconds'] * 1e3:.2f}" for c in v["scoring_cost"]]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "VISTA's tokens are computed offline (the summarizer benchmark gives that cost per "
        "event); SIM's per-category index is built offline too. Both are paid once per "
        "refresh, not per candidate.",
        "",
        "## Plots",
        "",
        f"![AUC by history-length bucket]({plots['auc_by_bucket']})",
        "",
        f"![Scoring cost against history length]({plots['scoring_cost']})",
        "",
        f"![Training curves]({plots['training_curves']})",
        "",
    ]
    return "\n".join(lines)


def write_report(folder: Path, evaluation: dict[str, Any], title: str) -> dict[str, str]:
    """report.md, evaluation.json and the PNGs into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation.json").write_text(json.dumps(evaluation, indent=2, default=float))
    plots = _plots(evaluation, folder)
    (folder / "report.md").write_text(render_markdown(evaluation, plots, title))
    return {
        "report": str(folder / "report.md"),
        "evaluation": str(folder / "evaluation.json"),
        **{k: str(folder / v) for k, v in plots.items()},
    }
