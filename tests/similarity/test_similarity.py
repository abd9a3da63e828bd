"""Similarity: ranking on synthesized song families, SQL = Python, filters, duplicates, mixes, CLI outputs
(the rules themselves, without a catalog: ``test_rules.py``).

The catalog fixture is built without Prefect: songs rendered by ``tasks.synth.songs``, analysed by
``tasks.features.analyze.analyze_file``, stored by ``tasks.catalog.store.store_results``, indexed by
``refresh_similarity_index``. ``tests/test_notebooks.py`` runs the notebooks on the same catalog.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tasks.similarity.index import GROUP_WEIGHTS, refresh_similarity_index
from tasks.similarity.mix import build_mix, write_m3u
from tasks.similarity.query import AmbiguousQueryError, TrackNotFoundError, resolve_query
from tasks.similarity.rules import camelot_compatible, tempo_compatible
from tasks.similarity.search import similar_tracks
from tasks.synth.songs import SongSpec

#: Four families: each fixes style, instrumentation, tempo and key; members differ by seed (progression,
#: melody, drum kit, reverb) and some by noise. Family 3 shares family 0's key and is within 6 % of its
#: tempo (120 vs 124 BPM) but sounds different, so a mix can walk from one to the other.
FAMILIES: dict[int, dict] = {
    0: dict(style="house", timbre="saw", bpm=124.0, tonic=9, mode="minor"),
    1: dict(style="hiphop", timbre="piano-ish", bpm=92.0, tonic=0, mode="major"),
    2: dict(style="dnb", timbre="square", bpm=172.0, tonic=5, mode="minor"),
    3: dict(style="funk", timbre="pluck", bpm=120.0, tonic=9, mode="minor"),
}
VARIANTS = 4
DURATION_S = 20.0

_BUILT: dict[str, tuple[Path, dict[str, int]]] = {}


def _render_and_analyse(job: tuple[str, SongSpec, str, str]) -> dict:
    from tasks.constants import SR
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio
    from tasks.synth.songs import render_song

    path, spec, title, artist = job
    if not os.path.exists(path):
        write_audio(path, render_song(spec, sr=SR), SR, title=title, artist=artist, bpm=spec.bpm, key=spec.key)
    st_ = os.stat(path)
    return analyze_file(path, st_.st_size, st_.st_mtime_ns)


def build_family_catalog(root: Path) -> tuple[Path, dict[str, int]]:
    """Render, analyse, store and index the families (plus two duplicates); returns (catalog, path -> family).

    Built once per test session, whichever module asks first (about 0.5 s of CPU per song).
    """
    if "catalog" in _BUILT:
        return _BUILT["catalog"]
    from tasks.catalog.store import open_catalog, store_results

    lib = root / "library"
    (lib / "copies").mkdir(parents=True, exist_ok=True)
    family: dict[str, int] = {}
    jobs = []
    for f, params in FAMILIES.items():
        for v in range(VARIANTS):
            spec = SongSpec(duration_s=DURATION_S, seed=100 * f + v, noise_db=30.0 if v == 3 else None, **params)
            path = str(lib / f"family{f}_take{v}.flac")
            jobs.append((path, spec, f"Take {v} of family {f}", f"Family {f}"))
            family[path] = f
    # Duplicates of family0_take0: the same audio tagged with the same title/artist up to case and
    # spaces (other bytes, so another fingerprint), and (written below, once the original exists) a
    # byte copy (same fingerprint).
    reencode = str(lib / "copies" / "family0_take0 (retagged).flac")
    jobs.append((reencode, jobs[0][1], " take 0 of Family 0", "FAMILY 0 "))
    family[reencode] = 0
    results = [_render_and_analyse(job) for job in jobs]
    copy = str(lib / "copies" / "family0_take0 (copy).flac")
    shutil.copy(jobs[0][0], copy)
    results.append(_render_and_analyse((copy, jobs[0][1], "", "")))
    family[copy] = 0
    assert all(r["status"] == "analyzed" for r in results), [(r["path"], r["detail"]) for r in results]
    catalog = root / "catalog.duckdb"
    con = open_catalog(catalog)
    store_results(con, results, "test-similarity")
    refresh_similarity_index(con)
    con.close()
    _BUILT["catalog"] = (catalog, family)
    return _BUILT["catalog"]


@pytest.fixture(scope="session")
def family_catalog(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    return build_family_catalog(tmp_path_factory.mktemp("similarity"))


@pytest.fixture()
def con(family_catalog):
    from tasks.catalog.store import open_catalog

    c = open_catalog(family_catalog[0], read_only=True)
    yield c
    c.close()


def _originals(family: dict[str, int]) -> list[str]:
    return [p for p in family if "copies" not in p]


# ---------------------------------------------------------------- ranking on the families


def test_same_family_ranks_first(con, family_catalog):
    _, family = family_catalog
    precisions = {"cosine": [], "euclidean": []}
    for path in _originals(family):
        for metric in precisions:
            top = similar_tracks(con, path, VARIANTS - 1, metric=metric)
            assert top.height == VARIANTS - 1
            assert (np.diff(top["distance"].to_numpy()) >= 0).all()
            precisions[metric].append(np.mean([family[p] == family[path] for p in top["path"]]))
    assert np.mean(precisions["cosine"]) >= 0.8, precisions
    assert np.mean(precisions["euclidean"]) >= 0.7, precisions


def test_sql_macro_agrees_with_python(con, family_catalog):
    _, family = family_catalog
    for path in _originals(family)[::3]:
        tid = resolve_query(con, path)[0]
        for metric, window, harmonic in (
            ("cosine", None, False),
            ("euclidean", None, False),
            ("cosine", 6.0, True),
            ("euclidean", 10.0, False),
        ):
            py = similar_tracks(con, path, 6, metric=metric, bpm_window=window, harmonic=harmonic)
            for q in (path, str(tid)):
                sql = con.execute(
                    "SELECT track_id, distance FROM similar_tracks(?, 6, ?, ?, ?)", [q, metric, window, harmonic]
                ).fetchall()
                assert [r[0] for r in sql] == py["track_id"].to_list(), (path, metric, window, harmonic)
                assert np.allclose([r[1] for r in sql], py["distance"].to_numpy(), atol=2e-5)


def test_filters_hold_and_are_exact(con, family_catalog):
    _, family = family_catalog
    everything = con.execute("""SELECT t.path, f.bpm, f.key_camelot FROM tracks t JOIN features f USING (track_id)
                                WHERE t.status = 'analyzed'""").fetchall()
    info = {p: (b, c) for p, b, c in everything}
    for path in _originals(family):
        bpm, cam = info[path]
        full = similar_tracks(con, path, 100)
        for window, harmonic in ((6.0, False), (None, True), (4.0, True), (40.0, False)):
            got = similar_tracks(con, path, 5, bpm_window=window, harmonic=harmonic)
            for r in got.iter_rows(named=True):
                assert window is None or tempo_compatible(bpm, r["bpm"], window)
                assert not harmonic or camelot_compatible(cam, r["key_camelot"])
            # The filtered answer is the unfiltered ranking with the incompatible tracks taken out.
            expected = [
                p
                for p in full["path"]
                if (window is None or tempo_compatible(bpm, info[p][0], window))
                and (not harmonic or camelot_compatible(cam, info[p][1]))
            ][:5]
            assert got["path"].to_list() == expected


def test_seed_and_duplicates_excluded(con, family_catalog):
    _, family = family_catalog
    seed = next(p for p in family if p.endswith("family0_take0.flac"))
    copies = {p for p in family if "copies" in p}
    default = similar_tracks(con, seed, 10)
    assert seed not in default["path"].to_list()
    assert not copies & set(default["path"])
    kept = similar_tracks(con, seed, 3, exclude_duplicates=False)
    assert set(kept["path"][:2]) == copies  # identical audio: distance about 0
    assert kept["distance"][0] == pytest.approx(0.0, abs=1e-6)


def test_multi_seed_centroid(con, family_catalog):
    _, family = family_catalog
    seeds = [p for p in _originals(family) if family[p] == 1][:2]
    top = similar_tracks(con, seeds, 2)
    assert not set(seeds) & set(top["path"])
    assert [family[p] for p in top["path"]] == [1, 1]


def test_resolve_query(con, family_catalog):
    _, family = family_catalog
    path = _originals(family)[5]
    tid = resolve_query(con, path)[0]
    assert resolve_query(con, tid) == [tid] and resolve_query(con, f"id:{tid}") == [tid]
    # A bare number is the track id unless a title, artist or file name contains it too: then it is listed.
    with pytest.raises(AmbiguousQueryError) as err:
        resolve_query(con, "3")
    assert "id:3" in str(err.value) and err.value.candidates["track_id"][0] == 3
    assert err.value.candidates.height > 1 and "family3_take0.flac" in str(err.value)
    unmatched = con.execute("SELECT max(track_id) FROM tracks").fetchall()[0][0]
    if not [p for p in family if str(unmatched) in Path(p).name]:
        assert resolve_query(con, str(unmatched)) == [unmatched]
    assert resolve_query(con, "take 1 of FAMILY 2") == resolve_query(con, str(Path(path).parent / "family2_take1.flac"))
    with pytest.raises(AmbiguousQueryError) as err:
        resolve_query(con, "family 3")
    assert err.value.candidates.height == VARIANTS and "family3_take0.flac" in str(err.value)
    with pytest.raises(TrackNotFoundError):
        resolve_query(con, "no such song anywhere")


def test_a_bare_number_lists_file_names_that_contain_it_beside_titles():
    import duckdb

    mem = duckdb.connect()
    mem.execute(
        "CREATE TABLE tracks (track_id INTEGER, path VARCHAR, title VARCHAR, artist VARCHAR, status VARCHAR, "
        "reason VARCHAR)"
    )
    mem.execute(
        "INSERT INTO tracks VALUES (1, '/m/a.flac', 'song 31', NULL, 'analyzed', NULL), "
        "(2, '/m/ogg track 110.ogg', 'other', NULL, 'analyzed', NULL), "
        "(3, '/m/b.flac', 'none', NULL, 'analyzed', NULL), (4, '/m/c.mp3', 'x', NULL, 'analyzed', NULL), "
        "(5, '/m/garbage.mp3', NULL, NULL, 'rejected', 'NOT_AUDIO')"
    )
    # The title of track 1 contains "1" (it is track 1 itself), and so does the file name of track 2: a title
    # match used to hide the file-name match, and "1" was taken for track 1 without a word.
    with pytest.raises(AmbiguousQueryError) as err:
        resolve_query(mem, "1")
    assert err.value.candidates["track_id"].to_list() == [1, 2]
    assert resolve_query(mem, "2") == [2]  # no title or file name contains "2"
    with pytest.raises(AmbiguousQueryError) as err:
        resolve_query(mem, "3")
    assert sorted(err.value.candidates["track_id"]) == [1, 3]  # "song 31"; not c.mp3 for the 3 of its extension
    with pytest.raises(TrackNotFoundError, match=r"track 5 is rejected \(NOT_AUDIO\); `cratedig rejects` says why"):
        resolve_query(mem, "garbage")  # says why, as the path of a rejected track does
    mem.execute("UPDATE tracks SET status = 'missing', reason = NULL WHERE track_id = 5")
    with pytest.raises(TrackNotFoundError, match=r"track 5's file is missing \(moved or deleted") as err:
        resolve_query(mem, "garbage")  # `rejects` lists no missing track: not sent there, no "(None)"
    assert "None" not in str(err.value) and "rejects" not in str(err.value)


def test_mix_chains_compatible_tracks(con, family_catalog):
    _, family = family_catalog
    seed = next(p for p in family if p.endswith("family0_take1.flac"))
    mix = build_mix(con, seed, 12, bpm_window=6.0, harmonic=True)
    assert mix["path"][0] == seed and mix["position"].to_list() == list(range(1, mix.height + 1))
    assert mix.height >= 3 and mix["track_id"].n_unique() == mix.height
    assert sum("family0_take0" in p for p in mix["path"]) <= 1  # never a duplicate of a played track
    rows = mix.to_dicts()
    for a, b in zip(rows, rows[1:]):
        assert tempo_compatible(a["bpm"], b["bpm"], 6.0) and camelot_compatible(a["key_camelot"], b["key_camelot"])
    assert [family[p] for p in mix["path"][:2]] == [0, 0]  # its own family first: nearest and compatible
    # It stopped early only because no unplayed, non-duplicate, compatible track was left.
    catalog = con.execute("""SELECT t.path, t.fingerprint, lower(trim(t.title)) || '/' || lower(trim(t.artist)),
                                    f.bpm, f.key_camelot FROM tracks t JOIN features f USING (track_id)""").fetchall()
    played = {r[0] for r in catalog if r[0] in set(mix["path"])}
    seen = {v for r in catalog if r[0] in played for v in r[1:3] if v is not None}
    last = rows[-1]
    left = [
        r[0]
        for r in catalog
        if r[0] not in played
        and not {r[1], r[2]} & seen
        and tempo_compatible(last["bpm"], r[3], 6.0)
        and camelot_compatible(last["key_camelot"], r[4])
    ]
    assert mix.height == 12 or not left


def test_write_m3u(tmp_path, con, family_catalog):
    _, family = family_catalog
    mix = build_mix(con, _originals(family)[0], 3)
    out = write_m3u(mix, tmp_path / "set.m3u8")
    assert (out.written, out.skipped) == (3, ())
    lines = out.path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and lines[2::2] == mix["path"].to_list()
    assert lines[1].startswith(f"#EXTINF:{round(mix['duration_s'][0])},Family 0 - Take 0 of family 0")


def test_index_follows_the_catalog(family_catalog, tmp_path):
    from tasks.catalog.store import open_catalog

    shutil.copy(family_catalog[0], tmp_path / "catalog.duckdb")
    con = open_catalog(tmp_path / "catalog.duckdb")
    emb = np.array([e for (e,) in con.execute("SELECT embedding FROM features ORDER BY track_id").fetchall()])
    mean, std = con.execute("SELECT mean, std FROM similarity_stats").fetchall()[0]
    assert np.allclose(mean, emb.mean(axis=0), atol=1e-6) and np.allclose(std, emb.std(axis=0), atol=1e-6)
    # the group weights are JSON, readable from SQL
    timbre = con.execute("SELECT (group_weights::JSON->>'timbre')::DOUBLE FROM similarity_stats").fetchall()[0][0]
    assert timbre == GROUP_WEIGHTS["timbre"]
    assert refresh_similarity_index(con)["skipped"]
    gone = _originals(family_catalog[1])[1]
    con.execute("UPDATE tracks SET status = 'missing' WHERE path = ?", [gone])
    info = refresh_similarity_index(con)
    assert not info["skipped"] and info["tracks"] == len(family_catalog[1]) - 1
    assert gone not in similar_tracks(con, _originals(family_catalog[1])[0], 30)["path"].to_list()
    assert (
        con.execute(
            "SELECT count(*) FROM similar_tracks(?, 30) WHERE path = ?", [_originals(family_catalog[1])[0], gone]
        ).fetchall()[0][0]
        == 0
    )
    con.close()


# ---------------------------------------------------------------- command line


@pytest.fixture()
def cli():
    from typer.testing import CliRunner

    from flows.cli import app

    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def test_cli_similar_json_and_m3u(cli, family_catalog, tmp_path):
    catalog, family = family_catalog
    seed = _originals(family)[4]
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


def test_a_path_with_bytes_that_are_not_utf8_finds_its_track(tmp_path):
    # The shell hands such a name to Python as lone surrogates (os.fsdecode), which DuckDB cannot take.
    from tasks.audio.identity import path_to_text
    from tasks.catalog.store import open_catalog, store_results
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio
    from tasks.synth.songs import render_song

    typed = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.flac")
    song = render_song(SongSpec(bpm=120.0, tonic=0, mode="major", duration_s=8.0, seed=3), sr=22050)
    os.rename(write_audio(tmp_path / "cafe.flac", song, 22050), typed)  # (soundfile cannot open such a name)
    con = open_catalog(tmp_path / "c.duckdb")
    stored = path_to_text(typed)  # as the scan hands it on
    store_results(con, [analyze_file(stored, Path(typed).stat().st_size, Path(typed).stat().st_mtime_ns)], "r1")
    assert resolve_query(con, typed) == [1] and resolve_query(con, Path(typed)) == [1]
    assert resolve_query(con, "caf") == [1]  # and by part of its name
    with pytest.raises(TrackNotFoundError):
        resolve_query(con, os.fsdecode(b"/nowhere/na\xefve.flac"))
    con.close()


def test_similar_tracks_refuses_a_k_under_one(con):
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            similar_tracks(con, 1, k)
