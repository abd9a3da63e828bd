"""The Parquet export: any folder name is safe, and the two files always come from one complete export."""

from __future__ import annotations

import errno
import os

import polars as pl
import pytest

from tasks.catalog import parquet
from tasks.catalog.parquet import export_parquet
from tasks.catalog.store import open_catalog, store_results
from tasks.features.analyze import empty_result
from tasks.sqltext import sql_literal

INJECTION = "a' (FORMAT csv); COPY (SELECT 1) TO 'pwned.csv' (FORMAT csv); --"


def _catalog_with(path, names: list[str]):
    con = open_catalog(path)
    store_results(con, [empty_result(f"/music/{n}.flac", 10, 1, reason="EMPTY", detail="0 bytes") for n in names], "r")
    return con


def test_sql_literal_doubles_quotes():
    assert sql_literal("Bob's Music") == "'Bob''s Music'"
    assert sql_literal(INJECTION) == "'a'' (FORMAT csv); COPY (SELECT 1) TO ''pwned.csv'' (FORMAT csv); --'"
    with pytest.raises(ValueError):
        sql_literal("a\x00b")


@pytest.mark.parametrize("folder", ["Bob's Music", INJECTION])
def test_export_under_any_folder_name(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / folder
    con = _catalog_with(root / "catalog.duckdb", ["a", "b"])
    written = export_parquet(con, root / "parquet")
    con.close()
    assert [p.name for p in written] == ["tracks.parquet", "features.parquet", "effective_tracks.parquet"]
    assert sorted(pl.read_parquet(root / "parquet" / "tracks.parquet")["path"]) == ["/music/a.flac", "/music/b.flac"]
    assert pl.read_parquet(root / "parquet" / "features.parquet").height == 0
    leaked = [p for p in tmp_path.rglob("*") if p.suffix == ".csv"]
    assert leaked == []  # the folder's name never became SQL


def test_failed_export_leaves_the_previous_set_whole(tmp_path, monkeypatch):
    out = tmp_path / "parquet"
    con = _catalog_with(tmp_path / "c.duckdb", ["a"])
    export_parquet(con, out)
    store_results(con, [empty_result("/music/b.flac", 10, 1, reason="EMPTY", detail="0 bytes")], "r2")
    real = parquet._copy_table

    def disk_full_on_features(con, table, target):
        if table == "features":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        real(con, table, target)

    monkeypatch.setattr(parquet, "_copy_table", disk_full_on_features)
    with pytest.raises(OSError, match="No space left"):
        export_parquet(con, out)
    assert pl.read_parquet(out / "tracks.parquet")["path"].to_list() == ["/music/a.flac"]  # the old set, whole
    assert len(list((out / "exports").iterdir())) == 1  # the half-written export is gone
    monkeypatch.setattr(parquet, "_copy_table", real)
    export_parquet(con, out)
    assert sorted(pl.read_parquet(out / "tracks.parquet")["path"]) == ["/music/a.flac", "/music/b.flac"]
    con.close()


def test_plain_files_of_an_older_export_become_links(tmp_path):
    out = tmp_path / "parquet"
    out.mkdir()
    for table in ("tracks", "features"):
        (out / f"{table}.parquet").write_bytes(b"old")
    con = _catalog_with(tmp_path / "c.duckdb", ["a"])
    for _ in range(3):
        export_parquet(con, out)
    con.close()
    assert os.readlink(out / "tracks.parquet") == "current/tracks.parquet"
    assert pl.read_parquet(out / "tracks.parquet").height == 1
    assert len(list((out / "exports").iterdir())) == 2  # the current export and the one before


def test_an_export_is_current_only_for_the_content_it_holds(tmp_path):
    out = tmp_path / "parquet"
    con = _catalog_with(tmp_path / "c.duckdb", ["a"])
    assert not parquet.export_is_current(con, out)  # none yet
    export_parquet(con, out)
    assert parquet.export_is_current(con, out)
    store_results(con, [empty_result("/music/b.flac", 10, 1, reason="EMPTY", detail="0 bytes")], "r2")
    assert not parquet.export_is_current(con, out)  # a run stored more, then stopped before its export
    export_parquet(con, out)
    assert parquet.export_is_current(con, out)
    (out / "current" / parquet.PARQUET_MANIFEST).unlink()  # as an older cratedig left it
    assert not parquet.export_is_current(con, out)
    con.close()


def test_a_name_starting_with_a_tilde_is_a_folder_of_that_name_for_duckdb_too(tmp_path, monkeypatch):
    # "~/pq" quoted in a shell reaches Python as it is: Python's checks made ./~/pq, but DuckDB's COPY and connect
    # read it as the home folder, so the export and the catalog went elsewhere than the checks had looked.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "~").mkdir()
    con = _catalog_with("~/c.duckdb", ["a"])
    export_parquet(con, "~/pq")
    con.close()
    assert (tmp_path / "~" / "c.duckdb").is_file() and (tmp_path / "~" / "pq" / "tracks.parquet").is_file()
    assert list(home.iterdir()) == []
