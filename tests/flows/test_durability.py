"""Durability: kill -9 mid-run then resume; two runs on one catalog; the CLI's JSON outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from tasks.synth.songs import SongSpec, render_song

pytestmark = pytest.mark.slow
CRATEDIG = [sys.executable, "-m", "flows.cli"]


def small_library(root: Path, n: int) -> Path:
    from tasks.constants import SR
    from tasks.synth.files import write_audio

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        spec = SongSpec(
            bpm=90.0 + 3 * i,
            tonic=i % 12,
            mode=("major", "minor")[i % 2],
            duration_s=8.0,
            style="house",
            timbre="saw",
            seed=100 + i,
        )
        write_audio(root / f"track {i:02d}.flac", render_song(spec, sr=SR), SR, verify=False)
    return root


def cli_env() -> dict[str, str]:
    """The child CLI talks to the test harness's Prefect server instead of starting its own."""
    from prefect.settings import PREFECT_API_URL

    return os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()}


def assert_session_ends(pid: int, within_s: float) -> None:
    """Nothing of the session ``pid`` leads (started with ``start_new_session``) runs ``within_s`` from now: the
    embedded Prefect server and the workers end with the command."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    pytest.fail("a process of the command's session outlived it (the embedded Prefect server, a worker)")


def catalog_state(catalog: Path) -> tuple[list, int, list]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        tracks = con.execute("SELECT path, status FROM tracks ORDER BY path").fetchall()
        n_features = con.execute("SELECT count(*) FROM features").fetchall()[0][0]
        dupes = con.execute("SELECT path FROM tracks GROUP BY path HAVING count(*) > 1").fetchall()
        return tracks, n_features, dupes
    finally:
        con.close()


def analyze_json(library: Path, catalog: Path) -> dict:
    """``cratedig analyze LIBRARY --catalog CATALOG --workers 1 --json`` on the test harness's server: its summary."""
    done = subprocess.run(
        [*CRATEDIG, "analyze", str(library), "--catalog", str(catalog), "--workers", "1", "--json"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def published(catalog: Path) -> int:
    """Feature rows in the published catalog (0 before it exists or while it cannot be read)."""
    try:
        return catalog_state(catalog)[1]
    except (duckdb.Error, OSError):
        return 0


def wait_until_published(proc: subprocess.Popen, catalog: Path, n: int, timeout_s: float = 300) -> None:
    """Wait until the running ``proc`` has published ``n`` feature rows to ``catalog``; fail if it ended first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None and published(catalog) < n:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]


def test_kill_minus_nine_then_resume(tmp_path, prefect_harness):
    library = small_library(tmp_path / "lib", 16)
    catalog = tmp_path / "catalog.duckdb"
    proc = subprocess.Popen(
        [
            *CRATEDIG,
            "analyze",
            str(library),
            "--catalog",
            str(catalog),
            "--workers",
            "1",
            "--batch-size",
            "1",
            "--json",
        ],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )

    # Kill once a few batches are published: readers see the catalog grow while the run goes on.
    wait_until_published(proc, catalog, 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    _, stored_before, _ = catalog_state(catalog)
    assert 0 < stored_before < 16
    con = duckdb.connect(str(catalog), read_only=True)
    assert con.execute("SELECT status FROM runs").fetchall() == [("running",)]  # it really died mid-run
    con.close()

    summary = analyze_json(library, catalog)
    assert summary["analyzed"] == 16 - stored_before  # only what was left
    con = duckdb.connect(str(catalog), read_only=True)
    killed = con.execute(
        "SELECT status, n_files, n_new, n_analyzed FROM runs WHERE run_id <> ? ORDER BY started_at", [summary["run_id"]]
    ).fetchall()
    con.close()
    assert killed == [("interrupted", 16, 16, stored_before)]  # what its scan found, and what it stored

    clean_catalog = tmp_path / "clean.duckdb"
    from flows.analyze import analyze_library

    analyze_library(str(library), catalog_path=str(clean_catalog), workers=1)
    assert catalog_state(catalog) == catalog_state(clean_catalog)
    tracks, n_features, dupes = catalog_state(catalog)
    assert n_features == 16 and dupes == [] and {s for _, s in tracks} == {"analyzed"}


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm-group", "sigterm-alone"])
def test_ctrl_c_without_a_server_stops_within_the_grace_and_the_run_resumes(tmp_path, prefect_harness, how):
    # Without a server of its own the CLI starts an embedded one, which the terminal's Ctrl-C (SIGINT to the
    # whole process group) stops too: Prefect then retried reporting the crash to it for minutes.
    from flows.cli.interruption import INTERRUPT_GRACE_S

    # 40 songs: with 16, a run on a fast, quiet machine could store them all before the signal reached the flow, and
    # then it had completed, not been interrupted (seen once in CI).
    n = 40
    library = small_library(tmp_path / "lib", n)
    catalog = tmp_path / "catalog.duckdb"
    alone = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    alone["CRATEDIG_SERVER_STATE"] = str(tmp_path / "no-server.json")  # no `cratedig server` to find either
    proc = subprocess.Popen(
        [*CRATEDIG, "analyze", str(library), "--catalog", str(catalog), "--workers", "1", "--batch-size", "1"],
        env=alone,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's foreground job
    )

    wait_until_published(proc, catalog, 2)
    interrupted_at = time.monotonic()
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's: to the whole group, the embedded server included
    elif how == "sigterm-group":  # `timeout`'s: the embedded server ends too, and Prefect's teardown retried it
        os.killpg(proc.pid, signal.SIGTERM)
    else:  # `kill PID`, a service manager's: the command must end the embedded server itself
        os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=INTERRUPT_GRACE_S + 60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert time.monotonic() - interrupted_at <= INTERRUPT_GRACE_S + 15
    assert err.decode().strip().splitlines()[-1].startswith("interrupted: ")

    con = duckdb.connect(str(catalog), read_only=True)
    (status, n_analyzed), stored = con.execute("SELECT status, n_analyzed FROM runs").fetchall()[0], published(catalog)
    con.close()
    assert status == "interrupted" and 0 < stored < n and n_analyzed == stored, (status, stored)

    if how == "ctrl-c":  # the resume is the same after either signal: one variant pays for it
        assert analyze_json(library, catalog)["analyzed"] == n - stored
        assert catalog_state(catalog)[1] == n
    assert_session_ends(proc.pid, 15)  # after a SIGTERM the embedded Prefect server outlived it


def test_second_run_waits_for_the_lock_then_exits_clearly(tmp_path, prefect_harness):
    library = small_library(tmp_path / "lib", 1)
    catalog = tmp_path / "catalog.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from tasks.catalog.writer import CatalogWriter; "
                "w = CatalogWriter(sys.argv[1], holder={'run_id': 'holder-run'}).__enter__(); "
                "print('locked', flush=True); time.sleep(float(sys.argv[2]))"
            ),
            str(catalog),
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        result = CliRunner().invoke(
            __import__("flows.cli", fromlist=["app"]).app,
            ["analyze", str(library), "--catalog", str(catalog), "--lock-timeout", "2"],
        )
        waited = time.monotonic() - started
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output and result.output.count("error: ") == 1, result.output
        assert "in use by another cratedig run: run holder-run (pid" in " ".join(result.output.split())
        assert waited >= 2
        assert "Prefect" not in result.output  # refused before connecting to Prefect (or starting it), not after
    finally:
        holder.kill()
        holder.wait()
    # Once the other run is gone, the same command succeeds and the catalog is intact.
    result = CliRunner().invoke(
        __import__("flows.cli", fromlist=["app"]).app,
        ["analyze", str(library), "--catalog", str(catalog), "--workers", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["analyzed"] == 1


def test_status_and_rejects_json(format_library, tmp_path, prefect_harness):
    from flows.cli import app

    library, truth = format_library
    catalog = tmp_path / "catalog.duckdb"
    runner = CliRunner()
    first = runner.invoke(app, ["analyze", str(library), "--catalog", str(catalog), "--workers", "2", "--json"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["analyze", str(library), "--catalog", str(catalog), "--workers", "1"])
    assert again.exit_code == 0 and "Nothing to analyse" in again.stdout
    status = json.loads(runner.invoke(app, ["status", "--catalog", str(catalog), "--json"]).stdout)
    assert status["by_status"] == {"analyzed": len(truth), "rejected": 2}
    assert status["rejects_by_reason"] == {"EMPTY": 1, "NOT_AUDIO": 1}
    rejects = json.loads(runner.invoke(app, ["rejects", "--catalog", str(catalog), "--json"]).stdout)
    assert sorted(r["reason"] for r in rejects) == ["EMPTY", "NOT_AUDIO"]


def test_a_killed_run_is_recorded_interrupted_even_when_nothing_is_left_to_analyse(tmp_path):
    """A run killed with nothing left for the next one (which then starts no run) stayed ``running`` for good, and
    ``status`` said a run was going. The idle path records it interrupted, with the lock held, and drops the
    killed run's working copy; a run that is alive (its lock held) is left alone."""
    from flows.cli import app
    from flows.cli.analyze import _close_stopped_runs
    from tasks.catalog import runs
    from tasks.catalog.store import store_results
    from tasks.catalog.writer import CatalogWriter, work_path
    from tasks.features.analyze import empty_result

    catalog = tmp_path / "catalog.duckdb"
    with CatalogWriter(catalog) as w:
        runs.start_run(w.con, "killed", str(tmp_path), analyzer_version=1)
        store_results(w.con, [empty_result(str(tmp_path / "a.flac"), 0, 1, reason="EMPTY", detail="0 bytes")], "killed")

    def statuses() -> list[str]:
        con = duckdb.connect(str(catalog), read_only=True)
        try:
            return [s for (s,) in con.execute("SELECT status FROM runs").fetchall()]
        finally:
            con.close()

    res = CliRunner().invoke(app, ["status", "--catalog", str(catalog)])
    assert "running, but no" in res.output and "process holds the catalog" in res.output, res.output
    with CatalogWriter(catalog, holder={"run_id": "alive"}):  # a live run holds the lock: not touched
        _close_stopped_runs(catalog, lock_timeout=0.1)
        assert statuses() == ["running"]
    work_path(catalog).write_bytes(b"a killed run's working copy")
    _close_stopped_runs(catalog, lock_timeout=1.0)
    assert statuses() == ["interrupted"] and not work_path(catalog).exists()
    con = duckdb.connect(str(catalog), read_only=True)
    row = con.execute("SELECT n_analyzed, n_rejected, error, finished_at IS NOT NULL FROM runs").fetchall()
    con.close()
    assert row == [(0, 1, "interrupted", True)]  # what it stored, and when its last outcome was


def test_the_children_a_hard_exit_stops_are_found():
    """A second Ctrl-C exits with os._exit, which waits for nothing: the embedded Prefect server outlived the
    command (seen here after a SIGINT sent to the process alone). Its children are stopped first."""
    from flows.cli.interruption import child_pids

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in child_pids(os.getpid())
        grandchild_holder = subprocess.Popen(
            [sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"]
        )
        time.sleep(0.5)
        assert child_pids(os.getpid()).count(grandchild_holder.pid) == 1  # direct children only
        assert not set(child_pids(grandchild_holder.pid)) & set(child_pids(os.getpid()))
        grandchild_holder.kill()
        grandchild_holder.wait()
    finally:
        child.kill()
        child.wait()


def _run_python(script: str) -> tuple[subprocess.CompletedProcess, float]:
    """``script`` run by this Python with this checkout importable (30 s at most), and the seconds it took."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=30, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    return proc, time.monotonic() - started


def test_the_exit_after_a_stop_is_bounded_too(tmp_path):
    """After a stop the run records itself, the command returns and the interpreter exits, while Prefect stops its
    embedded server; under load that exit hung for over a minute (a CI run's SIGTERM). It gets the grace too, and
    what the process started is stopped with it."""
    script = (
        "import atexit, subprocess, sys, time\n"
        "from flows import interrupt\n"
        "from flows.cli.interruption import bounded_interrupt\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print(child.pid, flush=True)\n"
        "atexit.register(time.sleep, 60)  # an exit that hangs, as Prefect's teardown did\n"
        "with bounded_interrupt(grace_s=1.0):\n"
        "    interrupt.request()\n"
        "sys.exit(130)\n"
    )
    proc, seconds = _run_python(script)
    assert proc.returncode == 130, proc.stderr
    assert seconds < 20
    child = int(proc.stdout.split()[0])
    time.sleep(0.2)
    try:
        with open(f"/proc/{child}/stat") as f:
            assert f.read().split(") ")[1][0] in "ZX"  # stopped: a zombie until it is reaped
    except FileNotFoundError:
        pass  # reaped


def test_the_grace_waits_for_a_publish_under_way():
    """A publish on a slow disk outlasted the grace after a Ctrl-C: the timer cut it, the catalog kept nothing of
    what the run had done since its last publish, and the message said it was all there."""
    script = (
        "import sys, time\n"
        "from flows import interrupt\n"
        "from flows.cli.interruption import bounded_interrupt\n"
        "from tasks.durable import stop_signals_deferred\n"
        "with bounded_interrupt(grace_s=0.5):\n"
        "    interrupt.request()  # the grace starts\n"
        "    with stop_signals_deferred():  # a copy of the catalog into place\n"
        "        time.sleep(2.0)\n"
        "        print('published', flush=True)\n"
        "    time.sleep(30)  # what follows the publish may still be cut\n"
    )
    proc, seconds = _run_python(script)
    assert proc.returncode == 130 and proc.stdout == b"published\n", proc.stderr
    assert seconds < 15
