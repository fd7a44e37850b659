"""`vista probe`: what the current summarizer's summaries remember, against history length.

Loads the current (frozen) summarizer and a sample of the snapshot's histories, then
for each configured length samples probe histories from those users, summarizes them
whole and as their last ``probe.baseline_events`` events (the same summarizer on a
truncated history: what truncation alone loses), and fits the linear probes of
models/probes.py on both. Writes reports/<as_of>/probes.json, probes.md and probes.png;
``render_probe_section`` is the markdown section for the main report.

Probe histories come from the snapshot's ``user_histories`` table (each probe user
resamples one real user's events). Fallback, recorded in probes.json under
``source``: when the table has no partition for ``as_of`` or no user with at least
``probe.min_source_events`` events, sources are synthetic users (a Dirichlet category
mix over 16 categories; models.probes.synthetic_sources).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from models import probes
from vista.core import lake
from vista.core.config import VistaConfig
from vista.core.names import HISTORIES, PARTITION_COL, SUMMARIES
from vista.core.snapshot import Snapshot
from vista.provenance import provenance
from vista.state import checkpoint_dir, current_summarizer, summarizer_versions

FALLBACK_CATEGORIES = 16
# fresh ids tried for the needle items (their embedding rows must be unused)
NEEDLE_CANDIDATES = 10_000
FEATURE_SETS = ("full", "last_n")


class ProbeVersionError(ValueError):
    """The probes would read summaries of two summarizer versions."""


# ---------------------------------------------------------------- versions
def snapshot_summarizer_version(cfg: VistaConfig, as_of: Snapshot, current: str) -> str | None:
    """The summarizer version that wrote ``as_of``'s stored summaries: ``current`` when
    its own table has that partition, else the newest other version's table that has
    it (local lakes; an object-store lake is only checked for ``current``), else None.
    Each commit also records the version that made it, which is what is returned."""
    day = as_of.iso
    root = cfg.paths.table(SUMMARIES)
    others = summarizer_versions(cfg) if isinstance(root, Path) else []
    for version in [current, *reversed([v for v in others if v != current])]:
        commit = lake.partition_commit(root / version, PARTITION_COL, day)
        if commit is not None:
            return commit.get("vista.summarizer_version", version)
    return None


def check_versions(checkpoint: str, snapshot: str | None, as_of: Snapshot) -> None:
    """Refuse to probe one summarizer beside summaries another one made (one line)."""
    if snapshot is not None and snapshot != checkpoint:
        raise ProbeVersionError(
            f"the current summarizer {checkpoint} is not the version that summarized the "
            f"{as_of.date()} snapshot ({snapshot}): summarize the snapshot with it first "
            f"(vista summarize), or make {snapshot} the current summarizer again"
        )


# ---------------------------------------------------------------- probe sources
def load_sources(
    cfg: VistaConfig, as_of: Snapshot, n_users: int
) -> tuple[list[probes.History], dict[str, Any]]:
    """``n_users`` source histories, one per probe user: the snapshot's users with at
    least ``min_source_events`` events, drawn without replacement while there are
    enough (seeded); only the drawn users' arrays are read."""
    p = cfg.probe
    path = cfg.paths.table(HISTORIES)
    day_filter = [(PARTITION_COL, "=", as_of.iso)]
    eligible = np.zeros(0, dtype=np.int64)
    if lake.table_exists(path):
        index = lake.read_arrow(path, filters=day_filter, columns=["user_id", "history_length"])
        lengths = index.column("history_length").to_numpy()
        eligible = np.sort(index.column("user_id").to_numpy()[lengths >= p.min_source_events])
    if len(eligible) == 0:
        as_of_us = as_of.micros
        note = (
            f"no user with >= {p.min_source_events} events in {path} for {as_of.date()}: "
            f"synthetic sources ({FALLBACK_CATEGORIES} categories)"
        )
        sources = probes.synthetic_sources(n_users, FALLBACK_CATEGORIES, as_of_us, p.seed)
        return sources, {"kind": "synthetic", "users": n_users, "note": note}
    rng = np.random.default_rng([p.seed, 0])
    drawn = rng.choice(eligible, n_users, replace=len(eligible) < n_users)
    by_user = dict(_read_histories(path, as_of, sorted(set(drawn.tolist()))))
    return [by_user[int(u)] for u in drawn], {
        "kind": "user_histories",
        "users": len(by_user),
        "eligible_users": len(eligible),
        "with_replacement": bool(len(eligible) < n_users),
    }


