"""``cratedig server start|status|stop``: a real local Prefect server that later commands find by themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest

from tests.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.prefect_server]


def test_server_start_status_stop(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "CRATEDIG_SERVER_STATE": str(tmp_path / "server.json"),
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    cratedig = [sys.executable, "-m", "flows.cli"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cratedig, *args], env=env, capture_output=True, text=True, timeout=300)

    port = free_port()
    started = run("server", "start", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert f"http://127.0.0.1:{port}" in started.stdout
        status = run("server", "status")
        assert status.returncode == 0 and f"127.0.0.1:{port}/api" in status.stdout
        again = run("server", "start", "--port", str(port))
        assert again.returncode == 0 and "already running" in " ".join(again.stdout.split())
        # A later command points Prefect at it by itself.
        probe = "from flows.cli.app import app; import os; app(['status', '--help'], standalone_mode=False)"
        code = f"{probe}; print('URL', os.environ.get('PREFECT_API_URL'))"
        seen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert f"URL http://127.0.0.1:{port}/api" in seen.stdout, seen.stdout + seen.stderr
        # Prefect's own command line is pointed at it by `eval "$(cratedig server env)"`, telemetry off.
        exports = run("server", "env")
        assert exports.returncode == 0, exports.stderr
        shell = 'eval "$1"; echo "$PREFECT_API_URL $DO_NOT_TRACK $PREFECT_SERVER_ANALYTICS_ENABLED"'
        seen = subprocess.run(["bash", "-c", shell, "-", exports.stdout], env=env, capture_output=True, text=True)
        assert seen.stdout.split() == [f"http://127.0.0.1:{port}/api", "1", "false"], exports.stdout
    finally:
        pid = json.loads((tmp_path / "server.json").read_text())["pid"] if (tmp_path / "server.json").exists() else None
        stopped = run("server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert pid is not None and not psutil.pid_exists(pid)  # gone with its workers (its own process group)
    assert run("server", "status").returncode == 1
    no_server = run("server", "env")
    assert no_server.returncode == 1 and no_server.stdout == "" and "no local Prefect server" in no_server.stderr
