"""The catalog writer: one writer at a time (named in the refusal), a working copy published by rename, readers
that never wait and keep their snapshot, leftovers of a killed run discarded, old storage formats converted."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from tasks.catalog.writer import (
    STORAGE_NUMBER,
    CatalogWriter,
    current_writer,
    lock_path,
    open_reader,
    storage_number,
    work_path,
)
from tasks.errors import CatalogLockedError

INSERT = (
    "INSERT INTO tracks (track_id, path, size_bytes, mtime_ns, fingerprint, status, first_seen, last_seen) "
    "VALUES (nextval('track_id_seq'), ?, 1, 1, 'f', 'rejected', now(), now())"
)


def count(con) -> int:
    return con.execute("SELECT count(*) FROM tracks").fetchall()[0][0]


def count_elsewhere(catalog) -> int:
    """Tracks a reader in another process sees (in this process, DuckDB hands out the instance already open)."""
    code = "import duckdb, sys; print(duckdb.connect(sys.argv[1], read_only=True).sql('FROM tracks').shape[0])"
    return int(subprocess.run([sys.executable, "-c", code, str(catalog)], capture_output=True, check=True).stdout)


def test_readers_never_wait_and_keep_their_snapshot(tmp_path):
    catalog = tmp_path / "c.duckdb"
    with CatalogWriter(catalog) as w:
        w.con.execute(INSERT, ["/a.flac"])
    assert catalog.exists() and not work_path(catalog).exists()
    assert storage_number(catalog) == STORAGE_NUMBER
    with CatalogWriter(catalog, holder={"run_id": "r1"}) as w:
        early = open_reader(catalog)  # opens at once although a writer is busy
        w.con.execute(INSERT, ["/b.flac"])
        assert count(early) == 1  # nothing published yet
        w.publish()
        assert count_elsewhere(catalog) == 2 and count(early) == 1  # the early reader keeps the inode it opened
        w.con.execute(INSERT, ["/c.flac"])
    assert count(early) == 1
    early.close()
    with open_reader(catalog) as con:
        assert count(con) == 3


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path):
    catalog = tmp_path / "c.duckdb"
    assert current_writer(catalog) is None
    with CatalogWriter(catalog, holder={"run_id": "first-run"}):
        assert current_writer(catalog)["run_id"] == "first-run"
        with pytest.raises(CatalogLockedError, match="in use by another cratedig run: run first-run \\(pid"):
            CatalogWriter(catalog, lock_timeout_s=0.3).__enter__()
    assert current_writer(catalog) is None
    with CatalogWriter(catalog, lock_timeout_s=0.3) as w:  # free again
        assert count(w.con) == 0


def test_a_killed_runs_leftovers_are_discarded(tmp_path):
    catalog = tmp_path / "c.duckdb"
    with CatalogWriter(catalog) as w:
        w.con.execute(INSERT, ["/a.flac"])
    work_path(catalog).write_bytes(b"half-written working copy of a killed run")
    lock_path(catalog).write_text('{"run_id": "dead"}')  # its flock died with it
    publishing = tmp_path / ".c.duckdb.publish-4242"  # killed while it copied the catalog into place
    publishing.write_bytes(b"half a catalog")
    other = tmp_path / ".other.duckdb.publish-4242"  # another catalog's: not this writer's to remove
    other.write_bytes(b"x")
    with CatalogWriter(catalog, lock_timeout_s=1) as w:
        assert count(w.con) == 1
        assert not publishing.exists() and other.exists()
        w.con.execute(INSERT, ["/b.flac"])
    with open_reader(catalog) as con:
        assert count(con) == 2


def test_an_error_keeps_the_committed_batches_and_drops_the_rest(tmp_path):
    catalog = tmp_path / "c.duckdb"
    with pytest.raises(RuntimeError):
        with CatalogWriter(catalog) as w:
            w.con.execute(INSERT, ["/committed.flac"])
            w.con.execute("BEGIN")
            w.con.execute(INSERT, ["/uncommitted.flac"])
            raise RuntimeError("the run failed")
    with open_reader(catalog) as con:
        assert con.execute("SELECT path FROM tracks").fetchall() == [("/committed.flac",)]


def test_a_catalog_in_a_newer_storage_format_is_converted(tmp_path):
    catalog = tmp_path / "c.duckdb"
    with CatalogWriter(catalog) as w:
        w.con.execute(INSERT, ["/a.flac"])
    # As an older cratedig wrote it: DuckDB's newest storage format, which DuckDB 1.x clients cannot open.
    legacy = tmp_path / "legacy.duckdb"
    con = duckdb.connect(str(legacy))
    con.execute(f"ATTACH '{catalog}' AS src (READ_ONLY)")
    con.execute("COPY FROM DATABASE src TO legacy")
    con.close()
    assert storage_number(legacy) != STORAGE_NUMBER
    with CatalogWriter(legacy) as w:
        w.con.execute(INSERT, ["/b.flac"])
    assert storage_number(legacy) == STORAGE_NUMBER
    with open_reader(legacy) as con:
        assert con.execute("SELECT track_id, path FROM tracks ORDER BY 1").fetchall() == [
            (1, "/a.flac"),
            (2, "/b.flac"),
        ]


def test_publishing_is_bounded_by_its_cost(tmp_path, monkeypatch):
    from tasks.catalog import writer as module

    with CatalogWriter(tmp_path / "c.duckdb") as w:
        assert w.publishes == 1  # a new catalog is published as the writer opens it
        w.publish_cost_s = 0.0
        assert w.publish_due()  # a publish that costs nothing is due at once
        w.publish_cost_s = 10.0  # a slow publish: the next one waits (20 x cost, capped at the max age)
        assert not w.publish_due()
        monkeypatch.setattr(module, "PUBLISH_MAX_AGE_S", 0.0)
        assert w.publish_due()


def test_a_new_catalog_is_published_as_soon_as_its_writer_opens(tmp_path):
    from tasks.catalog.store import open_catalog
    from tasks.catalog.writer import CatalogWriter

    path = tmp_path / "catalog.duckdb"
    with CatalogWriter(path, holder={"run_id": "r1"}):
        assert path.exists()  # readers see an empty catalog during the first run, not "no catalog"
        con = open_catalog(path, read_only=True)
        assert con.execute("SELECT count(*) FROM tracks").fetchall() == [(0,)]
        con.close()


def test_a_catalog_named_by_a_link_is_written_through_it(tmp_path):
    """A run published over a link to a catalog: the link became a copy, and the catalog (and its export) forked."""
    import os

    store, data = tmp_path / "store", tmp_path / "data"
    store.mkdir()
    data.mkdir()
    target, link = store / "lib1.duckdb", data / "catalog.duckdb"
    with CatalogWriter(target) as w:
        w.con.execute(INSERT, ["/a.flac"])
    os.symlink(os.path.relpath(target, data), link)
    with CatalogWriter(link, holder={"run_id": "through-the-link"}) as w:
        w.con.execute(INSERT, ["/b.flac"])
        assert current_writer(target)["run_id"] == "through-the-link"  # one lock for both names
        with pytest.raises(CatalogLockedError):
            CatalogWriter(target, lock_timeout_s=0.3).__enter__()
    assert link.is_symlink() and count_elsewhere(target) == 2
    assert sorted(p.name for p in data.iterdir()) == ["catalog.duckdb"]  # no lock or working copy beside the link


def test_a_ctrl_c_during_a_publish_lands_after_it(tmp_path, monkeypatch):
    # A Ctrl-C (or SIGTERM) in the copy threw it away, and what the run had stored since its last publish.
    import os
    import signal

    from tasks.catalog import writer

    catalog, real = tmp_path / "c.duckdb", writer._copy

    def copy_hit_by_ctrl_c(src, dst):
        os.kill(os.getpid(), signal.SIGINT)  # Python's handler raises KeyboardInterrupt at the next bytecode
        real(src, dst)

    with pytest.raises(KeyboardInterrupt):
        with CatalogWriter(catalog) as w:
            w.con.execute(INSERT, ["/stored.flac"])
            monkeypatch.setattr(writer, "_copy", copy_hit_by_ctrl_c)
            w.publish()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert count_elsewhere(catalog) == 1  # the publish the Ctrl-C fell into was finished first
