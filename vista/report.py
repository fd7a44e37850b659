"""The ranker evaluation as a report: markdown tables and PNG plots in the run's folder.

reports/<as_of>/
  report.md              the claim, the tables, the plots, and what the figures say
  evaluation.json        everything measured (per seed, per bucket, bootstrap intervals)
  predictions.parquet    every model's score per seed on every evaluation row: every
                         figure of the report can be recomputed from it
  auc_by_bucket.png      AUC by history-length bucket, per model, with the oracle
  scoring_cost.png       time to score 1,000 candidates against history length, per model
  training_curves.png    validation loss per epoch, per model (first seed)

Long because it renders one document: each section's table and its reading sit beside
the code that computes them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from models.evaluation import ALL, BUCKET_LABELS, verdict

LABELS = {
    "vista": "VISTA (K summary tokens)",
    "din_last100": "DIN, last 100 items",
    "sim_category": "SIM hard search (category, top 100)",
    "full_attention": "full target attention (raw tail)",
    "blind": "history-blind (no history)",
    "oracle_prob": "oracle (ceiling)",
    "oracle_prob_blind": "oracle from nothing",
    "oracle_prob_last100": "oracle from the last 100 events",
    "oracle_prob_last2048": "oracle from the last 2,048 events",
}
SHORT = {"vista": "VISTA", "din_last100": "DIN-last-100", "sim_category": "SIM",
         "full_attention": "full attention", "blind": "the history-blind ranker"}  # fmt: skip
PREDICTIONS = "predictions.parquet"
# the oracle's click probability from ever more of the history (the world's headroom)
WORLD_ORDER = ("oracle_prob_blind", "oracle_prob_last100", "oracle_prob_last2048", "oracle_prob")


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


def _compared(evaluation: dict) -> dict[str, dict]:
    """bucket -> the bootstrap's cell (empty without intervals)."""
    return evaluation.get("intervals", {}).get("buckets", {})


def _interval(cell: dict | None, digits: int = 4, percent: bool = False) -> str:
    """estimate [low, high], or the estimate alone where no interval was drawn."""
    if not cell or not math.isfinite(cell["estimate"]):
        return "n/a"
    scale, unit, d = (100, "%", 0) if percent else (1, "", digits)
    text = f"{cell['estimate'] * scale:.{d}f}{unit}"
    if math.isfinite(cell["low"]) and math.isfinite(cell["high"]):
        text += f" [{cell['low'] * scale:.{d}f}{unit}, {cell['high'] * scale:.{d}f}{unit}]"
    else:
        text += " [–]"
    return text


def _signed(cell: dict) -> str:
    if not math.isfinite(cell["estimate"]):
        return "n/a"
    text = f"{cell['estimate']:+.4f}"
    if math.isfinite(cell["low"]):
        text += f" [{cell['low']:+.4f}, {cell['high']:+.4f}]"
    return text


def reference_model(evaluation: dict) -> str | None:
    """The model the others are compared with: VISTA when evaluated, else the first."""
    names = list(evaluation["variants"])
    return "vista" if "vista" in names else (names[0] if names else None)


def differences(evaluation: dict, bucket: str) -> list[tuple[str, dict, str]]:
    """(other model, reference minus other, verdict from the interval) per other model."""
    reference = reference_model(evaluation)
    cell = _compared(evaluation).get(bucket, {}).get("difference", {}).get(reference, {})
    return [(other, gap, verdict(gap["low"], gap["high"]))
            for other, gap in cell.items() if other in evaluation["variants"]]  # fmt: skip


def _lift(cell: dict, upper: str, lower: str) -> bool:
    """Whether ``upper`` beats ``lower`` by its interval: only then is there a lift to
    share out (a ratio over a lift that may be zero says nothing)."""
    gap = cell.get("difference", {}).get(upper, {}).get(lower)
    return gap is not None and verdict(gap["low"], gap["high"]) == "beats"


def headroom_cell(compared: dict, bucket: str, model: str) -> dict | None:
    """The headroom captured by ``model`` where the oracle beats the blind ranker."""
    cell = compared.get(bucket, {})
    if not _lift(cell, "oracle_prob", "blind"):
        return None
    return cell.get("headroom", {}).get(model)


