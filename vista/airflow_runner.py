"""Run the DAGs with Airflow's own CLI on the embedded default (SQLite, in-process).

Airflow's home, database and logs live under the configured state folder; the
variables below are the only way Airflow reads them, so every caller (the Makefile
through `vista dag-test`, and the tests) builds its environment here. The metadata
database is the profile's ``airflow.sql_alchemy_conn`` when set (PostgreSQL in
conf/airflow-postgres.yaml), else a SQLite file in Airflow's home.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from vista.core.config import PROJECT_ROOT, VistaConfig
from vista.orchestration import CHAIN, DAG_PARAMS

DAGS_FOLDER = PROJECT_ROOT / "dags"


# airflow.cfg options that set an address Airflow listens on (its default: 0.0.0.0)
LISTENERS = (("api", "host"), ("scheduler", "scheduler_health_check_server_host"))


def _variable(section: str, key: str) -> str:
    return f"AIRFLOW__{section.upper()}__{key.upper()}"


def metadata_url(cfg: VistaConfig) -> str:
    """The metadata database: the profile's URL, else SQLite beside Airflow's home."""
    return cfg.airflow.sql_alchemy_conn or f"sqlite:///{cfg.paths.state / 'airflow' / 'airflow.db'}"


def airflow_environment(cfg: VistaConfig) -> dict[str, str]:
    home = cfg.paths.state / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": cfg.airflow.executor,
        "AIRFLOW__CORE__PARALLELISM": str(cfg.airflow.parallelism),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(cfg),
        **{_variable(section, key): cfg.airflow.listen_host for section, key in LISTENERS},
        "VISTA_PROFILE": cfg.profile_ref,
        # resolved here, so the DAG file need not load the profile when Airflow parses it
        "VISTA_INGEST_SCHEDULE": os.environ.get("VISTA_INGEST_SCHEDULE")
        or (cfg.snapshots.cron if cfg.snapshots.scheduled else "none"),
        # the state and lake folders travel to the tasks with the profile
        "VISTA__PATHS__STATE": str(cfg.paths.state),
        "VISTA__PATHS__LAKE": str(cfg.paths.lake),
        "VISTA__PATHS__REPORTS": str(cfg.paths.reports),
        "GX_ANALYTICS_ENABLED": "false",
        "FEAST_USAGE": "False",
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }


def pin_listeners(text: str, host: str) -> str:
    """airflow.cfg's text with every listener address (LISTENERS) set to ``host``; the
    rest, comments included, as it was."""
    section, out = "", []
    for line in text.splitlines(keepends=True):
        if header := re.match(r"\[(\w+)\]\s*$", line):
            section = header.group(1)
        elif (option := re.match(r"(\w+)\s*=", line)) and (section, option.group(1)) in LISTENERS:
            line = f"{option.group(1)} = {host}\n"
        out.append(line)
    return "".join(out)


def airflow_cfg(cfg: VistaConfig) -> Path:
    return cfg.paths.state / "airflow" / "airflow.cfg"


def pin_airflow_cfg(cfg: VistaConfig) -> Path | None:
    """Airflow writes airflow.cfg into its home on its first run, with Airflow's defaults
    (0.0.0.0: every interface) whatever the environment says; anyone who later runs
    `airflow api-server` on that home would listen everywhere. So the file's listeners
    are set to airflow.listen_host once it exists (a home made before included)."""
    path = airflow_cfg(cfg)
    if not path.exists():
        return None
    text = path.read_text()
    if (pinned := pin_listeners(text, cfg.airflow.listen_host)) != text:
        path.write_text(pinned)
    return path


def _airflow(cfg: VistaConfig, args: list[str], log: Path | None) -> subprocess.CompletedProcess:
    env = {**os.environ, **airflow_environment(cfg)}
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    if log is None:
        return subprocess.run(command, env=env, check=False)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        return subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)


_MIGRATED_SERVERS: set[str] = set()


def ensure_airflow_db(cfg: VistaConfig) -> None:
    """`airflow db migrate` (`dags test` needs the tables): once per state folder on
    SQLite, whose file sits beside the marker; once per process for a server database,
    which may be new or recreated without this folder knowing (~7 s, a no-op if current)."""
    home = cfg.paths.state / "airflow"
    marker = home / ".migrated"
    url = metadata_url(cfg)
    on_sqlite = url.startswith("sqlite")
    migrated = marker.exists() if on_sqlite else url in _MIGRATED_SERVERS
    if migrated:
        pin_airflow_cfg(cfg)
        return
    home.mkdir(parents=True, exist_ok=True)
    result = _airflow(cfg, ["db", "migrate"], home / "db_migrate.log")
    pin_airflow_cfg(cfg)  # Airflow wrote it just now, unless it was there
    if result.returncode != 0:
        hint = "" if on_sqlite else " (is it up? `vista postgres start` starts a local one)"
        raise RuntimeError(f"airflow db migrate failed; see {home / 'db_migrate.log'}{hint}")
    if on_sqlite:
        marker.touch()
    else:
        _MIGRATED_SERVERS.add(url)


def run_chain(cfg: VistaConfig, logical_date: str, log_dir: Path, conf: dict | None = None,
              on_start=None) -> str | None:  # fmt: skip
    """`airflow dags test` for each DAG of the chain in order, in one process
    (``vista.airflow_chain``), each DAG's output in ``log_dir/<dag_id>.log``; calls
    ``on_start(dag_id)`` as each starts. Returns the DAG that failed, or None."""
    ensure_airflow_db(cfg)
    confs = {dag_id: {k: v for k, v in (conf or {}).items() if k in DAG_PARAMS[dag_id]}
             for dag_id in CHAIN}  # fmt: skip
    command = [sys.executable, "-m", "vista.airflow_chain", logical_date, str(log_dir),
               json.dumps(confs), *CHAIN]  # fmt: skip
    env = {**os.environ, **airflow_environment(cfg)}
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, failed = list(CHAIN), None
    if on_start:
        on_start(pending[0])
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as chain:  # fmt: skip
        for line in chain.stderr:
            dag_id, _, status = line.strip().partition(" ")
            if dag_id not in pending or not status.lstrip("-").isdigit():
                continue  # Airflow's start-up output, before the logs take it
            pending.remove(dag_id)
            if int(status) != 0:
                failed = dag_id
                break
            if pending and on_start:
                on_start(pending[0])
        returncode = chain.wait()
    # the next DAG ran here; no scheduler should start it again later
    clear_queued_runs(cfg, CHAIN)
    if failed is None and returncode != 0:  # died inside a DAG: the one that was running
        failed = pending[0] if pending else CHAIN[-1]
    return failed


ADMIN_USER = "admin"
PASSWORD_ENV = "VISTA_AIRFLOW_ADMIN_PASSWORD"


def admin_password(cfg: VistaConfig, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(password, where it came from) for the UI's admin: $VISTA_AIRFLOW_ADMIN_PASSWORD,
    else the one generated earlier for this state folder, else a new random one. It is
    kept (mode 600) in the passwords file Airflow's simple auth manager reads."""
    import secrets

    environ = os.environ if environ is None else environ
    path = passwords_file(cfg)
    stored = json.loads(path.read_text()) if path.exists() else {}
    if environ.get(PASSWORD_ENV):
        password, origin = environ[PASSWORD_ENV], f"${PASSWORD_ENV}"
    elif stored.get(ADMIN_USER):
        password, origin = stored[ADMIN_USER], f"generated earlier, kept in {path}"
    else:
        password, origin = secrets.token_urlsafe(12), f"generated now, kept in {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps({**stored, ADMIN_USER: password}) + "\n")
    return password, origin