def _read_histories(
    path: Path, as_of: Snapshot, user_ids: list[int]
) -> Iterator[tuple[int, probes.History]]:
    """(user_id, thinned history) of these users, streamed a few rows at a time: the
    arrays of 256 users of 1M events each never sit in memory together."""
    import pyarrow.compute as pc
    from pyarrow import fs as pa_fs

    table = lake.open_table(path)
    local = None
    if table.table_uri.startswith("file://") or "://" not in table.table_uri:
        # Arrow's native filesystem for local tables, as lake.arrow_of does (and why)
        local = pa_fs.SubTreeFileSystem(
            table.table_uri.removeprefix("file://"), pa_fs.LocalFileSystem()
        )
    dataset = table.to_pyarrow_dataset(
        partitions=[(PARTITION_COL, "=", as_of.iso)], filesystem=local
    )
    columns = ["item_ids", "categories", "event_timestamps"]
    batches = dataset.to_batches(
        columns=["user_id", *columns], batch_size=8, filter=pc.field("user_id").isin(user_ids)
    )
    for batch in batches:
        # a list column's values are shared by the batch; offsets index into them
        lists = [batch.column(c) for c in columns]
        values = [lst.values.to_numpy(zero_copy_only=False) for lst in lists]
        offsets = [lst.offsets.to_numpy() for lst in lists]
        for row, user in enumerate(batch.column("user_id").to_pylist()):
            arrays = (
                v[o[row] : o[row + 1]].astype(np.int64)
                for v, o in zip(values, offsets, strict=True)
            )
            yield int(user), probes.thin_history(probes.History(*arrays))


def choose_needles(sources: list[probes.History], n: int, as_of_us: int, cfg) -> np.ndarray:
    """Fresh item ids (above every source id) whose embedding rows no source item
    uses; the rows are those encode_histories gives, whatever its hashing."""
    from models.summarizer import encode_histories

    def rows(ids: np.ndarray) -> np.ndarray:
        zeros = np.zeros_like(ids)
        return encode_histories([ids], [zeros], [zeros], as_of_us, cfg).items[0].numpy()

    used = np.unique(np.concatenate([s.items for s in sources]))
    candidates = np.arange(NEEDLE_CANDIDATES, dtype=np.int64) + max(int(used.max()), 0) + 1
    return probes.pick_needles(candidates, rows(candidates), rows(used), n)


# ---------------------------------------------------------------- the step
def _log(progress: bool, text: str) -> None:
    if progress:
        print(f"probe: {text}", file=sys.stderr, flush=True)


