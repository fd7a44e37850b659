"""Where a committed result came from: the machine and the commit, recorded beside every
figure that the README or a report quotes (docs/results/)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "docs" / "results"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def provenance() -> dict[str, Any]:
    """Machine (platform, cores, memory, accelerator) and commit (hash, dirty) of now."""
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    try:
        import torch

        accelerator = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        accelerator = None
    # the result files themselves do not count: a rerun rewrites its own committed
    # result, and the code that produced it is still the commit's
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)docs/results", ":(exclude)README.md", ":(exclude)docs/SCALE.md")  # fmt: skip
    return {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "memory_gib": memory_gib,
            "accelerator": accelerator,
        },
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) and status != "unknown",
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
