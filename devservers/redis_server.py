"""A throwaway redis-server on loopback, for the tests, the online-store benchmark and
trying ``conf/redis.yaml`` on one machine. Deployments point at a managed Redis instead
(infra/redis/README.md); nothing here runs in the pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devservers.ports import free_port

BINARY_ENV = "VISTA_REDIS_SERVER"  # a redis-server that is not on PATH
DEBIAN_PATHS = ("/usr/bin/redis-server",)
INSTALL_HINT = (
    "redis-server not found on PATH (nor in $VISTA_REDIS_SERVER): run `make redis`, "
    "which installs Debian's redis-server (.ci/run does it before `make test`)"
)


def find_redis_server(
    environ: Mapping[str, str] = os.environ, fallbacks: tuple[str, ...] = DEBIAN_PATHS
) -> str:
    """The redis-server binary: $VISTA_REDIS_SERVER, else PATH, else where Debian puts it
    (a PATH trimmed by sudo or a service manager may lack it)."""
    on_path = shutil.which("redis-server", path=environ.get("PATH", os.defpath))
    for candidate in (environ.get(BINARY_ENV), on_path, *fallbacks):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(INSTALL_HINT)


def server_command(binary: str, port: int, folder: Path) -> list[str]:
    """Loopback only, nothing persisted: a server that leaves no state behind."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--daemonize", "no"]  # fmt: skip


def wait_for_ping(host: str, port: int, process: subprocess.Popen, timeout_s: float) -> None:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis(host=host, port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        try:
            if client.ping():
                return
        except RedisConnectionError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {port} did not answer PING") from None
            time.sleep(0.05)
        finally:
            client.close()


@contextmanager
def local_redis_server(folder: Path, timeout_s: float = 15.0) -> Iterator[str]:
    """Start redis-server on a free loopback port; yields Feast's connection string
    (``127.0.0.1:<port>``) once it answers PING, and stops it on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "redis-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(server_command(find_redis_server(), port, folder),
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        try:
            wait_for_ping("127.0.0.1", port, process, timeout_s)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}; its log:\n{log.read_text()[-2000:]}") from None
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