def run_probes(cfg: VistaConfig, as_of: Snapshot, progress: bool = True) -> dict[str, Any]:
    """Every probe at every length, on the current summarizer; returns probes.json's
    content. Fails before any work when the checkpoint is not the version that made
    the snapshot's stored summaries."""
    from models.summarizer import load_checkpoint

    started = time.perf_counter()
    origin = provenance()  # the code that probes, before it runs for minutes
    current = current_summarizer(cfg)
    stored = snapshot_summarizer_version(cfg, as_of, current["version"])
    check_versions(current["version"], stored, as_of)
    model = load_checkpoint(Path(current["path"]), cfg.summarizer)
    loaded = model.version() if hasattr(model, "version") else current["version"]
    if loaded != current["version"]:
        raise ProbeVersionError(
            f"checkpoint {current['path']} holds summarizer {loaded}, but "
            f"{checkpoint_dir(cfg) / 'current.json'} names {current['version']}"
        )
    p = cfg.probe
    as_of_us = as_of.micros
    lengths = sorted(p.lengths)
    sources, source = load_sources(cfg, as_of, max(probes.users_at(n, p) for n in lengths))
    categories = probes.top_categories(sources, p.categories)
    needle_ids = choose_needles(sources, p.needles, as_of_us, cfg.summarizer)
    train_size = probes.common_train_size(p)
    rows = []
    for length in lengths:
        n = probes.users_at(length, p)
        t0 = time.perf_counter()
        data = probes.build_probe_set(
            model, sources, length, n, categories, needle_ids, as_of_us, cfg.summarizer, p
        )
        t1 = time.perf_counter()
        folds = probes.fold_ids(n, p.folds, p.seed)
        row: dict[str, Any] = {"length": length, "users": n, "train_users": train_size}
        for name in FEATURE_SETS:
            row[name] = probes.evaluate_probes(
                data.features[name], data.truth, p.depths, folds, p.bootstrap, p.seed, train_size
            )
        row["summarize_seconds"] = round(t1 - t0, 2)
        row["probe_seconds"] = round(time.perf_counter() - t1, 2)
        rows.append(row)
        _log(
            progress,
            f"{length:,} events x {n} users: summarized in {t1 - t0:.1f} s, "
            f"probed in {row['probe_seconds']:.1f} s",
        )
    return {
        "as_of": as_of.iso,
        "profile": cfg.profile,
        "provenance": origin,
        "summarizer_version": current["version"],
        # None: the snapshot has no stored summaries (nothing to mix with)
        "snapshot_summarizer_version": stored,
        "summary_width": int(data.features["full"].shape[1]),
        "train_users": train_size,
        "source": source,
        "categories": categories.tolist(),
        "needle_items": needle_ids.tolist(),
        "baseline": (
            f"last_n: the same summarizer on the last {p.baseline_events} events of "
            "each probe history"
        ),
        "settings": p.model_dump(mode="json"),
        "lengths": rows,
        "seconds": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------- report
def _cell(fig: dict | None) -> str:
    if not fig or fig.get("value") is None:
        return "n/a"
    interval = "" if fig.get("lo") is None else f" [{fig['lo']:.2f}, {fig['hi']:.2f}]"
    return f"{fig['value']:.2f}{interval}"


def _depths(probes_: dict) -> list[int]:
    found = {int(d) for row in probes_["lengths"] for d in row["full"]["needle_auc"]}
    return sorted(found)


def render_probe_section(probes: dict) -> str:
    """The probes as a markdown section (## level) for a report in the same folder as
    probes.png."""
    s = probes["settings"]
    last = f"last {s['baseline_events']}"
    source = probes["source"]
    origin = (
        "the snapshot's user histories"
        if source["kind"] == "user_histories"
        else f"synthetic users ({source['note']})"
    )
    lines = [
        "## What a summary remembers (linear probes)",
        "",
        f"Linear probes on the frozen summaries of summarizer `{probes['summarizer_version']}` "
        f"({probes['summary_width']} features per user) of probe histories resampled from "
        f"{origin}. Beside them, the same summarizer applied to the {last} events of each "
        "probe history: what truncating the history loses. Every probe is fitted on "
        f"{probes['train_users']} probe users at every length (so that a change with length "
        "is not a change in sample size) and scored on users it never saw "
        f"({s['folds']}-fold cross-fitting); a 95% bootstrap interval over the scored users "
        f"({s['bootstrap']} resamples) follows each figure. Out of fold, chance is R² <= 0 "
        "and AUC 0.5.",
        "",
        f"**(a) Event counts.** R² of log(1 + events) per category, mean over the "
        f"{len(probes['categories'])} most frequent categories.",
        "",
        f"| history length | users | summary | {last} |",
        "|---:|---:|---|---|",
    ]
    for row in probes["lengths"]:
        lines.append(
            f"| {row['length']:,} | {row['users']} | {_cell(row['full']['count_r2'])} "
            f"| {_cell(row['last_n']['count_r2'])} |"
        )
    depths = _depths(probes)
    lines += [
        "",
        f"**(b) Needle items.** AUC of a probe per needle item ({len(probes['needle_items'])} "
        "fresh item ids whose embedding rows no source item uses), each planted in half of "
        "the histories at a depth drawn from the grid (1 = the most recent event): histories "
        "with the needle at exactly that depth against histories without it, mean over "
        "needles. 0.5 is chance.",
        "",
        "| history length | features | " + " | ".join(f"depth {d:,}" for d in depths) + " |",
        "|---:|---|" + "---|" * len(depths),
    ]
    for row in probes["lengths"]:
        for name, label in (("full", "summary"), ("last_n", last)):
            cells = [_cell(row[name]["needle_auc"].get(str(d))) for d in depths]
            lines.append(f"| {row['length']:,} | {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**(c) Recency.** R² of log(1 + days since the category's last event), over users "
        "with that category, mean over the probed categories.",
        "",
        f"| history length | users | summary | {last} |",
        "|---:|---:|---|---|",
    ]
    for row in probes["lengths"]:
        lines.append(
            f"| {row['length']:,} | {row['users']} | "
            f"{_cell(row['full']['recency_r2'])} | {_cell(row['last_n']['recency_r2'])} |"
        )
    lines += ["", "![probes against history length](probes.png)", ""]
    return "\n".join(lines)


def render_probe_table(probes: dict) -> str:
    """A plain-text table for the terminal: each figure as summary / last-N."""
    last = f"last {probes['settings']['baseline_events']}"
    depths = _depths(probes)

    def pair(row: dict, pick) -> str:
        values = [pick(row[name]) for name in FEATURE_SETS]
        return " / ".join("  n/a" if v is None else f"{v:5.2f}" for v in values)

    head = f"{'length':>9} {'users':>5}  {'count R2':>13}  {'recency R2':>13}"
    head += "".join(f"  {'AUC @' + format(d, ','):>13}" for d in depths)
    lines = [f"summarizer {probes['summarizer_version']}: each cell summary / {last}", head]
    for row in probes["lengths"]:
        line = f"{row['length']:>9,} {row['users']:>5}"
        line += f"  {pair(row, lambda f: f['count_r2']['value']):>13}"
        line += f"  {pair(row, lambda f: f['recency_r2']['value']):>13}"
        for d in depths:
            cell = pair(row, lambda f, d=d: f["needle_auc"].get(str(d), {}).get("value"))
            line += f"  {cell:>13}"
        lines.append(line)
    return "\n".join(lines)


def render_probes(probes: dict) -> str:
    """probes.md: a title, then the section."""
    return (
        f"# What a summary remembers ({probes['profile']}, as_of {probes['as_of']})\n\n"
        + render_probe_section(probes)
    )


def _plot(probes: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = probes["lengths"]
    x = [r["length"] for r in rows]
    last = f"last {probes['settings']['baseline_events']}"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))

    def series(name: str, key: str):
        figs = [r[name][key] for r in rows]
        mid = [math.nan if f["value"] is None else f["value"] for f in figs]
        err = [
            [0 if f["lo"] is None else max(m - f["lo"], 0) for f, m in zip(figs, mid, strict=True)],
            [0 if f["hi"] is None else max(f["hi"] - m, 0) for f, m in zip(figs, mid, strict=True)],
        ]
        return mid, err

    for ax, key, title in (
        (axes[0], "count_r2", "(a) log event count per category"),
        (axes[2], "recency_r2", "(c) log days since a category's last event"),
    ):
        for name, label, style in (("full", "summary", "o-"), ("last_n", last, "s--")):
            mid, err = series(name, key)
            ax.errorbar(x, mid, yerr=err, fmt=style, capsize=3, label=label)
        ax.set_ylabel("R² (out of fold)")
        ax.set_title(title)
        # a wide interval on a handful of users must not flatten the rest
        ax.set_ylim(max(ax.get_ylim()[0], -1.0), 1.02)
    ax = axes[1]
    for i, depth in enumerate(_depths(probes)):
        color = f"C{i}"
        for name, style in (("full", "o-"), ("last_n", "s:")):
            ys = [r[name]["needle_auc"].get(str(depth), {}).get("value") for r in rows]
            ys = [math.nan if v is None else v for v in ys]
            label = f"depth {depth:,}" if name == "full" else None
            ax.plot(x, ys, style, color=color, label=label)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_ylim(min(ax.get_ylim()[0], 0.4), 1.02)
    ax.set_ylabel(f"AUC (solid: summary, dotted: {last})")
    ax.set_title("(b) needle item present, by depth")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("probe history length (events)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"What a summary remembers: summarizer {probes['summarizer_version']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_probes(folder: Path, probes: dict) -> dict[str, str]:
    """reports/<as_of>/probes.json, probes.md and probes.png."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "probes": folder / "probes.md",
        "json": folder / "probes.json",
        "plot": folder / "probes.png",
    }
    files["json"].write_text(json.dumps(probes, indent=2, sort_keys=True))
    files["probes"].write_text(render_probes(probes))
    _plot(probes, files["plot"])
    return {k: str(v) for k, v in files.items()}
