"""Start, wait for and stop the subprocesses the integration tests run (servers, CLIs, Dask), with their children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    """Start ``cmd`` in a session of its own (so it and its children can be stopped as a group)."""
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace_s: float = 20.0) -> None:
    """Signal ``proc``'s process group, wait, then SIGKILL the group and any descendant that survived."""
    try:
        family = [proc, *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [proc]
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass
    for p in family:
        try:
            if isinstance(p, subprocess.Popen):
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            elif p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                p.kill()
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    proc.wait(10)
    psutil.wait_procs([p for p in family if not isinstance(p, subprocess.Popen)], timeout=10)


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout_s: float,
    *,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
    every_s: float = 1.0,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``log``'s tail on timeout or if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(every_s)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    pytest.fail(f"{what}: not within {timeout_s:.0f} s (process exit code {proc and proc.poll()})\n{tail}")
