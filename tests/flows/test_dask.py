"""Scale-out: the flow's batches on a real local Dask cluster (a scheduler and two workers on loopback)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.processes import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture
def dask_cluster(tmp_path):
    from prefect.settings import PREFECT_API_URL

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # Workers report task runs to the same Prefect API as the flow (the test harness's server).
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()}
    procs = [
        subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [
                    BIN / "dask",
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp_path / f"w{i}"),
                ],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    from distributed import Client

    deadline = time.monotonic() + 120
    while True:
        try:
            with Client(address, timeout=5) as client:
                if len(client.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "dask cluster did not start"
        time.sleep(1)
    yield address
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def catalog_rows(catalog: Path) -> list[tuple]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute("""SELECT t.path, t.status, t.reason, t.fingerprint, f.bpm, f."key", f.loudness_lufs,
                                     f.embedding FROM tracks t LEFT JOIN features f USING (track_id)
                              ORDER BY t.path""").fetchall()
    finally:
        con.close()


def test_dask_run_equals_local_run(format_library, dask_cluster, prefect_harness, tmp_path):
    from flows.analyze import analyze_library, with_dask

    library, truth = format_library
    on_dask = with_dask(dask_cluster)(str(library), catalog_path=str(tmp_path / "dask.duckdb"), workers=0, batch_size=2)
    local = analyze_library(str(library), catalog_path=str(tmp_path / "local.duckdb"), workers=1, batch_size=2)
    assert on_dask["analyzed"] == local["analyzed"] == len(truth)
    assert catalog_rows(tmp_path / "dask.duckdb") == catalog_rows(tmp_path / "local.duckdb")


def test_timeouts_and_crashes_are_per_file_on_dask(tmp_path):
    """On a real loopback cluster (nanny-spawned worker processes) a stopped worker's file is TIMEOUT and a
    crashed one WORKER_CRASH; the other files of the batch are analysed and the Dask worker survives."""
    from distributed import Client, LocalCluster

    from tasks.features.workers import AnalysisOptions, AnalysisPool
    from tests.flows import crashing
    from tests.flows.test_deadlines import _items

    items = _items(tmp_path, ["a.flac", "stop_me.flac", "crash_me.flac", "d.flac"])
    pool = AnalysisPool(0, AnalysisOptions(timeout_s=5.0), analyze=crashing.analyze_or_stop_or_crash)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            (worker,) = client.scheduler_info()["workers"]
            results = client.submit(pool.analyze_batch, items, pure=False).result(timeout=300)
            again = client.submit(pool.analyze_batch, items[:1], pure=False).result(timeout=300)
            assert list(client.scheduler_info()["workers"]) == [worker]  # the same Dask worker, never restarted
    assert [(r["status"], r["reason"]) for r in results] == [
        ("analyzed", None),
        ("failed", "TIMEOUT"),
        ("failed", "WORKER_CRASH"),
        ("analyzed", None),
    ]
    assert again[0]["status"] == "analyzed"
