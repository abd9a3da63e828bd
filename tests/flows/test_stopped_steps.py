"""A run stopped inside one of its steps (a batch's store, the Parquet export, the similarity refresh): it records
itself interrupted with what it stored, and the next ``analyze`` finishes the step, even with nothing to analyse."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.flows.test_durability import analyze_json, assert_session_ends, catalog_state, published, small_library

pytestmark = pytest.mark.slow


def test_an_interrupt_inside_a_query_still_records_the_run_interrupted(tmp_path, prefect_harness, monkeypatch):
    # Ctrl-C during a DuckDB statement surfaces as RuntimeError('Query interrupted'), not KeyboardInterrupt.
    from flows import interrupt
    from flows.analyze import analyze_library
    from tasks.catalog import store

    library = small_library(tmp_path / "lib", 4)
    catalog = tmp_path / "catalog.duckdb"
    real, calls = store.store_results, []

    def store_then_interrupt(con, results, run_id):
        calls.append(1)
        if len(calls) == 3:  # two batches stored, then the user's Ctrl-C lands in the third's statement
            interrupt.request()
            raise RuntimeError("Query interrupted")
        return real(con, results, run_id)

    monkeypatch.setattr(store, "store_results", store_then_interrupt)
    try:
        with pytest.raises(RuntimeError, match="Query interrupted"):
            analyze_library(str(library), catalog_path=str(catalog), workers=1, batch_size=1)
    finally:
        interrupt.clear()
    con = duckdb.connect(str(catalog), read_only=True)
    assert con.execute("SELECT status, n_analyzed, error FROM runs").fetchall() == [("interrupted", 2, "interrupted")]
    con.close()


def _run_interrupted_in(monkeypatch, module, name: str, library: Path, catalog: Path) -> None:
    """Run the flow in this process with Ctrl-C landing in ``module.name`` (as a DuckDB query it stops raises)."""
    from flows import interrupt
    from flows.analyze import analyze_library

    def interrupted(*args, **kwargs):
        interrupt.request()
        raise RuntimeError("Query interrupted")

    with monkeypatch.context() as patched:
        patched.setattr(module, name, interrupted)
        try:
            with pytest.raises(RuntimeError, match="Query interrupted"):
                analyze_library(str(library), catalog_path=str(catalog), workers=1)
        finally:
            interrupt.clear()


def test_an_export_an_interrupt_stopped_is_redone_by_the_next_run(tmp_path, prefect_harness, monkeypatch):
    # Every file stored, then Ctrl-C while the Parquet export is written: the next run has nothing to analyse
    # but must not leave the catalog without its export, nor with an earlier run's.
    import polars as pl

    from tasks.catalog import parquet
    from tasks.catalog.store import open_catalog, store_results
    from tasks.features.analyze import empty_result

    library = small_library(tmp_path / "lib", 2)
    catalog = tmp_path / "catalog.duckdb"
    _run_interrupted_in(monkeypatch, parquet, "export_parquet", library, catalog)
    assert catalog_state(catalog)[1] == 2 and not parquet.has_export(tmp_path / "parquet")
    assert analyze_json(library, catalog)["analyzed"] == 0 and parquet.has_export(tmp_path / "parquet")
    assert pl.read_parquet(tmp_path / "parquet" / "features.parquet").height == 2

    earlier = open_catalog(tmp_path / "earlier.duckdb")  # an export of what an earlier run had stored
    store_results(earlier, [empty_result(str(library / "gone.flac"), 10, 1, reason="EMPTY", detail="0 bytes")], "r")
    parquet.export_parquet(earlier, tmp_path / "parquet")
    earlier.close()
    summary = analyze_json(library, catalog)
    assert summary["analyzed"] == 0 and summary["parquet"] == str((tmp_path / "parquet").resolve())
    assert pl.read_parquet(tmp_path / "parquet" / "features.parquet").height == 2
    assert "gone.flac" not in str(pl.read_parquet(tmp_path / "parquet" / "tracks.parquet")["path"].to_list())
    assert "parquet" not in analyze_json(library, catalog)  # current: not written again


def test_an_index_a_stopped_run_left_behind_is_rebuilt_by_the_next_analyze(tmp_path, prefect_harness, monkeypatch):
    # Stopped after every batch was stored, before the similarity index was refreshed: the next analyze has no
    # file to analyse, but similar_tracks() and the notebooks need the index (they found it empty or missing).
    from flows import prefect_tasks
    from tasks.catalog.store import open_catalog
    from tasks.similarity.index import index_is_current

    library = small_library(tmp_path / "lib", 2)
    catalog = tmp_path / "catalog.duckdb"
    _run_interrupted_in(monkeypatch, prefect_tasks, "refresh_similarity_index", library, catalog)

    def index_state() -> tuple[bool, int]:
        con = open_catalog(catalog, read_only=True)
        try:
            current = index_is_current(con)
            return current, con.execute("SELECT count(*) FROM similarity_index").fetchall()[0][0] if current else 0
        finally:
            con.close()

    assert catalog_state(catalog)[1] == 2 and index_state() == (False, 0)
    assert "seconds" in analyze_json(library, catalog)  # a run (not the idle path), which refreshes the index
    assert index_state() == (True, 2)
    assert "seconds" not in analyze_json(library, catalog)  # then nothing to do


#: ``cratedig analyze`` whose third stored batch runs a polars call in which a SIGTERM to the whole group (as
#: ``timeout`` sends it) lands: Prefect's handler then raises inside Python code that polars calls from Rust.
def _in_its_own_session(script: str, args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen:
    """``python -c script`` with the CLI's ``args``, in a session of its own, with an embedded Prefect server."""
    alone = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # an embedded server, in the session
    alone |= {"CRATEDIG_SERVER_STATE": str(tmp_path / "no-server.json"), **env}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=alone,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


