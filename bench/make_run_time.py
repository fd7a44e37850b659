"""How long `make run` takes on this machine, for the README's first screen.

Runs `make run` as a user does (the .venv already installed: the install's own time
depends on the pip cache, not on this project), on a state folder with no lake yet, so
the synthetic data is generated and every DAG does its work; writes
docs/results/make_run.{json,md} with the machine, the commit, the load average at the
start and the run's headline.

    .venv/bin/python bench/make_run_time.py    # refuses if the lake exists: remove it first
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from vista.core.config import load_config
from vista.provenance import PROJECT_ROOT, RESULTS_DIR, provenance


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    cfg = load_config("local")
    lake = PROJECT_ROOT / cfg.paths.lake
    if lake.exists():
        print(f"error: {lake} exists, so `make run` would reuse its tables: move it aside "
              "to time a first run", file=sys.stderr)  # fmt: skip
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISTA", "MAKE"))}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(["make", "--no-print-directory", "run"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        return 1
    run = json.loads((PROJECT_ROOT / cfg.paths.reports / "latest" / "run.json").read_text())
    head = run.get("headline", {})
    origin = provenance()
    result = {**origin, "command": "make run", "seconds": round(seconds, 1),
              "load_average_at_start": round(load, 2), "headline": head}  # fmt: skip
    (RESULTS_DIR / "make_run.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    auc, oracle = head.get("ranker_auc"), head.get("oracle_auc")
    figures = f"; the served ranker's AUC {auc:.4f} (oracle {oracle:.4f})" if auc and oracle else ""
    text = (f"Measured on {origin['machine']['cpus']} cores (commit {origin['commit'][:10]}; "
            f"`bench/make_run_time.py`): `make run` took {minutes(seconds)} with `.venv` "
            f"installed, data generation included (load average {load:.1f} at the start)"
            f"{figures}. A first install adds its own time, mostly pip's downloads.\n")  # fmt: skip
    (RESULTS_DIR / "make_run.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
