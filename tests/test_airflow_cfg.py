"""The airflow.cfg that Airflow writes into the profile's home listens on 127.0.0.1 (the
API server and UI, the scheduler's health check) unless airflow.listen_host says
otherwise, for anyone who runs `airflow` on that home directly."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_config
from vista import airflow_runner
from vista.core.config import ConfigError


def read_cfg(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser


def listeners(path: Path) -> dict[tuple[str, str], str]:
    parser = read_cfg(path)
    return {(s, k): parser.get(s, k) for s, k in airflow_runner.LISTENERS}


@pytest.mark.integration
def test_the_generated_airflow_cfg_listens_on_loopback_then_as_configured(tmp_path):
    cfg = tiny_config(tmp_path)
    airflow_runner.ensure_airflow_db(cfg)  # the real `airflow db migrate` writes the file
    path = airflow_runner.airflow_cfg(cfg)
    assert set(listeners(path).values()) == {"127.0.0.1"}
    parser = read_cfg(path)
    assert parser.get("core", "fernet_key")  # Airflow's own file, only the listeners changed
    # `airflow` run by hand on this home, with none of our variables, reads the same
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(path.parent)
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "config", "get-value", "api", "host"],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "127.0.0.1"

    # a home made before (or another setting): the next run rewrites the file's listeners
    wide = tiny_config(tmp_path, airflow={"listen_host": "0.0.0.0"})
    airflow_runner.ensure_airflow_db(wide)
    assert set(listeners(path).values()) == {"0.0.0.0"}
    assert airflow_runner.standalone_environment(wide, 8080)["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert airflow_runner.standalone_environment(cfg, 8080, "::1")["AIRFLOW__API__HOST"] == "::1"


def test_pin_listeners_changes_only_the_listener_lines():
    text = (
        "[api]\n# where the API server listens\nhost = 0.0.0.0\nport = 8080\n\n"
        "[smtp]\nsmtp_host = localhost\n[secrets]\nhost = \n"
        "[scheduler]\nscheduler_health_check_server_host = 0.0.0.0\n"
    )
    assert airflow_runner.pin_listeners(text, "127.0.0.1") == (
        "[api]\n# where the API server listens\nhost = 127.0.0.1\nport = 8080\n\n"
        "[smtp]\nsmtp_host = localhost\n[secrets]\nhost = \n"
        "[scheduler]\nscheduler_health_check_server_host = 127.0.0.1\n"
    )


def test_listen_host_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"airflow\.listen_host"):
        tiny_config(tmp_path, airflow={"listen_host": "0.0.0.0; rm -rf /"})
