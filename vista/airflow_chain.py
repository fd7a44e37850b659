"""`airflow dags test` for each DAG of the chain, one after another, in one process.

Each `airflow dags test` process pays Airflow's start-up, the DAG folder's import and,
for the Spark steps, a JVM's start; the chain's five DAGs paid them five times. This
module parses the same CLI arguments and calls the same command function for each DAG,
with the process's output sent to that DAG's log file, so a chain pays them once and
runs exactly what `airflow dags test <dag_id> <logical date> --conf ...` runs.

    python -m vista.airflow_chain <logical date> <log folder> <conf JSON per DAG> <dag_id>...

It is started by ``vista.airflow_runner.run_chain`` with Airflow's environment. It
writes one line per DAG to the standard error it was given (``<dag_id> <exit status>``)
and stops at the first DAG that fails; its exit status is that DAG's (0: all ran).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def output_to(log: Path):
    """File descriptors 1 and 2 (and so every logger, print and child process) into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("w") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_one(parser, dag_id: str, logical_date: str, conf: dict) -> int:
    """`airflow dags test` for one DAG, as its CLI runs it; its exit status."""
    args = ["dags", "test", dag_id, logical_date] + (["--conf", json.dumps(conf)] if conf else [])
    parsed = parser.parse_args(args)
    try:
        parsed.func(parsed)
    except SystemExit as stop:  # "DagRun failed", or a usage error
        if stop.code in (None, 0):
            return 0
        print(stop.code, file=sys.stderr)
        return stop.code if isinstance(stop.code, int) else 1
    except Exception:  # a failure outside the run's tasks: its traceback in the log
        import traceback

        traceback.print_exc()
        return 1
    return 0


def main(argv: list[str]) -> int:
    logical_date, log_dir, confs, *dag_ids = argv
    per_dag = json.loads(confs)
    report = os.fdopen(os.dup(2), "w", buffering=1)  # the caller's stderr, kept for status
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    for dag_id in dag_ids:
        with output_to(Path(log_dir) / f"{dag_id}.log"):
            status = run_one(parser, dag_id, logical_date, per_dag.get(dag_id) or {})
        print(f"{dag_id} {status}", file=report)
        if status != 0:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
