"""The command line refuses bad options (usage error, exit 2) and shows file-derived text literally."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.text import counted, literal, visible

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["--bpm-range", "180", "70"],
        ["--bpm-range", "nan", "nan"],
        ["--bpm-range", "-10", "-1"],
        ["--bpm-range", "100", "100"],
        ["--bpm-range", "inf", "500"],
        ["--workers", "0"],
        ["--workers", "-3"],
        ["--workers", "100000"],  # more than 4 per core started a process per file
        ["--file-timeout", "0"],
        ["--file-timeout", "-5"],
        ["--file-timeout", "nan"],
        ["--lock-timeout", "nan"],
        ["--lock-timeout", "-1"],
    ],
)
def test_bad_analyze_options_are_usage_errors(args, tmp_path):
    result = runner.invoke(app, ["analyze", str(tmp_path), "--catalog", str(tmp_path / "c.duckdb"), *args])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "c.duckdb").exists()  # refused before anything ran


def test_bad_serve_options_are_usage_errors(tmp_path):
    for args in (["--bpm-range", "180", "70"], ["--workers", "0"], ["--workers", "100000"], ["--file-timeout", "0"]):
        result = runner.invoke(app, ["serve", str(tmp_path), *args])
        assert result.exit_code == 2, result.output


def test_the_flow_refuses_bad_parameters_too(tmp_path):
    from flows.analyze import analyze_library

    for kwargs in ({"bpm_range": (180, 70)}, {"file_timeout_s": 0}, {"workers": -1}, {"workers": 100_000}):
        with pytest.raises(ValueError):
            analyze_library.fn(str(tmp_path), catalog_path=str(tmp_path / "c.duckdb"), **kwargs)
    assert not (tmp_path / "c.duckdb").exists()


def test_control_characters_are_made_visible():
    assert visible("\x1b[2J\x1b]0;pwned\x07 x") == "\\x1b[2J\\x1b]0;pwned\\x07 x"
    assert visible("caf\udce9.flac") == "caf\\xe9.flac"  # an undecodable byte, as the name holds it
    assert visible("a\u202eb\x9bc\nd") == "a\\u202eb\\x9bc\\x0ad"
    assert literal("[/bold] x").plain == "[/bold] x"  # a Text: never parsed as markup


SEED_TITLE = "Seed"
MARKUP_TITLE = "[/bold] x"
ESC_TITLE = "\x1b[2J\x1b]0;pwned\x07"
MARKUP_NAME = "[red] name.flac"
EVIL_NAME = "a\n#EXTINF:-1,evil\nC:\\Windows\\evil.exe\n.flac"


@pytest.fixture(scope="module")
def hostile_text_catalog(tmp_path_factory):
    """A catalog of three tracks (one analysis, three paths) whose tags and names are hostile text."""
    import numpy as np
    import soundfile as sf

    from tasks.catalog.store import open_catalog, store_results
    from tasks.constants import SR
    from tasks.features.analyze import analyze_file
    from tasks.similarity.index import refresh_similarity_index
    from tasks.synth.songs import SongSpec, render_song

    root = tmp_path_factory.mktemp("text")
    song = root / "song.flac"
    spec = SongSpec(bpm=120.0, tonic=0, mode="major", duration_s=8.0, style="house", timbre="saw", seed=9)
    sf.write(song, render_song(spec, sr=SR, stereo=True).T, SR)
    st = song.stat()
    base = analyze_file(str(song), st.st_size, st.st_mtime_ns)
    assert base["status"] == "analyzed", base["detail"]
    rows = []
    for i, (name, title) in enumerate([("seed.flac", SEED_TITLE), (MARKUP_NAME, MARKUP_TITLE), (EVIL_NAME, ESC_TITLE)]):
        emb = list(np.asarray(base["features"]["embedding"]) + 0.01 * i)
        rows.append(
            dict(
                base,
                path=f"/music/{name}",
                fingerprint=f"{i}-x",
                title=title,
                artist=f"artist {i}",
                features=dict(base["features"], embedding=emb),
            )
        )
    catalog = root / "catalog.duckdb"
    con = open_catalog(catalog)
    store_results(con, rows, "r")
    refresh_similarity_index(con)
    con.close()
    return catalog


@pytest.mark.parametrize("command", [["similar", SEED_TITLE], ["mix", SEED_TITLE, "--length", "3"]])
def test_hostile_titles_and_names_are_shown_literally(command, hostile_text_catalog, monkeypatch):
    from flows.cli.app import out

    monkeypatch.setattr(out, "_width", 300)  # restored to None (auto) afterwards
    result = runner.invoke(app, [*command, "--catalog", str(hostile_text_catalog)])
    assert result.exit_code == 0, result.output
    assert MARKUP_TITLE in result.output and MARKUP_NAME in result.output
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


@pytest.mark.parametrize("command", [["similar", SEED_TITLE], ["mix", SEED_TITLE, "--length", "3"]])
def test_m3u_has_one_entry_per_track(command, hostile_text_catalog, tmp_path):
    m3u = tmp_path / "set.m3u"
    result = runner.invoke(app, [*command, "--m3u", str(m3u), "--catalog", str(hostile_text_catalog)])
    assert result.exit_code == 0, result.output
    lines = m3u.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) % 2 == 1
    entries = lines[2::2]
    assert "/music/" + MARKUP_NAME in entries
    assert all(e.startswith("/music/") for e in entries) and all(x.startswith("#EXTINF:") for x in lines[1::2])
    assert not any("evil.exe" in line for line in lines)
    assert "skipped" in result.output


def test_rejects_show_names_literally(tmp_path, monkeypatch):
    from flows.cli.app import out
    from tasks.catalog.store import open_catalog, record_problems
    from tasks.vocabulary import Reason

    con = open_catalog(tmp_path / "c.duckdb")
    record_problems(con, [("/music/[red] \x1b[2Jx.flac", Reason.UNREADABLE, "[/bold] \x1b]0;pwned\x07")], "r")
    con.close()
    monkeypatch.setattr(out, "_width", 300)  # restored to None (auto) afterwards
    result = runner.invoke(app, ["rejects", "--catalog", str(tmp_path / "c.duckdb")])
    assert result.exit_code == 0, result.output
    assert "/music/[red] \\x1b[2Jx.flac" in result.output and "[/bold] \\x1b]0;pwned\\x07" in result.output
    assert "\x1b" not in result.output


def test_counted_says_one_track_and_two_playlists():
    assert (counted(1, "track"), counted(2, "playlist"), counted(0, "track")) == ("1 track", "2 playlists", "0 tracks")
