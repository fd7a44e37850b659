"""A free TCP port on loopback, for the local servers that tests, benches and the
one-machine profiles start (Redis, S3, PostgreSQL, Spark, Airflow, the scoring service)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
