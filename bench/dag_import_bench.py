"""Import time of the dags folder, as the DAG processor pays it (target: under 2 s).

In a fresh interpreter per trial: the time to import Airflow's task SDK (which every
DAG file needs) and then the time to parse every file in dags/ with Airflow's own
DagBag, plus the per-file durations DagBag records and the heavy modules (torch,
pyspark, feast, GX, deltalake, pandas) that parsing pulled in (should be none).
Prints a table and writes bench/results/dag_import.json.

    .venv/bin/python bench/dag_import_bench.py [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HEAVY = ("torch", "pyspark", "feast", "great_expectations", "deltalake", "pandas", "numpy")

TRIAL = """
import json, sys, time
started = time.perf_counter()
import airflow.sdk  # noqa: F401  every DAG file imports it
sdk = time.perf_counter() - started
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder={dags!r})
parse = time.perf_counter() - t0
print(json.dumps({{
    "sdk_import_s": sdk,
    "dagbag_parse_s": parse,
    "total_s": time.perf_counter() - started,
    "dags": sorted(bag.dags),
    "import_errors": {{k: str(v) for k, v in bag.import_errors.items()}},
    "per_file_s": {{s.file: s.duration.total_seconds() for s in bag.dagbag_stats}},
    "heavy_modules_loaded": [m for m in {heavy!r} if m in sys.modules],
}}))
"""


def one_trial(home: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "PYTHONPATH": str(ROOT),
    }
    code = TRIAL.format(dags=str(ROOT / "dags"), heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "dag_import.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        trials = [one_trial(Path(home)) for _ in range(args.trials)]
    median = {k: statistics.median(t[k] for t in trials)
              for k in ("sdk_import_s", "dagbag_parse_s", "total_s")}  # fmt: skip
    files = sorted(trials[0]["per_file_s"])
    per_file = {f: statistics.median(t["per_file_s"][f] for t in trials) for f in files}
    result = {
        "trials": args.trials,
        "median": median,
        "per_file_median_s": per_file,
        "dags": trials[0]["dags"],
        "import_errors": trials[0]["import_errors"],
        "heavy_modules_loaded": sorted({m for t in trials for m in t["heavy_modules_loaded"]}),
        "target_s": 2.0,
        "meets_target": median["total_s"] < 2.0,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    print(f"dags folder import, median of {args.trials} fresh interpreters")
    print(f"{'what':<34}{'seconds':>10}")
    print(f"{'import airflow.sdk':<34}{median['sdk_import_s']:>10.3f}")
    for name, seconds in per_file.items():
        print(f"{'  parse ' + name:<34}{seconds:>10.3f}")
    print(f"{'DagBag over dags/ (all files)':<34}{median['dagbag_parse_s']:>10.3f}")
    print(f"{'total (target < 2 s)':<34}{median['total_s']:>10.3f}")
    print(f"heavy modules loaded: {result['heavy_modules_loaded'] or 'none'}; "
          f"import errors: {result['import_errors'] or 'none'}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