SIGTERM_INSIDE_POLARS = """
import os, signal, sys, time
import polars as pl
from tasks.catalog import store
real_store, real_field, calls = store.store_results, pl.Field.__init__, []
def field_then_sigterm(self, *args, **kwargs):
    pl.Field.__init__ = real_field
    with open(os.environ["SIGNALLED_AT"], "w") as f:
        f.write(repr(time.time()))
    os.killpg(0, signal.SIGTERM)
    return real_field(self, *args, **kwargs)
def store_then_sigterm(con, results, run_id):
    calls.append(1)
    if len(calls) == 3:
        pl.Field.__init__ = field_then_sigterm
        pl.LazyFrame({"a": [1]}).select(pl.struct("a")).collect_schema()
    return real_store(con, results, run_id)
store.store_results = store_then_sigterm
sys.argv[0] = "cratedig"
from flows.cli import app
app()
"""


def test_a_sigterm_inside_a_polars_call_still_stops_the_run_within_the_grace(tmp_path, prefect_harness):
    # The TerminationSignal became a PanicException: the run was recorded failed, and the command hung while
    # Prefect reported the crash to the embedded server that the same SIGTERM had stopped.
    from flows.cli.interruption import INTERRUPT_GRACE_S

    library = small_library(tmp_path / "lib", 6)
    catalog = tmp_path / "catalog.duckdb"
    args = ["analyze", str(library), "--catalog", str(catalog), "--workers", "1", "--batch-size", "1"]
    signalled_at = tmp_path / "signalled_at"
    proc = _in_its_own_session(SIGTERM_INSIDE_POLARS, args, tmp_path, SIGNALLED_AT=str(signalled_at))
    try:
        _, err = proc.communicate(timeout=240)
        ended_at = time.time()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    err = err.decode(errors="replace")
    assert "PanicException" in err or "panicked" in err, err[-2000:]  # the signal did land inside polars
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("interrupted: "), err[-2000:]
    assert ended_at - float(signalled_at.read_text()) <= INTERRUPT_GRACE_S + 15
    con = duckdb.connect(str(catalog), read_only=True)
    (status, n_analyzed), stored = con.execute("SELECT status, n_analyzed FROM runs").fetchall()[0], published(catalog)
    con.close()
    assert status == "interrupted" and n_analyzed == stored == 2


SIGTERM_AFTER_THE_RUN = """
import os, signal, sys, time
import flows.cli.analyze as cli
from prefect.server.api.server import SubprocessASGIServer
def sigterm_then(real):
    def wrapper(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(float(os.environ["SLEEP_S"]))
        return real(*args, **kwargs)
    return wrapper
if os.environ["WHEN"] == "summary":
    cli.print_summary = sigterm_then(cli.print_summary)
else:
    SubprocessASGIServer.stop = sigterm_then(SubprocessASGIServer.stop)
sys.argv[0] = "cratedig"
from flows.cli import main
main()
"""


@pytest.mark.parametrize("when", ["summary", "server stop"])
def test_a_sigterm_after_the_run_exits_130_and_leaves_no_server_behind(tmp_path, prefect_harness, when):
    # Once the flow had returned, SIGTERM took Python's default: exit 143, and the embedded server outlived it;
    # so it did while the interpreter's exit stopped that server, after the command had returned.
    library = small_library(tmp_path / "lib", 1)
    args = ["analyze", str(library), "--catalog", str(tmp_path / "catalog.duckdb"), "--workers", "1"]
    proc = _in_its_own_session(
        SIGTERM_AFTER_THE_RUN, args, tmp_path, WHEN=when, SLEEP_S="60" if when == "summary" else "1"
    )
    try:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 130, err.decode(errors="replace")[-2000:]
        assert_session_ends(proc.pid, 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
