"""The listening sockets of the servers the product starts, as the kernel lists them:
every one of them should be on loopback unless a setting says otherwise; and waiting
for a started server to answer."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psutil

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listening(pid: int) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening socket of ``pid``'s tree now."""
    found = set()
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            for conn in process.net_connections("inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((process.name(), conn.laddr.ip, conn.laddr.port))
        except psutil.Error:
            continue  # ended between the listing and the look
    return found


def addresses(port: int) -> set[str]:
    """The addresses that something listens on at ``port``, whichever process it is."""
    return {c.laddr.ip for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}  # fmt: skip


def wait_for_health(base: str, process, log: Callable[[], str], seconds: int = 120) -> None:
    """Until ``base``/health answers: fails with the server's log when ``process`` exits
    first, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{base}/health", timeout=2)
            return
        except httpx.TransportError:
            assert process.poll() is None, log()[-3000:]
            assert time.monotonic() < deadline, f"{base} did not answer in {seconds} s"
            time.sleep(0.5)
