"""A throwaway S3-compatible server (moto's, from the dev extra) on loopback, for the tests
and for trying ``conf/s3.yaml`` on one machine. Deployments point the lake at S3, MinIO or
another store instead (infra/s3/README.md); nothing here runs in the pipeline."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from devservers.ports import free_port

REGION = "us-east-1"
# moto accepts any keys; the client still needs some to sign its requests
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
INSTALL_HINT = "moto is not installed: `pip install -c requirements/constraints.txt -e '.[dev]'`"


def storage_options(endpoint: str) -> dict[str, str]:
    """delta-rs storage options for a server on plain http at ``endpoint``."""
    return {"aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": REGION,
            **CREDENTIALS}  # fmt: skip


def create_bucket(endpoint: str, bucket: str) -> None:
    import boto3  # moto's dependency: the client of the tests, never of the pipeline

    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)
    client.create_bucket(Bucket=bucket)


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no S3 server on 127.0.0.1:{port} after {timeout_s}s") from None
            time.sleep(0.1)


@contextmanager
def local_s3_server(bucket: str, port: int | None = None, timeout_s: float = 30) -> Iterator[str]:
    """moto's S3 server on a free loopback port with ``bucket`` created; yields its URL.

    It runs in a process of its own, not in a thread (moto's ThreadedMotoServer): some
    delta-rs calls (``DeltaTable.is_deltatable``) hold the GIL while they wait for the
    answer, which a server thread of the same interpreter then never sends."""
    if importlib.util.find_spec("moto") is None:
        raise ModuleNotFoundError(INSTALL_HINT)
    port = port or free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # moto logs every request; nothing in it is needed here
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, timeout_s)
        endpoint = f"http://127.0.0.1:{port}"
        create_bucket(endpoint, bucket)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