def beyond_cell(compared: dict, bucket: str) -> dict | None:
    """The share of the oracle's lift beyond the last 2,048 events, where there is one."""
    cell = compared.get(bucket, {})
    if not _lift(cell, "oracle_prob", "oracle_prob_blind"):
        return None
    return cell.get("beyond_last2048")


def _bucket_words(bucket: str) -> str:
    return "all users" if bucket == ALL else f"histories {bucket}"


def _longest_tested(evaluation: dict) -> str | None:
    """The longest-history bucket with an interval (the claim is about long histories)."""
    compared = _compared(evaluation)
    tested = [b for b in _buckets(evaluation) if compared.get(b, {}).get("resamples")]
    return tested[-1] if tested else None


def findings(evaluation: dict) -> list[str]:
    """What the figures say about the claim, in sentences (never assumed): every
    "beats" or "trails" is the verdict of a paired bootstrap interval, not of the
    seeds' spread."""
    variants = evaluation["variants"]
    compared = _compared(evaluation)
    out = []
    buckets = _buckets(evaluation)
    longest = buckets[-1] if buckets else ALL
    tested = _longest_tested(evaluation)
    reference = reference_model(evaluation)
    level = compared.get(ALL, {})
    confidence = evaluation.get("intervals", {}).get("confidence", 0.95)
    ci = f"{confidence:.0%} CI"
    name = SHORT.get(reference, reference)
    for bucket in dict.fromkeys(b for b in (ALL, tested) if b):
        cell = compared.get(bucket, {})
        for other, gap, word in differences(evaluation, bucket):
            auc = cell["auc"]
            spread = max(variants[m]["summary"].get(bucket, {}).get("auc", {}).get("std", 0.0)
                         for m in (reference, other))  # fmt: skip
            word = {"no significant difference": "shows no significant difference from",
                    "not tested": "was not tested against"}.get(word, word)  # fmt: skip
            out.append(
                f"On {_bucket_words(bucket)}, {name} {word} {SHORT.get(other, other)}: AUC "
                f"{_fmt(auc[reference]['estimate'])} vs {_fmt(auc[other]['estimate'])}, "
                f"difference {_signed(gap)} ({ci}, paired bootstrap over {cell['users']:,} "
                f"users; seed spread ± {spread:.4f})."
            )
    if tested != longest and longest != ALL:
        cell = compared.get(longest, {})
        need = evaluation.get("intervals", {}).get("min_users")
        out.append(
            f"Histories {longest} hold {cell.get('users', 0):,} user(s): too few for an "
            f"interval (at least {need}), so no comparison is claimed there."
        )
    for bucket in dict.fromkeys(b for b in (ALL, tested) if b):
        headroom = headroom_cell(compared, bucket, reference)
        if headroom and math.isfinite(headroom["estimate"]):
            out.append(
                f"{name} captures {_interval(headroom, percent=True)} of the "
                f"headroom between the history-blind ranker and the oracle on "
                f"{_bucket_words(bucket)}."
            )
    for bucket in dict.fromkeys(b for b in (ALL, tested) if b):
        beyond = beyond_cell(compared, bucket)
        if beyond and math.isfinite(beyond["estimate"]):
            out.append(
                f"Of the oracle's lift over knowing nothing, {_interval(beyond, percent=True)} "
                f"lies beyond the last 2,048 events on {_bucket_words(bucket)}: what a "
                "ranker reading only the recent tail cannot reach."
            )
    if "oracle" in evaluation:
        out.append(
            f"The generator's oracle AUC (the ceiling) is {_fmt(evaluation['oracle']['all']['auc'])}"
            f" overall and {_fmt(evaluation['oracle'].get(longest, {}).get('auc'))} on {longest}."
        )
    if level and "valid_resamples" in level and level["valid_resamples"] < level["resamples"]:
        out.append(f"{level['resamples'] - level['valid_resamples']} draws held one class only "
                   "and were left out of the intervals.")  # fmt: skip
    for model, v in variants.items():
        cost = v["scoring_cost"]
        if len(cost) > 1:
            growth = cost[-1]["seconds"] / max(cost[0]["seconds"], 1e-12)
            out.append(
                f"{LABELS.get(model, model)}: scoring 1,000 candidates takes "
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
    compared = _compared(evaluation)
    for name in (*variants, *(c for c in WORLD_ORDER if c in compared.get(ALL, {}).get("auc", {}))):
        cells = [compared.get(b, {}).get("auc", {}).get(name) for b in buckets]
        if not any(cells):
            continue
        means = [c["estimate"] if c else math.nan for c in cells]
        # the bootstrap interval as the error bar (zero length where none was drawn)
        low = [c["estimate"] - c["low"] if c and math.isfinite(c["low"]) else 0.0 for c in cells]
        high = [c["high"] - c["estimate"] if c and math.isfinite(c["high"]) else 0.0
                for c in cells]  # fmt: skip
        style = {"linestyle": "--", "color": "k"} if name == "oracle_prob" else {}
        ax.errorbar(x, means, yerr=[low, high], marker="o", capsize=3,
                    label=LABELS.get(name, name), **style)  # fmt: skip
    if "oracle" in evaluation and "oracle_prob" not in compared.get(ALL, {}).get("auc", {}):
        ax.plot(x, [evaluation["oracle"].get(b, {}).get("auc", math.nan) for b in buckets],
                "k--", label="oracle (ceiling)")  # fmt: skip
    ax.set_xticks(x, buckets)
    ax.set_xlabel("history length (events before the snapshot)")
    ax.set_ylabel("AUC (mean over seeds, bootstrap interval)")
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


def _header(first: str, buckets: list[str]) -> list[str]:
    return [f"| {first} | " + " | ".join(buckets) + " |", "|---|" + "---|" * len(buckets)]


def _auc_cell(evaluation: dict, name: str, bucket: str) -> str:
    """mean [low, high] (± seed std): the bootstrap interval beside the seeds' spread."""
    cell = _compared(evaluation).get(bucket, {}).get("auc", {}).get(name)
    seeds = evaluation["variants"].get(name, {}).get("summary", {}).get(bucket, {}).get("auc")
    if cell is None:  # no intervals (an older evaluation): the seeds alone
        return _mean_std(evaluation["variants"][name]["summary"], bucket, "auc")
    text = _interval(cell)
    if seeds is not None and seeds["n"] > 1 and text != "n/a":
        text += f" (± {seeds['std']:.4f})"
    return text


def auc_table(evaluation: dict, buckets: list[str]) -> list[str]:
    """Every model's AUC per bucket, and the oracle's (the ceiling) where known."""
    confidence = evaluation.get("intervals", {}).get("confidence", 0.95)
    lines = [
        f"## AUC by history length: mean over seeds [{confidence:.0%} CI] (± seed std)",
        "",
        "The interval is a paired bootstrap over users (all of a user's impressions drawn "
        "together); the seed spread is the standard deviation of the seeds' AUCs. A bucket "
        f"with fewer than {evaluation.get('intervals', {}).get('min_users', '?')} users has "
        "no interval ([–]).",
        "",
        *_header("model", buckets),
    ]
    for name in evaluation["variants"]:
        cells = [_auc_cell(evaluation, name, b) for b in buckets]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    compared = _compared(evaluation)
    if "oracle_prob" in compared.get(ALL, {}).get("auc", {}):
        cells = [_interval(compared.get(b, {}).get("auc", {}).get("oracle_prob")) for b in buckets]
        lines.append("| oracle (ceiling) | " + " | ".join(cells) + " |")
    elif "oracle" in evaluation:
        cells = [_fmt(evaluation["oracle"].get(b, {}).get("auc")) for b in buckets]
        lines.append("| oracle (ceiling) | " + " | ".join(cells) + " |")
    return lines


def rows_table(evaluation: dict, buckets: list[str]) -> list[str]:
    """Impressions, users and clicks per bucket: what each interval rests on."""
    compared = _compared(evaluation)
    if not compared:
        first = next(iter(evaluation["variants"].values()))["summary"]
        rows = [_fmt(first.get(b, {}).get("rows", {}).get("mean"), 0) for b in buckets]
        return ["| rows | " + " | ".join(rows) + " |"]
    lines = ["## Rows and users per bucket", "", *_header("", buckets)]
    for key, label in (("rows", "impressions"), ("users", "users"), ("positives", "clicks")):
        cells = [f"{compared[b][key]:,}" if b in compared else "0" for b in buckets]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def difference_table(evaluation: dict, buckets: list[str]) -> list[str]:
    """The reference model minus each other model, per bucket, with the verdict that
    the interval alone gives."""
    reference = reference_model(evaluation)
    others = [n for n in evaluation["variants"] if n != reference]
    if not _compared(evaluation) or not others:
        return []
    confidence = evaluation["intervals"]["confidence"]
    name = SHORT.get(reference, reference)
    lines = [
        f"## {name} minus each model: AUC difference [{confidence:.0%} CI]",
        "",
        'Paired: on every draw of users, both models\' AUCs are recomputed. "beats" when '
        'the interval lies above zero, "trails" when below, else no significant '
        "difference.",
        "",
        *_header(f"{name} minus", buckets),
    ]
    by_bucket = {b: {o: (gap, word) for o, gap, word in differences(evaluation, b)}
                 for b in buckets}  # fmt: skip
    for other in others:
        cells = []
        for b in buckets:
            gap, word = by_bucket[b].get(other, (None, "not tested"))
            cells.append("n/a" if gap is None else f"{_signed(gap)} {word}")
        lines.append(f"| {LABELS.get(other, other)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


RAW_HISTORY = ("din_last100", "sim_category", "full_attention")


def target_checks(compared: dict, targets: list[dict]) -> list[dict]:
    """Each target on each of its buckets: the figure it is about (a difference of AUCs
    or a headroom captured, with its interval) and whether it is met: ``met`` when the
    whole interval clears the margin, ``met (estimate)`` when only the estimate does,
    ``met (within interval)`` for a ``within_interval`` target whose interval reaches
    the margin, ``missed`` otherwise, ``not measured`` where the figure is absent."""
    out = []
    for target in targets:
        model, margin = target["model"], target["margin"]
        for bucket in target["buckets"]:
            cell = compared.get(bucket, {})
            versus = target["versus"]
            if versus == "best_raw":
                raw = [m for m in RAW_HISTORY if m in cell.get("auc", {}) and m != model]
                versus = max(raw, key=lambda m: cell["auc"][m]["estimate"]) if raw else None
            if versus == "headroom":
                figure = headroom_cell(compared, bucket, model)
            else:
                figure = cell.get("difference", {}).get(model, {}).get(versus)
            if figure is None or not math.isfinite(figure["estimate"]):
                status = "not measured"
            elif math.isfinite(figure["low"]) and figure["low"] >= margin:
                status = "met"
            elif figure["estimate"] >= margin:
                status = "met (estimate)"
            elif target.get("within_interval") and figure["high"] >= margin:
                status = "met (within interval)"
            else:
                status = "missed"
            out.append({**target, "bucket": bucket, "against": versus, "figure": figure,
                        "status": status})  # fmt: skip
    return out


def _target_words(check: dict) -> str:
    model = SHORT.get(check["model"], check["model"])
    if check["versus"] == "headroom":
        return f"{model} captures at least {check['margin']:.0%} of the headroom"
    against = SHORT.get(check["against"], check["against"] or "a raw-history ranker")
    best = "the best raw-history ranker, " if check["versus"] == "best_raw" else ""
    return f"{model} minus {best}{against} >= {check['margin']:+.3f} AUC"


def targets_table(evaluation: dict) -> list[str]:
    """The profile's targets (``evaluation.targets``), each met or missed by its figure."""
    targets = evaluation.get("intervals", {}).get("targets") or []
    if not targets:
        return []
    checks = target_checks(_compared(evaluation), targets)
    missed = [c for c in checks if c["status"] in ("missed", "not measured")]
    lines = ["## Targets", "",
             f"{len(checks) - len(missed)} of {len(checks)} met. \"met\": the whole 95% "
             "interval clears the margin; \"met (estimate)\": only the estimate does.", "",
             "| target | users | figure [95% CI] | status |", "|---|---|---|---|"]  # fmt: skip
    for c in checks:
        figure = (
            "n/a"
            if c["figure"] is None
            else _interval(c["figure"], percent=c["versus"] == "headroom")
        )
        lines.append(f"| {_target_words(c)} | {_bucket_words(c['bucket'])} | {figure} | "
                     f"{c['status']} |")  # fmt: skip
    return [*lines, ""]


def headroom_table(evaluation: dict, buckets: list[str]) -> list[str]:
    """(AUC - blind) / (oracle - blind) per model and bucket, where both are known."""
    compared = _compared(evaluation)
    models = [n for n in evaluation["variants"]
              if any(n in compared.get(b, {}).get("headroom", {}) for b in buckets)]  # fmt: skip
    no_lift = "no headroom"  # the oracle does not beat the blind ranker by its interval
    if not models:
        return []
    lines = [
        "## Headroom captured: (AUC - blind) / (oracle - blind)",
        "",
        "The share of the gap between the history-blind ranker and the oracle that a model "
        "closes (0%: no better than ignoring history; 100%: the oracle), per draw of users; "
        '"no headroom" where the oracle does not beat the blind ranker by its interval.',
        "",
        *_header("model", buckets),
    ]
    for name in models:
        cells = [_interval(headroom_cell(compared, b, name), percent=True)
                 if _lift(compared.get(b, {}), "oracle_prob", "blind") else no_lift
                 for b in buckets]  # fmt: skip
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def world_table(evaluation: dict, buckets: list[str]) -> list[str]:
    """The oracle's AUC from nothing, the last 100 and 2,048 events and the whole
    history, and the share of its lift beyond the last 2,048 (synthetic data only)."""
    compared = _compared(evaluation)
    if not all(c in compared.get(ALL, {}).get("auc", {}) for c in WORLD_ORDER):
        return []
    lines = [
        "## The world's headroom: the oracle from more and more of the history",
        "",
        "The generator's click probability computed from nothing, the last 100 events, the "
        "last 2,048 and the whole history: how much there is to gain, per bucket, by "
        "reading further back. The last row is (whole - last 2,048) / (whole - nothing): "
        '"no lift" where the whole-history oracle does not beat the one that reads '
        "nothing by its interval.",
        "",
        *_header("oracle reads", buckets),
    ]
    for column in WORLD_ORDER:
        cells = [_interval(compared.get(b, {}).get("auc", {}).get(column)) for b in buckets]
        label = LABELS[column].removeprefix("oracle ").replace("(ceiling)", "the whole history")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [_interval(beyond_cell(compared, b), percent=True)
             if _lift(compared.get(b, {}), "oracle_prob", "oracle_prob_blind") else "no lift"
             for b in buckets]  # fmt: skip
    lines.append("| share of the lift beyond the last 2,048 | " + " | ".join(cells) + " |")
    return [*lines, ""]


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
        *auc_table(evaluation, buckets),
        "",
        *rows_table(evaluation, buckets),
        "",
        *difference_table(evaluation, buckets),
        *targets_table(evaluation),
        *headroom_table(evaluation, buckets),
        *world_table(evaluation, buckets),
    ]
    lines += [
        "## All metrics, all users",
        "",
        "| model | AUC | GAUC | log loss | NE | s / epoch | scoring 1k candidates |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
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
    """report.md, evaluation.json, predictions.parquet (when ``evaluation`` holds the
    ``predictions`` frame) and the PNGs into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    predictions = evaluation.get("predictions")
    measured = {k: v for k, v in evaluation.items() if k != "predictions"}
    files = {"report": str(folder / "report.md"), "evaluation": str(folder / "evaluation.json")}
    if predictions is not None:
        predictions.to_parquet(folder / PREDICTIONS, index=False)
        files["predictions"] = str(folder / PREDICTIONS)
    (folder / "evaluation.json").write_text(json.dumps(measured, indent=2, default=float))
    plots = _plots(measured, folder)
    text = render_markdown(measured, plots, title)
    probes = folder / "probes.json"
    if probes.exists():  # `vista probe` ran for this snapshot: what the summaries remember
        from vista.probing import render_probe_section

        text += "\n" + render_probe_section(json.loads(probes.read_text()))
    (folder / "report.md").write_text(text)
    return {**files, **{k: str(folder / v) for k, v in plots.items()}}
