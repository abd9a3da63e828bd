"""A local Prefect server (API and UI on 127.0.0.1) that ``cratedig`` commands use by themselves once started.

``cratedig server start`` runs ``prefect server start`` in the background and records its URL and process id
in a state file (``data/prefect-server.json`` by default); every later ``cratedig`` command that finds that
server alive (and no ``PREFECT_API_URL`` of the user's) points Prefect at it, so it skips the 15-45 s start-up
of an embedded server. ``cratedig server stop`` stops it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

#: Port of the local server (Prefect's default).
DEFAULT_PORT = 4200
#: How long ``start`` waits for the server to answer, s.
START_TIMEOUT_S = 120.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(api_url: str) -> bool:
    """True when the Prefect API at ``api_url`` answers its health check within 2 s."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def running_server(state: Path) -> dict[str, Any] | None:
    """The recorded server (``api_url``, ``ui_url``, ``pid``, ``port``, ``log``) if its process is alive."""
    try:
        info = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    return info if _alive(int(info.get("pid", 0))) and _port_open(int(info["port"])) else None


def start_server(state: Path, *, port: int = DEFAULT_PORT, timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
    """Start ``prefect server start`` on 127.0.0.1:``port`` in the background, wait until it answers, record it.

    Returns the recorded info; an already running one is returned as it is. Raises ``RuntimeError`` if the
    port is taken by something else or the server does not answer within ``timeout_s``.
    """
    info = running_server(state)
    if info is not None:
        return info | {"already": True}
    if _port_open(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is already in use (give another one with --port)")
    state.parent.mkdir(parents=True, exist_ok=True)
    log = state.with_suffix(".log")
    prefect = Path(sys.executable).parent / "prefect"
    proc = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # survives this command; stopped as a group
    )
    api_url = f"http://127.0.0.1:{port}/api"
    info = {"api_url": api_url, "ui_url": f"http://127.0.0.1:{port}", "pid": proc.pid, "port": port, "log": str(log)}
    deadline = time.monotonic() + timeout_s
    while not healthy(api_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc.pid)
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise RuntimeError(f"the Prefect server did not start (log {log}):\n{tail}")
        time.sleep(0.5)
    state.write_text(json.dumps(info))
    return info


def stop_process(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM ``pid``'s process group (the server and its workers), SIGKILL what is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (a failed start)
                    return
            except ChildProcessError:
                pass
            if not _alive(pid):
                return
            time.sleep(0.2)


def stop_server(state: Path) -> dict[str, Any] | None:
    """Stop the recorded server; returns what was stopped, None if none was running."""
    info = running_server(state)
    if info is not None:
        stop_process(int(info["pid"]))
    state.unlink(missing_ok=True)
    return info


def use_running_server(state: Path) -> str | None:
    """Point Prefect at the recorded server when it is alive and the user set no ``PREFECT_API_URL``; its URL."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    info = running_server(state)
    if info is None:
        return None
    os.environ["PREFECT_API_URL"] = info["api_url"]
    return info["api_url"]
