"""The curation commands end to end (typer's runner): exit codes, one-line errors, literal text."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture()
def cli():
    from typer.testing import CliRunner

    from flows.cli import app

    return lambda *args: CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def _one_line_error(res, code):
    assert res.exit_code == code, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output


def test_set_status_clear(cli, catalog_copy):
    res = cli("set", "Song 1", "--bpm", 90, "--key", "Dm", "--catalog", catalog_copy)
    assert res.exit_code == 0, res.output
    assert "90.0" in res.output and "D minor" in res.output
    status = json.loads(cli("status", "--json", "--catalog", catalog_copy).stdout)
    assert status["corrected_tracks"] == 1
    res = cli("similar", "Song 1", "-k", 5, "--json", "--catalog", catalog_copy)
    assert res.exit_code == 0, res.output
    res = cli("mix", "Song 1", "--length", 2, "--no-harmonic", "--bpm-window", 50, "--json", "--catalog", catalog_copy)
    assert json.loads(res.stdout)[0]["bpm"] == 90.0  # the effective value
    for window in ("inf", "nan", "-1"):  # inf would make the window mean nothing, nan compare false everywhere
        for command in ("mix", "similar"):
            res = cli(command, "Song 1", "--bpm-window", window, "--catalog", catalog_copy)
            assert res.exit_code == 2 and "finite" in res.output, (command, window, res.output)
    _one_line_error(cli("set", "Song 1", "--key", "H minor", "--catalog", catalog_copy), 2)
    _one_line_error(cli("set", "Song 1", "--bpm", 1000, "--catalog", catalog_copy), 2)
    _one_line_error(cli("set", "Song 1", "--clear", "--bpm", 90, "--catalog", catalog_copy), 2)
    _one_line_error(cli("set", "no such song", "--bpm", 90, "--catalog", catalog_copy), 1)
    assert cli("set", "Song", "--bpm", 90, "--catalog", catalog_copy).exit_code == 2  # ambiguous: candidates listed
    assert cli("set", "Song 1", "--clear", "--catalog", catalog_copy).exit_code == 0
    assert json.loads(cli("status", "--json", "--catalog", catalog_copy).stdout)["corrected_tracks"] == 0


def test_crates_from_the_command_line(cli, catalog_copy, tmp_path):
    import duckdb

    con = duckdb.connect(str(catalog_copy))
    con.execute("UPDATE tracks SET title = '[bold]Loud[/bold] tag' WHERE track_id = 1")
    con.close()
    res = cli("crate", "add", "house", "--where", "bpm BETWEEN 120 AND 130", "--catalog", catalog_copy)
    assert res.exit_code == 0 and "3 tracks" in res.output, res.output
    _one_line_error(cli("crate", "add", "bad", "--where", "bpm > 1; DROP TABLE tracks", "--catalog", catalog_copy), 2)
    _one_line_error(cli("crate", "add", "bad", "--where", "nope > 1", "--catalog", catalog_copy), 2)
    # typer keeps the last of a repeated option: the first condition would be lost without a word
    twice = cli("crate", "add", "two", "--where", "bpm > 1", "--where", "bpm < 300", "--catalog", catalog_copy)
    _one_line_error(twice, 2)
    assert "AND" in twice.output
    for reads_a_file in (
        "EXISTS (SELECT 1 FROM read_csv('/etc/passwd'))",
        "EXISTS (FROM read_text('/etc/passwd'))",
        "EXISTS (SHOW tracks)",
        "EXISTS (PIVOT_LONGER read_csv('/etc/hostname', header=false) ON column0 INTO NAME n VALUE v)",
        "EXISTS (PIVOT_WIDER read_csv('/etc/passwd', header=false) ON column0)",
        "bpm IN (SELECT 1)",
    ):
        _one_line_error(cli("crate", "add", "bad", "--where", reads_a_file, "--catalog", catalog_copy), 2)
    assert [c["name"] for c in json.loads(cli("crate", "list", "--json", "--catalog", catalog_copy).stdout)] == [
        "house"
    ]
    for legal in (  # FROM and SELECT that start no query, and words inside strings, are not subqueries
        "title NOT ILIKE '%select%from%'",
        "bpm IS DISTINCT FROM 120",
        "extract(year FROM current_date) > 2000",
        "trim(BOTH ' ' FROM title) <> ''",
        "CASE WHEN bpm > 120 THEN true ELSE false END",
    ):
        res = cli("crate", "add", "legal", "--where", legal, "--replace", "--catalog", catalog_copy)
        assert res.exit_code == 0, res.output
    assert cli("crate", "rm", "legal", "--catalog", catalog_copy).exit_code == 0
    res = cli("crate", "show", "house", "--catalog", catalog_copy)
    assert "[bold]Loud[/bold] tag" in res.output  # tag text shown literally, not as markup
    listed = json.loads(cli("crate", "list", "--json", "--catalog", catalog_copy).stdout)
    assert [(c["name"], c["tracks"]) for c in listed] == [("house", 3)]
    res = cli("similar", "id:2", "-k", 2, "--save-crate", "near 2", "--catalog", catalog_copy)  # a bare 2 is ambiguous
    assert res.exit_code == 0, res.output
    shown = json.loads(cli("crate", "show", "near 2", "--json", "--catalog", catalog_copy).stdout)
    assert len(shown) == 2
    both = cli("crate", "show", "near 2", "--json", "--m3u", tmp_path / "x.m3u", "--catalog", catalog_copy)
    _one_line_error(both, 2)  # JSON on stdout or a playlist, as mix and similar
    assert not (tmp_path / "x.m3u").exists()
    res = cli("export", "rekordbox", tmp_path / "rb.xml", "--crate", "house", "--catalog", catalog_copy)
    assert res.exit_code == 0 and "wrote 3 tracks, 1 playlist to" in res.output, res.output
    res = cli("export", "traktor", tmp_path / "c.nml", "--catalog", catalog_copy)
    assert res.exit_code == 0 and "wrote 5 tracks, 2 playlists" in res.output, res.output
    _one_line_error(cli("export", "traktor", tmp_path / "x.nml", "--crate", "nope", "--catalog", catalog_copy), 1)
    assert not (tmp_path / "x.nml").exists()
    assert cli("crate", "rm", "house", "--catalog", catalog_copy).exit_code == 0
    _one_line_error(cli("crate", "rm", "house", "--catalog", catalog_copy), 1)
    _one_line_error(cli("crate", "list", "--catalog", tmp_path / "none.duckdb"), 4)  # ExitCode.NOT_A_CATALOG


def test_tags_write_dry_run_then_apply(cli, dj_catalog, catalog_copy, tmp_path):
    import duckdb

    _, library = dj_catalog
    mine = tmp_path / "music"
    shutil.copytree(library, mine, copy_function=shutil.copy2)  # keeps mtimes: the catalog stays in step
    con = duckdb.connect(str(catalog_copy))
    con.execute("UPDATE tracks SET path = replace(path, ?, ?)", [str(library), str(mine)])
    con.close()
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    res = cli("tags", "write", mine, "--fields", "bpm,key,replaygain", "--json", "--catalog", catalog_copy)
    assert res.exit_code == 0, res.output
    planned = json.loads(res.stdout)
    assert {r["tag"] for r in planned} >= {"TXXX:BPM", "TKEY", "BPM", "INITIALKEY", "----:com.apple.iTunes:initialkey"}
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before  # a dry run writes nothing
    _one_line_error(cli("tags", "write", mine, "--fields", "bpm,colour", "--catalog", catalog_copy), 2)
    res = cli("tags", "write", mine, "--apply", "--key-notation", "camelot", "--json", "--catalog", catalog_copy)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)
    res = cli("tags", "write", mine, "--json", "--key-notation", "camelot", "--catalog", catalog_copy)
    assert json.loads(res.stdout) == []  # nothing left to change
    res = cli("tags", "write", tmp_path / "elsewhere", "--catalog", catalog_copy)
    assert res.exit_code == 1
    # One path that names no analysed track among good ones: the others are listed, and the exit says so.
    res = cli("tags", "write", mine, tmp_path / "typo.flac", "--fields", "replaygain", "--catalog", catalog_copy)
    assert res.exit_code == 1, res.output
    assert "not in the catalog (or not analysed)" in res.output and "typo.flac" in res.output
    assert "files would change" in res.output


def test_tags_write_names_a_file_it_cannot_tag_once(cli, dj_catalog, catalog_copy, tmp_path):
    import duckdb

    _, library = dj_catalog
    mine = tmp_path / "music"
    shutil.copytree(library, mine, copy_function=shutil.copy2)
    m4a = next(mine.glob("*.m4a"))
    aac = m4a.rename(m4a.with_suffix(".aac"))  # a format that takes no tags here
    con = duckdb.connect(str(catalog_copy))
    con.execute("UPDATE tracks SET path = replace(path, ?, ?)", [str(library), str(mine)])
    con.execute("UPDATE tracks SET path = ? WHERE path = ?", [str(aac), str(m4a)])
    con.close()
    res = cli("tags", "write", mine, "--catalog", catalog_copy)
    assert res.exit_code == 1, res.output  # as --apply would: a file named as not tagged
    said = [ln for ln in res.output.splitlines() if aac.name in ln]
    assert said == [f"{aac.name}: cannot write tags to .aac files; not tagged"], res.output
    assert "4 of 5 files would change" in res.output


def test_a_ctrl_c_during_set_lands_after_its_write(cli, catalog_copy, monkeypatch):
    # It fell between the correction and the similarity index: the catalog was published with one, not the other.
    import os
    import signal

    import duckdb

    from tasks.similarity import index

    real = index.apply_corrections

    def index_hit_by_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(index, "apply_corrections", index_hit_by_ctrl_c)
    assert cli("set", "Song 1", "--bpm", 91, "--catalog", catalog_copy).exit_code == 130
    con = duckdb.connect(str(catalog_copy), read_only=True)
    bpms = con.execute(
        "SELECT e.bpm, i.bpm FROM effective_tracks e JOIN similarity_index i USING (track_id) WHERE e.title = 'Song 1'"
    ).fetchall()
    con.close()
    assert bpms == [(91.0, 91.0)]