def passwords_file(cfg: VistaConfig) -> Path:
    return cfg.paths.state / "airflow" / "simple_auth_manager_passwords.json"


def standalone_environment(cfg: VistaConfig, port: int, host: str | None = None) -> dict[str, str]:
    return {
        **airflow_environment(cfg),
        "AIRFLOW__API__HOST": host or cfg.airflow.listen_host,
        "AIRFLOW__API__PORT": str(port),
        # DAGs registered here for the first time: unpaused (the DAGs say so themselves too)
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(cfg)),
    }


SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)

# What `airflow standalone` starts, less its log servers: the scheduler's (8793) and the
# triggerer's (8794) listen on every interface whatever airflow.cfg says (Airflow 3.3 binds
# them to "" in airflow/utils/serve_logs/core.py, with no setting for the address). They
# serve task logs to an API server on another machine; on this one the API server reads
# the same log folder itself.
COMPONENTS = {
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "api-server": ["api-server"],
}


def paused_dags(cfg: VistaConfig) -> list[str]:
    """The chain's DAGs that the metadata database holds paused, in chain order; [] when
    there is no database yet or it cannot be read."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    url = metadata_url(cfg)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return []
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text("SELECT dag_id FROM dag WHERE is_paused AND NOT is_stale")
            paused = set(connection.execute(query).scalars())
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()
    return [dag_id for dag_id in CHAIN if dag_id in paused]


def clear_queued_runs(cfg: VistaConfig, dag_ids: list[str]) -> int:
    """Forget the asset-triggered runs queued for these DAGs; returns how many. A `dags
    test` run's asset events queue the next DAG of the chain, unpaused, for the next
    scheduler to start; `vista dag-test` runs that DAG itself, so a later `vista
    airflow-ui` would run the chain's last four DAGs again, all at once, on its start."""
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(metadata_url(cfg))
    query = text("DELETE FROM asset_dag_run_queue WHERE target_dag_id IN :ids")
    try:
        with engine.begin() as connection:
            query = query.bindparams(bindparam("ids", expanding=True))
            return connection.execute(query, {"ids": list(dag_ids)}).rowcount
    finally:
        engine.dispose()


