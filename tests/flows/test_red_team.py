"""The issue-17 library: every hostile case at once, through the real CLI, with a worker stopped mid-file.

One ``cratedig analyze --file-timeout 5`` exits 0 with every file accounted for; the stopped worker costs the
run less than 3x the timeout (against the same run without the stop); its file is ``TIMEOUT`` (retried by
the next run); the good files' rows then equal a clean run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tasks.audio.identity import text_to_path
from tasks.constants import SR
from tasks.synth.files import write_audio
from tests.flows.test_durability import CRATEDIG, cli_env
from tests.flows.test_hostile import _song, build_hostile_library

pytestmark = pytest.mark.slow
TIMEOUT_S = 5.0
INJECTION = "a' (FORMAT csv); COPY (SELECT 1) TO 'pwned.csv' (FORMAT csv); --"
COMPARED = """SELECT t.path, t.status, t.reason, t.fingerprint, t.format, t.duration_s, t.sample_rate, t.channels,
                     t.title, f.bpm, f."key", f.loudness_lufs, f.embedding
              FROM tracks t LEFT JOIN features f USING (track_id) WHERE t.status = 'analyzed' ORDER BY t.path"""


def build_red_team_library(root: Path) -> dict[str, tuple[str, str | None]]:
    """The hostile library plus the inputs of issue 17: markup and escape titles, a markup file name, the
    name that spells ``\\xe9`` beside the one with the byte (the 1 Hz and 1024-channel WAVs and the newline
    name are in the hostile library already)."""
    expect = build_hostile_library(root)
    song = _song()
    for name, title in (("markup title.flac", "[/bold] x"), ("esc title.flac", "\x1b[2J\x1b]0;pwned\x07")):
        write_audio(root / name, song.T, SR, title=title, artist="red team", verify=False)
        expect[name] = ("analyzed", None)
    write_audio(root / "[red] name.flac", song.T, SR, verify=False)
    expect["[red] name.flac"] = ("analyzed", None)
    write_audio(root / "caf\\xe9.flac", song.T[:, : SR * 5], SR, verify=False)  # other content than the byte name
    expect["caf\\\\xe9.flac"] = ("analyzed", None)  # stored with its backslash doubled
    return expect


def _copy_good_files(src: Path, dst: Path, expect: dict) -> None:
    for name, (status, _) in expect.items():
        if status == "analyzed":
            target = text_to_path(str(dst / name))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(text_to_path(str(src / name)), target)


def _stop_a_busy_worker(cli: subprocess.Popen, library: Path, stopped: dict) -> None:
    """SIGSTOP the first worker seen twice in a row with the same library file open (analysing that file)."""
    import psutil

    me = psutil.Process(cli.pid)
    seen: dict[int, str] = {}
    while cli.poll() is None:
        try:
            for child in me.children(recursive=True):
                if "tasks.features.worker_main" not in " ".join(child.cmdline()):
                    continue
                files = [f.path for f in child.open_files() if f.path.startswith(str(library))]
                if files and seen.get(child.pid) == files[0]:
                    os.kill(child.pid, signal.SIGSTOP)
                    stopped.update(pid=child.pid, file=files[0], at=time.monotonic())
                    return
                seen[child.pid] = files[0] if files else ""
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.05)


def _analyze(library: Path, catalog: Path, *extra: str) -> subprocess.CompletedProcess | subprocess.Popen:
    return subprocess.Popen(
        [*CRATEDIG, "analyze", str(library), "--catalog", str(catalog), "--json", *extra],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=catalog.parent,
    )


def test_one_run_over_every_hostile_case(tmp_path, prefect_harness):
    from flows.analyze import analyze_library

    library = tmp_path / "library"
    expect = build_red_team_library(library)
    home = tmp_path / INJECTION
    home.mkdir()
    catalog = home / "catalog.duckdb"

    options = ("--workers", "2", "--batch-size", "4", "--file-timeout", str(TIMEOUT_S))
    reference = _analyze(library, tmp_path / "reference.duckdb", *options)  # the same run, no worker stopped
    out, err = reference.communicate(timeout=900)
    assert reference.returncode == 0, err[-3000:]
    reference_s = json.loads(out)["seconds"]

    cli = _analyze(library, catalog, *options)
    stopped: dict = {}
    watcher = threading.Thread(target=_stop_a_busy_worker, args=(cli, library, stopped))
    watcher.start()
    out, err = cli.communicate(timeout=900)
    ended = time.monotonic()
    watcher.join()
    assert cli.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert stopped, "no worker was seen analysing a file"
    print(
        f"stopped worker {stopped['pid']} on {stopped['file']}: the command ended {ended - stopped['at']:.1f} s later; "
        f"flow {summary['seconds']:.1f} s against {reference_s:.1f} s without the stop"
    )
    assert summary["seconds"] - reference_s < 3 * TIMEOUT_S  # what the stopped worker cost the run
    con = duckdb.connect(str(catalog), read_only=True)
    tracks = dict(con.execute("SELECT path, status FROM tracks").fetchall())
    rejects = dict(con.execute("SELECT path, reason FROM rejects").fetchall())
    timeouts = [p for p, r in rejects.items() if r == "TIMEOUT"]
    run = con.execute("SELECT status, error FROM runs").fetchall()
    con.close()
    prefix = str(library) + "/"
    seen = {p.removeprefix(prefix) for p in tracks} | {p.removeprefix(prefix) for p in rejects}
    assert seen == set(expect)  # every file accounted for
    assert summary["analyzed"] + summary["rejected"] + summary["failed"] + summary["unreadable"] == len(expect)
    # The stopped worker's file (it may have moved on to the next file between the look and the stop).
    assert len(timeouts) == 1, timeouts
    print(f"TIMEOUT: {timeouts[0]}")
    assert run == [("completed", None)]
    assert (home / "parquet" / "tracks.parquet").exists()
    assert not list(tmp_path.rglob("pwned.csv"))

    again = _analyze(library, catalog, "--workers", "2", "--file-timeout", str(TIMEOUT_S))
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, err[-3000:]
    retried = json.loads(out)
    assert retried["analyzed"] + retried["rejected"] + retried["failed"] == 1  # the timed-out file, and only it
    con = duckdb.connect(str(catalog), read_only=True)
    assert con.execute("SELECT count(*) FROM rejects WHERE reason = 'TIMEOUT'").fetchall() == [(0,)]
    con.close()

    clean = tmp_path / "clean"
    _copy_good_files(library, clean, expect)
    analyze_library(str(clean), catalog_path=str(tmp_path / "clean.duckdb"), workers=2)
    hostile_rows = [(r[0].removeprefix(prefix), *r[1:]) for r in _rows(catalog)]
    clean_rows = [(r[0].removeprefix(str(clean) + "/"), *r[1:]) for r in _rows(tmp_path / "clean.duckdb")]
    good = {n for n, (s, _) in expect.items() if s == "analyzed"}
    assert [r for r in hostile_rows if r[0] in good] == clean_rows


def _rows(catalog: Path) -> list[tuple]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute(COMPARED).fetchall()
    finally:
        con.close()
