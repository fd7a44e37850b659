"""A Spark standalone cluster on this machine: one master and N workers on loopback.

For development and tests, to show that the jobs run on a cluster when only
``spark.master`` changes (``conf/cluster.yaml``). They are started with the pyspark
distribution's own daemon script, ``sbin/spark-daemon.sh``: pip's pyspark ships no
start-master.sh / start-worker.sh, which are thin wrappers around it. A real cluster
is described in infra/spark/README.md.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclasses.dataclass(frozen=True)
class Cluster:
    home: Path  # logs, pid files and the workers' work folders (executor logs)
    host: str = "127.0.0.1"
    port: int = 7077
    # not 8080: Airflow's UI (`make airflow-ui`) listens there
    webui_port: int = 8180
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "2g"
    # names the pid and log files, so two clusters (two test runs) never stop each other's
    ident: str = "vista"

    @classmethod
    def for_master(cls, master: str, home: Path, **kwargs: Any) -> Cluster:
        """The cluster that a ``spark://host:port`` master URL names."""
        if not master.startswith("spark://"):
            raise ValueError(f"not a standalone master URL (spark://host:port): {master!r}")
        host, _, port = master.removeprefix("spark://").rpartition(":")
        return cls(home=home, host=host, port=int(port), **kwargs)

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def state_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}/json/"

    def work_dir(self, worker: int) -> Path:
        return self.home / "work" / f"worker-{worker}"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def daemon_env(cluster: Cluster, environ: dict[str, str]) -> dict[str, str]:
    # $SPARK_MASTER makes spark-daemon.sh rsync SPARK_HOME from that host first;
    # $SPARK_NO_DAEMONIZE would make each start block
    env = {k: v for k, v in environ.items() if k not in ("SPARK_MASTER", "SPARK_NO_DAEMONIZE")}
    return env | {
        "SPARK_HOME": str(spark_home()),
        # an empty conf folder: no spark-env.sh or spark-defaults.conf from elsewhere
        "SPARK_CONF_DIR": str(cluster.home / "conf"),
        "SPARK_LOG_DIR": str(cluster.home / "logs"),
        "SPARK_PID_DIR": str(cluster.home / "pids"),
        "SPARK_IDENT_STRING": cluster.ident,
        "SPARK_LOCAL_IP": cluster.host,
    }


def daemons(cluster: Cluster) -> list[tuple[str, int, list[str]]]:
    """(class, instance, arguments) of each daemon, master first."""
    master = ["--host", cluster.host, "--port", str(cluster.port),
              "--webui-port", str(cluster.webui_port)]  # fmt: skip
    # worker web UIs on free ports (0): the master's UI links to them
    worker = ["--host", cluster.host, "--cores", str(cluster.worker_cores),
              "--memory", cluster.worker_memory, "--webui-port", "0"]  # fmt: skip
    return [(MASTER_CLASS, 1, master)] + [
        (WORKER_CLASS, i, [*worker, "--work-dir", str(cluster.work_dir(i)), cluster.master_url])
        for i in range(1, cluster.workers + 1)
    ]


def _daemon(cluster: Cluster, action: str, cls: str, instance: int, args=()) -> str:
    script = spark_home() / "sbin" / "spark-daemon.sh"
    done = subprocess.run(
        ["bash", str(script), action, cls, str(instance), *args],
        env=daemon_env(cluster, dict(os.environ)), capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def _pid_file(cluster: Cluster, cls: str, instance: int) -> Path:
    return cluster.home / "pids" / f"spark-{cluster.ident}-{cls}-{instance}.pid"


def master_state(cluster: Cluster) -> dict[str, Any] | None:
    """The master's state (workers, running and finished applications), or None while
    it does not answer."""
    try:
        with urllib.request.urlopen(cluster.state_url, timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def start(cluster: Cluster, timeout: float = 120) -> dict[str, Any]:
    """Start the master and the workers; return the master's state once every worker
    has registered. Stops whatever it started if that does not happen in ``timeout``."""
    for sub in ("conf", "logs", "pids"):
        (cluster.home / sub).mkdir(parents=True, exist_ok=True)
    master, *workers = daemons(cluster)
    said = [_daemon(cluster, "start", *master)]
    # each start waits for its JVM (seconds): the workers start side by side
    with concurrent.futures.ThreadPoolExecutor(len(workers) or 1) as pool:
        said += pool.map(lambda w: _daemon(cluster, "start", *w), workers)
    deadline = time.monotonic() + timeout
    # spark-daemon.sh says so when a JVM exits at once (a port in use, no java)
    while time.monotonic() < deadline and not any("failed to launch" in s for s in said):
        state = master_state(cluster)
        if state is not None and state.get("aliveworkers") == cluster.workers:
            return state
        time.sleep(0.5)
    stop(cluster)
    logs = "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
        for p in sorted((cluster.home / "logs").glob("*.out"))
    )
    raise RuntimeError(
        f"the master and {cluster.workers} workers did not all come up (timeout {timeout:.0f} s)"
        f"\n{logs}"
    )


def _running(pid: int, cls: str) -> bool:
    """Whether ``pid`` is still that daemon (not a dead one whose pid was reused)."""
    ps = subprocess.run(["ps", "-p", str(pid), "-o", "command="],
                        capture_output=True, text=True, check=False)  # fmt: skip
    return cls in ps.stdout


def stop(cluster: Cluster, grace: float = 15) -> None:
    """Stop the workers, then the master; kill any of them still running after
    ``grace`` seconds (a stop must never leave a JVM behind)."""
    started = []
    for cls, instance, _ in reversed(daemons(cluster)):
        pid_file = _pid_file(cluster, cls, instance)
        if pid_file.exists():
            started.append((int(pid_file.read_text().strip()), cls))
            _daemon(cluster, "stop", cls, instance)
            pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + grace
    while any(_running(*p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, cls in started:
        if _running(pid, cls):
            os.kill(pid, signal.SIGKILL)
