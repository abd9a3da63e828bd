"""Readers never wait for a run: every read command and a plain read-only DuckDB connection answer during a real
``cratedig analyze``, a reader left open does not hurt the run, and a scheduled run that finds the catalog busy
ends Cancelled, not Failed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tasks.synth.songs import SongSpec, render_song
from tests.flows.test_durability import CRATEDIG, cli_env

pytestmark = pytest.mark.slow

#: Answer time allowed to a reader while a run writes, s (CLI start-up included).
READER_S = 5.0


def _seed_catalog(catalog: Path, library: Path) -> str:
    """Three analysed songs, stored and indexed without Prefect; returns one's path (a `similar` seed)."""
    from tasks.catalog.store import store_results
    from tasks.catalog.writer import CatalogWriter
    from tasks.constants import SR
    from tasks.features.analyze import analyze_file
    from tasks.similarity.index import refresh_similarity_index
    from tasks.synth.files import write_audio

    library.mkdir(parents=True)
    results = []
    for i in range(3):
        spec = SongSpec(bpm=118.0 + 2 * i, tonic=i, mode="minor", duration_s=10.0, style="house", timbre="saw", seed=i)
        path = library / f"seed {i}.flac"
        write_audio(path, render_song(spec, sr=SR), SR, title=f"Seed {i}", verify=False)
        st = path.stat()
        results.append(analyze_file(str(path), st.st_size, st.st_mtime_ns))
    with CatalogWriter(catalog) as writer:
        store_results(writer.con, results, "seed")
        refresh_similarity_index(writer.con)
    return results[0]["path"]


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return time.monotonic() - started, done


def test_readers_answer_during_a_run_and_an_open_reader_does_not_hurt_it(tmp_path, prefect_harness):
    library = tmp_path / "lib"
    catalog = tmp_path / "catalog.duckdb"
    seed = _seed_catalog(catalog, library)
    # Copies of the seeds: a run of one file per batch on one worker that outlasts the four probes (39 files took
    # 19 s on an idle machine, the probes about 5 s); the run's being alive is checked before and after each.
    n_copies = 44
    for i in range(n_copies):
        shutil.copy(library / f"seed {i % 3}.flac", library / f"copy {i:02d}.flac")
    held = duckdb.connect(str(catalog), read_only=True)  # a notebook left open for the whole run
    env = cli_env()
    started = time.monotonic()
    run = subprocess.Popen(
        [*CRATEDIG, "analyze", str(library), "--catalog", str(catalog), "--workers", "1", "--batch-size", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = Path(f"{catalog}.lock")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None and not lock.exists():
            time.sleep(0.1)
        while time.monotonic() < deadline and run.poll() is None and "run_id" not in lock.read_text():
            time.sleep(0.1)
        probes = {
            "status": [*CRATEDIG, "status", "--catalog", str(catalog), "--json"],
            "similar": [*CRATEDIG, "similar", seed, "--catalog", str(catalog), "--json"],
            "sql": [*CRATEDIG, "sql", "select count(*) AS n from tracks", "--catalog", str(catalog), "--json"],
            "duckdb": [
                sys.executable,
                "-c",
                "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                "print(c.execute('select count(*) from features').fetchall()[0][0])",
                str(catalog),
            ],
        }
        answers = {}
        for name, cmd in probes.items():
            assert run.poll() is None, f"the run ended before the {name} probe: {run.stderr.read()[-2000:]}"
            answers[name] = _timed(cmd, env)
        assert run.poll() is None, "the run ended before every reader had answered"
        print("reader answer times, s:", {name: round(seconds, 2) for name, (seconds, _) in answers.items()})
        for name, (seconds, done) in answers.items():
            assert done.returncode == 0, (name, done.stderr[-2000:])
            assert seconds < READER_S, (name, seconds)
        status = json.loads(answers["status"][1].stdout)
        assert status["tracks"] >= 3 and status["writer"]["run_id"]  # says which run is writing
        assert len(json.loads(answers["similar"][1].stdout)) >= 1
        assert json.loads(answers["sql"][1].stdout)[0]["n"] >= 3
        stdout, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    elapsed = time.monotonic() - started
    assert run.returncode == 0, stderr[-3000:]
    assert elapsed >= 10, f"the run took only {elapsed:.0f} s: give it more files"
    assert held.execute("SELECT count(*) FROM tracks").fetchall() == [(3,)]  # still its own snapshot
    held.close()
    con = duckdb.connect(str(catalog), read_only=True)
    assert con.execute("SELECT count(*) FROM features").fetchall() == [(3 + n_copies,)]
    assert con.execute("SELECT status FROM runs").fetchall() == [("completed",)]
    con.close()
    assert not Path(f"{catalog}.work").exists()


def test_a_scheduled_run_that_finds_the_catalog_busy_ends_cancelled(tmp_path, prefect_harness):
    from flows.reanalyze import reanalyze

    library = tmp_path / "lib"
    library.mkdir()
    (library / "a.flac").write_bytes(b"")
    catalog = tmp_path / "catalog.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tasks.catalog.writer import CatalogWriter; "
            "w = CatalogWriter(sys.argv[1], holder={'run_id': 'manual-run'}).__enter__(); "
            "print('locked', flush=True); time.sleep(60)",
            str(catalog),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        state = reanalyze(str(library), catalog_path=str(catalog), workers=0, lock_wait_s=1, return_state=True)
    finally:
        holder.kill()
        holder.wait()
    assert state.is_cancelled(), state
    assert "catalog busy" in state.message and "run manual-run" in state.message, state.message


def test_a_reanalyze_run_with_no_library_or_a_negative_wait_fails_before_it_waits_or_writes(tmp_path, prefect_harness):
    # `prefect deploy` without CRATEDIG_LIBRARY registered library '' (the worker's working folder, the repository
    # with its .venv, would have been analysed); lock_wait_s=-5 ended Cancelled, "another run is analysing".
    from flows.reanalyze import reanalyze

    library = tmp_path / "lib"
    library.mkdir()
    catalog = tmp_path / "catalog.duckdb"
    empty = reanalyze("", catalog_path=str(catalog), workers=0, return_state=True)
    assert empty.is_failed() and "library parameter is empty" in empty.message, empty.message
    relative = reanalyze(".", catalog_path=str(catalog), workers=0, return_state=True)
    assert relative.is_failed() and "must be an absolute path" in relative.message, relative.message
    negative = reanalyze(str(library), catalog_path=str(catalog), workers=0, lock_wait_s=-5, return_state=True)
    assert negative.is_failed() and "lock_wait_s must be at least 0" in negative.message, negative.message
    assert not catalog.exists()
