"""The ``similar`` and ``mix`` commands on the song families (``families.py``): JSON, M3U, ambiguous queries, and
why a result comes up short."""

from __future__ import annotations

import json
import shutil

import pytest

from tasks.similarity.index import refresh_similarity_index
from tests.similarity.families import originals


@pytest.fixture()
def cli():
    from typer.testing import CliRunner

    from flows.cli import app

    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def altered_copy(catalog, copy, *statements: str):
    """A copy of ``catalog`` at ``copy`` with ``statements`` run on it (as a writer would)."""
    from tasks.catalog.store import open_catalog

    shutil.copy(catalog, copy)
    con = open_catalog(copy)
    for sql in statements:
        con.execute(sql)
    con.close()
    return copy


def test_cli_similar_json_and_m3u(cli, family_catalog, tmp_path):
    catalog, family = family_catalog
    seed = originals(family)[4]
    res = cli("similar", seed, "-k", 3, "--json", "--catalog", catalog)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 3 and {"track_id", "path", "bpm", "key", "key_camelot", "distance"} <= set(rows[0])
    res = cli(
        "similar",
        seed,
        "-k",
        3,
        "--harmonic",
        "--bpm-window",
        6,
        "--metric",
        "euclidean",
        "--m3u",
        tmp_path / "sim.m3u",
        "--catalog",
        catalog,
    )
    assert res.exit_code == 0, res.output
    listed = [ln for ln in (tmp_path / "sim.m3u").read_text().splitlines() if not ln.startswith("#")]
    assert 1 <= len(listed) <= 3 and seed not in listed


def test_cli_ambiguous_and_mix(cli, family_catalog, tmp_path):
    catalog, family = family_catalog
    res = cli("similar", "family 2", "--catalog", catalog)
    assert res.exit_code == 2 and "family2_take3.flac" in res.output
    # One candidate a line, after the one that says what matched (not one line with escaped breaks).
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("error: ") and "tracks match 'family 2'" in lines[0]
    assert "\\x0a" not in res.output and any(ln.strip().endswith("family2_take3.flac)") for ln in lines[1:])
    seed = next(p for p in family if p.endswith("family3_take0.flac"))
    res = cli("mix", seed, "--length", 5, "--m3u", tmp_path / "mix.m3u", "--catalog", catalog)
    assert res.exit_code == 0, res.output
    listed = [ln for ln in (tmp_path / "mix.m3u").read_text().splitlines() if not ln.startswith("#")]
    assert listed[0] == seed and len(set(listed)) == len(listed) == 5
    res = cli("mix", seed, "--length", 3, "--json", "--catalog", catalog)
    assert [r["position"] for r in json.loads(res.stdout)] == [1, 2, 3]


def test_cli_says_why_a_mix_or_a_filtered_search_comes_up_short(cli, family_catalog, tmp_path):
    catalog, family = family_catalog
    n_tracks = len(family)
    seed = next(p for p in family if p.endswith("family3_take0.flac"))
    # Longer than the library: no window would help, the catalog is used up.
    res = cli("mix", seed, "--length", n_tracks + 5, "--no-harmonic", "--bpm-window", 1000, "--catalog", catalog)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "the catalog has no other track with a tempo to add" in text and "try a wider" not in text
    # A seed without a tempo: no tempo window can match it.
    aged = tmp_path / "aged.duckdb"
    shutil.copy(catalog, aged)
    from tasks.catalog.store import open_catalog

    con = open_catalog(aged)
    (track_id,) = con.execute("SELECT track_id FROM tracks WHERE path = ?", [seed]).fetchone()
    con.execute("UPDATE features SET bpm = NULL, tempo_reason = 'ARHYTHMIC' WHERE track_id = ?", [track_id])
    refresh_similarity_index(con, force=True)  # (the index signs what it was built from; a hand edit keeps that)
    con.close()
    res = cli("mix", seed, "--length", 5, "--no-harmonic", "--bpm-window", 1000, "--catalog", aged)
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "family3_take0.flac has no tempo, so no track follows it" in text, res.output
    res = cli("similar", seed, "--bpm-window", 6, "--catalog", aged)
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "no tempo, so --bpm-window matches no track" in text, res.output
    # From another seed, the track without a tempo is out of reach: the catalog is used up, whatever the window.
    other = next(p for p in family if p.endswith("family2_take0.flac"))
    res = cli("mix", other, "--length", n_tracks, "--no-harmonic", "--bpm-window", 1000, "--catalog", aged)
    text = " ".join(res.output.split())
    assert "the catalog has no other track with a tempo to add" in text and "try a wider" not in text, res.output


def test_similar_on_a_catalog_whose_first_run_has_not_refreshed_the_index_neither_waits_nor_writes(
    cli, family_catalog, tmp_path
):
    # A first run still under way (or killed) has stored analyses but no index yet: `similar` took the writer lock
    # to build it, so it waited out the run (exit 3) or, after a kill, rewrote the catalog.
    import hashlib

    catalog, family = family_catalog
    seed = originals(family)[4]
    unrefreshed = ("DELETE FROM similarity_stats", "DELETE FROM similarity_index")
    copy = altered_copy(catalog, tmp_path / "first-run.duckdb", *unrefreshed)

    def state():
        return hashlib.sha256(copy.read_bytes()).hexdigest(), copy.stat().st_mtime_ns, sorted(tmp_path.iterdir())

    before = state()
    expected = json.loads(cli("similar", seed, "-k", 5, "--json", "--catalog", catalog).stdout)
    res = cli("similar", seed, "-k", 5, "--json", "--catalog", copy)
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert [r["track_id"] for r in got] == [r["track_id"] for r in expected]
    assert [r["distance"] for r in got] == pytest.approx([r["distance"] for r in expected], abs=1e-6)
    assert cli("mix", seed, "--length", 4, "--catalog", copy).exit_code == 0
    assert state() == before


def test_similar_on_a_catalog_whose_every_embedding_is_unusable_is_one_line(cli, family_catalog, tmp_path):
    # An index with no usable vector (every embedding NaN) raised IndexError from the seed lookup.
    catalog, family = family_catalog
    copy = altered_copy(
        catalog,
        tmp_path / "nan.duckdb",
        "UPDATE features SET embedding = [CAST('nan' AS DOUBLE) for x in embedding]",
        "DELETE FROM similarity_stats",
    )
    res = cli("similar", originals(family)[0], "--catalog", copy)
    assert res.exit_code == 1 and "no similarity vector" in res.output and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
