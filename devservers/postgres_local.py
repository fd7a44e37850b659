"""A throwaway PostgreSQL on loopback for Airflow's metadata (conf/airflow-postgres.yaml),
for `vista postgres start` (`make airflow-postgres`) and the tests.

One folder holds the cluster (``data/``) and its log; the server listens on 127.0.0.1
at the port of the profile's ``airflow.sql_alchemy_conn`` and nowhere else (no Unix
socket: its default folder is the system's, and a deep path would exceed the socket
name limit). The URL's user is the cluster's superuser, its password is checked on
TCP, its database is created. Deployments use a managed PostgreSQL instead
(infra/helm/airflow/README.md); nothing here runs in the pipeline.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN_ENV = "VISTA_PG_BIN"  # a folder holding initdb and pg_ctl that is not found otherwise
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in /usr/lib/postgresql/*/bin "
    "or in $VISTA_PG_BIN: `apt-get install -y postgresql` (.ci/run does it before `make test`)"
)
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Server:
    """Where a local cluster lives and what the metadata URL asks of it."""

    folder: Path
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def for_url(cls, url: str, folder: Path) -> Server:
        """The local server that a ``postgresql+driver://user:password@127.0.0.1:port/db``
        URL names; any other host is someone else's server, not ours to start."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not url:
            raise ValueError("no URL: null means SQLite, which needs no server")
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ValueError(str(exc)) from None
        if parsed.get_backend_name() != "postgresql":
            raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string()}")
        if parsed.host not in LOOPBACK:
            raise ValueError(f"a local server listens on 127.0.0.1, the URL names {parsed.host}")
        if not (parsed.username and parsed.password and parsed.database):
            raise ValueError("the URL needs a user, a password and a database")
        return cls(folder.resolve(), parsed.port or 5432, parsed.username, parsed.password,
                   parsed.database)  # fmt: skip

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"


def find_pg_bin(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder of initdb and pg_ctl: $VISTA_PG_BIN, else PATH, else Debian's newest
    /usr/lib/postgresql/<version>/bin (Debian keeps the server binaries off PATH)."""
    on_path = shutil.which("initdb")
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(Path(p).parent.name), reverse=True)  # fmt: skip
    # resolved: initdb finds the `postgres` binary beside its real file, not beside a link
    candidates = [environ.get(BIN_ENV), on_path and str(Path(on_path).resolve().parent), *debian]
    for candidate in candidates:
        if candidate and all(os.access(Path(candidate) / b, os.X_OK) for b in ("initdb", "pg_ctl")):
            return Path(candidate)
    raise FileNotFoundError(INSTALL_HINT)


def server_account() -> str | None:
    """PostgreSQL refuses to run as root: as root the server runs as Debian's `postgres`
    account (the package creates it), else as `nobody`; as anyone else, as themselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a `postgres` nor a `nobody` account exists")


def _run(command: list[str], account: str | None, cwd: Path) -> subprocess.CompletedProcess:
    # as another account, HOME and cwd must be somewhere it can read; PG* variables of the
    # caller's own client must not steer the server's tools
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    kwargs: dict = {}
    if account is not None:
        entry = pwd.getpwnam(account)
        kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        env["HOME"] = str(cwd)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, **kwargs)  # fmt: skip


def _check(result: subprocess.CompletedProcess, what: str, log: Path | None = None) -> None:
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{what} failed ({result.returncode}): "
                           f"{result.stdout}{result.stderr}{tail}")  # fmt: skip


def _hand_over(server: Server, account: str | None) -> None:
    """As root: the folder belongs to the server's account, which must also reach it."""
    if account is None:
        return
    entry = pwd.getpwnam(account)
    for path in [server.folder, *server.folder.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    reach = _run(["test", "-w", str(server.folder)], account, Path("/"))
    if reach.returncode != 0:
        raise RuntimeError(f"{server.folder} is out of reach of the `{account}` account the "
                           "server runs as: pick a folder whose parents others may enter")  # fmt: skip


def init_cluster(server: Server, pg_bin: Path, account: str | None) -> None:
    """initdb once: the URL's user as superuser with its password (scram on TCP)."""
    if (server.data / "PG_VERSION").exists():
        return
    server.folder.mkdir(parents=True, exist_ok=True)
    password_file = server.folder / "initdb.pw"
    password_file.write_text(server.password + "\n")
    password_file.chmod(0o600)
    _hand_over(server, account)
    try:
        result = _run([str(pg_bin / "initdb"), "-D", str(server.data), "-U", server.user,
                       f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8",
                       "--locale=C", "--no-instructions"], account, server.folder)  # fmt: skip
    finally:
        password_file.unlink(missing_ok=True)
    _check(result, "initdb")
    settings = ("listen_addresses = '127.0.0.1'", "unix_socket_directories = ''")
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write("\n# vista: loopback TCP only\n" + "\n".join(settings) + "\n")


def is_running(server: Server, environ: Mapping[str, str] = os.environ) -> bool:
    return _is_running(server, find_pg_bin(environ), server_account())


def _is_running(server: Server, pg_bin: Path, account: str | None) -> bool:
    if not (server.data / "PG_VERSION").exists():
        return False
    status = _run([str(pg_bin / "pg_ctl"), "status", "-D", str(server.data)], account,
                  server.folder)  # fmt: skip
    return status.returncode == 0


def create_database(server: Server) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user,
                                  password=server.password, dbname="postgres")  # fmt: skip
    connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (server.database,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{server.database}"')
    finally:
        connection.close()


def start(server: Server, environ: Mapping[str, str] = os.environ) -> None:
    """initdb if new, start on the URL's port unless already running, create the database."""
    pg_bin, account = find_pg_bin(environ), server_account()
    init_cluster(server, pg_bin, account)
    if not _is_running(server, pg_bin, account):
        _hand_over(server, account)
        result = _run([str(pg_bin / "pg_ctl"), "start", "-D", str(server.data), "-l",
                       str(server.log), "-w", "-t", "60", "-o", f"-p {server.port}"],
                      account, server.folder)  # fmt: skip
        _check(result, "pg_ctl start", server.log)
    create_database(server)


def stop(server: Server, environ: Mapping[str, str] = os.environ) -> None:
    """Stop the server (fast: open sessions are cut off); nothing to do if it is not up."""
    pg_bin, account = find_pg_bin(environ), server_account()
    if _is_running(server, pg_bin, account):
        result = _run([str(pg_bin / "pg_ctl"), "stop", "-D", str(server.data), "-m", "fast",
                       "-w", "-t", "60"], account, server.folder)  # fmt: skip
        _check(result, "pg_ctl stop", server.log)


@contextmanager
def local_postgres(url: str, folder: Path) -> Iterator[Server]:
    """A server for ``url`` in ``folder`` for the duration of the block, stopped after it."""
    server = Server.for_url(url, folder)
    try:
        start(server)
        yield server
    finally:
        stop(server)