def unpause_command(cfg: VistaConfig) -> str:
    return "vista unpause" + ("" if cfg.profile == "local" else f" --profile {cfg.profile}")


def paused_notice(cfg: VistaConfig) -> str | None:
    """One line naming the chain's paused DAGs and the command that unpauses them, or None."""
    paused = paused_dags(cfg)
    if not paused:
        return None
    return (f"paused in Airflow: {', '.join(paused)}: a run of a paused DAG stays queued and "
            f"the asset chain stops there; unpause: {unpause_command(cfg)}")  # fmt: skip


def unpause_log(cfg: VistaConfig) -> Path:
    return cfg.paths.state / "airflow" / "unpause.log"


def unpause(cfg: VistaConfig, dag_ids: list[str]) -> int:
    """`airflow dags unpause` for these DAGs (one call: a regex of their ids); its output,
    whose table shows each DAG's state from before the call, goes to unpause_log."""
    ensure_airflow_db(cfg)
    pattern = "^(" + "|".join(re.escape(d) for d in dag_ids) + ")$"
    args = ["dags", "unpause", "--treat-dag-id-as-regex", "--yes", pattern]
    return _airflow(cfg, args, unpause_log(cfg)).returncode


def _relay(name: str, stream) -> None:
    for line in stream:
        sys.stdout.write(f"{name:<13} | {line}")
        sys.stdout.flush()


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt


def standalone(cfg: VistaConfig, port: int, host: str | None = None) -> int:
    """Airflow's scheduler, DAG processor, triggerer and API server (with the UI) on this
    profile's state, each its own `airflow` process, until interrupted or until one of
    them exits (its exit status is returned; the others are stopped)."""
    import signal
    import threading
    import time

    ensure_airflow_db(cfg)
    password, origin = admin_password(cfg)
    print(f"Airflow UI: http://localhost:{port}  user: {ADMIN_USER}  password: {password}  "
          f"({origin})", flush=True)  # fmt: skip
    if notice := paused_notice(cfg):
        print(notice, flush=True)
    env = {**os.environ, **standalone_environment(cfg, port, host)}
    airflow = str(Path(sys.executable).parent / "airflow")
    processes: dict[str, subprocess.Popen] = {}
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        for name, args in COMPONENTS.items():
            process = subprocess.Popen([airflow, *args], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)  # fmt: skip
            processes[name] = process
            threading.Thread(target=_relay, args=(name, process.stdout), daemon=True).start()
        while not (ended := [n for n, p in processes.items() if p.poll() is not None]):
            time.sleep(0.5)
        print(f"airflow {ended[0]} exited with status {processes[ended[0]].returncode}; "
              "stopping the others", flush=True)  # fmt: skip
        return processes[ended[0]].returncode or 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
