"""The parent enforces each file's deadline: a stopped or stuck worker is killed, its file TIMEOUT, the run goes on."""

from __future__ import annotations

import os
import signal
import time

import psutil
import soundfile as sf

from tasks.constants import SR
from tasks.features.workers import AnalysisOptions, AnalysisPool
from tests.flows import crashing
from tests.flows.test_hostile import _song

TIMEOUT_S = 5.0


def _items(root, names):
    items = []
    for name in names:
        sf.write(root / name, _song()[: SR * 3], SR)
        st = (root / name).stat()
        items.append({"path": str(root / name), "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "track_id": None})
    return items


def test_stopped_worker_is_killed_at_the_deadline(tmp_path):
    items = _items(tmp_path, ["a.flac", "stop_me.flac", "c.flac", "d.flac"])
    with AnalysisPool(2, AnalysisOptions(timeout_s=TIMEOUT_S), analyze=crashing.analyze_or_stop) as pool:
        assert pool.analyze_batch(items[:1])[0]["status"] == "analyzed"  # warm: start-up is not the file's time
        before = set(pool.worker_pids())
        started = time.monotonic()
        results = pool.analyze_batch(items)
        elapsed = time.monotonic() - started
        again = pool.analyze_batch(items[2:3])  # a new worker replaced the killed one
        after = set(pool.worker_pids())
    assert [(r["status"], r["reason"]) for r in results] == [
        ("analyzed", None),
        ("failed", "TIMEOUT"),
        ("analyzed", None),
        ("analyzed", None),
    ]
    assert "killed" in results[1]["detail"]
    assert elapsed < 3 * TIMEOUT_S, elapsed
    assert again[0]["status"] == "analyzed"
    assert before - after and len(after) >= 1  # the stopped worker is gone
    for pid in before - after:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_close_does_not_hang_on_an_idle_stopped_worker(tmp_path):
    items = _items(tmp_path, ["a.flac"])
    pool = AnalysisPool(1, AnalysisOptions(timeout_s=TIMEOUT_S))
    assert pool.analyze_batch(items)[0]["status"] == "analyzed"
    (pid,) = pool.worker_pids()
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 3 * TIMEOUT_S
    assert not psutil.pid_exists(pid)


def test_the_address_space_cap_fails_one_file_not_the_worker(tmp_path):
    """A worker asking for 8 GiB (the default cap allows 2 GiB beyond start-up) gets a MemoryError: that file is
    TOO_LARGE, the same worker goes on with the next one."""
    items = _items(tmp_path, ["hog_me.flac", "b.flac"])
    with AnalysisPool(1, AnalysisOptions(timeout_s=120), analyze=crashing.analyze_or_hog) as pool:
        hog, after = pool.analyze_batch(items)
        pids = pool.worker_pids()
        assert pool.analyze_batch(items[1:])[0]["status"] == "analyzed" and pool.worker_pids() == pids
    assert (hog["status"], hog["reason"]) == ("failed", "TOO_LARGE") and "memory" in hog["detail"]
    assert after["status"] == "analyzed"
