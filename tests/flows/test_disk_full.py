"""A full disk fails the run cleanly: the run row says why, the user gets one line, the next run goes on."""

from __future__ import annotations

import errno
import os
import subprocess

import duckdb
import pytest
from typer.testing import CliRunner

from tasks.catalog import runs, store
from tests.flows.test_deadlines import _items


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 16 MB tmpfs (needs root; skipped elsewhere, where the simulated ENOSPC below still runs)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(
            "mounting a tmpfs needs root (CAP_SYS_ADMIN); test_enospc_gives_one_line_and_a_failed_run simulates it"
        )
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder, leave: int = 0) -> None:
    st = os.statvfs(folder)
    with open(os.path.join(folder, "filler"), "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def _runs(catalog) -> list[tuple]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute("SELECT status, error FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()


def test_disk_full_at_a_batch_commit_fails_the_run_with_its_reason(small_tmpfs, tmp_path, prefect_harness, monkeypatch):
    from flows.analyze import analyze_library

    library = tmp_path / "lib"
    library.mkdir()
    _items(library, ["a.flac", "b.flac"])
    catalog = small_tmpfs / "catalog.duckdb"
    real = store.store_results

    def disk_fills_up(con, results, run_id):
        _fill(small_tmpfs)
        return real(con, results, run_id)

    monkeypatch.setattr(store, "store_results", disk_fills_up)
    with pytest.raises(duckdb.Error, match="No space left on device"):
        analyze_library(str(library), catalog_path=str(catalog), workers=1, batch_size=2)
    # The run works on a copy (tasks.catalog.writer): with the disk full its end cannot be published, so the
    # published catalog keeps what it had (the run 'running', or no row), whole and readable.
    assert [s for s, _ in _runs(catalog)] in ([], ["running"])
    monkeypatch.setattr(store, "store_results", real)
    os.remove(small_tmpfs / "filler")
    analyze_library(str(library), catalog_path=str(catalog), workers=1, batch_size=2)
    # ... and the next run gives it a final state: no run row stays 'running'.
    assert [s for s, _ in _runs(catalog)] in (["completed"], ["interrupted", "completed"])
    con = duckdb.connect(str(catalog), read_only=True)
    assert con.execute("SELECT status, count(*) FROM tracks GROUP BY ALL").fetchall() == [("analyzed", 2)]
    con.close()


def test_enospc_gives_one_line_and_a_failed_run(tmp_path, prefect_harness, monkeypatch):
    from flows.cli import app

    library = tmp_path / "lib"
    library.mkdir()
    _items(library, ["a.flac"])
    catalog = tmp_path / "catalog.duckdb"

    def no_space(con, results, run_id):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(catalog) + ".wal")

    monkeypatch.setattr(store, "store_results", no_space)
    result = CliRunner().invoke(app, ["analyze", str(library), "--catalog", str(catalog), "--workers", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("cratedig analyze: the run failed: OSError: [Errno 28]")
    assert "Traceback" not in result.output
    ((status, error),) = _runs(catalog)
    assert status == "failed" and "No space left on device" in error


def test_a_run_killed_earlier_is_marked_interrupted(tmp_path):
    con = store.open_catalog(tmp_path / "c.duckdb")
    runs.start_run(con, "killed", "/lib", analyzer_version=1)  # then kill -9: nothing records its end
    con.close()
    con = store.open_catalog(tmp_path / "c.duckdb")
    runs.start_run(con, "next", "/lib", analyzer_version=1)
    rows = con.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    con.close()
    assert rows == [("killed", "interrupted"), ("next", "running")]


@pytest.mark.slow
def test_cli_on_a_full_disk_says_one_line(small_tmpfs, tmp_path, prefect_harness):
    from tests.flows.test_durability import CRATEDIG, cli_env

    library = tmp_path / "lib"
    library.mkdir()
    _items(library, ["a.flac"])
    catalog = small_tmpfs / "catalog.duckdb"
    store.open_catalog(catalog).close()
    _fill(small_tmpfs, leave=20000)  # room for the run row, not for the run
    done = subprocess.run(
        [*CRATEDIG, "analyze", str(library), "--catalog", str(catalog), "--workers", "1"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1
    failed = [line for line in done.stderr.splitlines() if line.startswith("cratedig analyze: the run failed: ")]
    assert len(failed) == 1 and "No space left on device" in failed[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "| ERROR" not in done.stderr, done.stderr[-3000:]
    os.remove(small_tmpfs / "filler")
    assert {s for s, _ in _runs(catalog)} <= {"failed", "interrupted", "running"}  # the published catalog is whole
