"""Similarity: ranking on synthesized song families, SQL = Python, filters, duplicates, mixes (the rules
themselves, without a catalog: ``test_rules.py``; the ``similar`` and ``mix`` commands: ``test_similar_cli.py``).

The catalog of song families is built without Prefect (``families.py``); ``tests/flows/test_notebooks.py`` runs
the notebooks on the same catalog.
"""

from __future__ import annotations

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
from tests.similarity.families import VARIANTS, originals

# ---------------------------------------------------------------- ranking on the families


def test_same_family_ranks_first(con, family_catalog):
    _, family = family_catalog
    precisions = {"cosine": [], "euclidean": []}
    for path in originals(family):
        for metric in precisions:
            top = similar_tracks(con, path, VARIANTS - 1, metric=metric)
            assert top.height == VARIANTS - 1
            assert (np.diff(top["distance"].to_numpy()) >= 0).all()
            precisions[metric].append(np.mean([family[p] == family[path] for p in top["path"]]))
    assert np.mean(precisions["cosine"]) >= 0.8, precisions
    assert np.mean(precisions["euclidean"]) >= 0.7, precisions


def test_sql_macro_agrees_with_python(con, family_catalog):
    _, family = family_catalog
    for path in originals(family)[::3]:
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
    for path in originals(family):
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
    seeds = [p for p in originals(family) if family[p] == 1][:2]
    top = similar_tracks(con, seeds, 2)
    assert not set(seeds) & set(top["path"])
    assert [family[p] for p in top["path"]] == [1, 1]


def test_resolve_query(con, family_catalog):
    _, family = family_catalog
    path = originals(family)[5]
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


def test_a_path_names_its_own_track_before_the_one_its_link_resolves_to(tmp_path):
    # Two libraries share a catalog; one holds a link to the other's file, and each path is a track. The link's
    # path named the other library's track (the lowest id among both), so `set` corrected the wrong one.
    import duckdb

    real = tmp_path / "lib1" / "x.flac"
    real.parent.mkdir()
    real.write_bytes(b"x")
    link = tmp_path / "lib2" / "link.flac"
    link.parent.mkdir()
    link.symlink_to(real)
    mem = duckdb.connect()
    mem.execute("CREATE TABLE tracks (track_id INTEGER, path VARCHAR, title VARCHAR, artist VARCHAR, status VARCHAR)")
    mem.execute(
        "INSERT INTO tracks VALUES (1, ?, 'x', NULL, 'analyzed'), (3, ?, 'x', NULL, 'analyzed')", [str(real), str(link)]
    )
    assert resolve_query(mem, str(link)) == [3]
    assert resolve_query(mem, str(real)) == [1]
    # Through a link to a folder, ".." is the parent of the folder it points to, not of the link.
    (tmp_path / "lib1" / "deep").mkdir()
    (tmp_path / "lib2" / "to_deep").symlink_to(tmp_path / "lib1" / "deep")
    (tmp_path / "lib2" / "x.flac").write_bytes(b"y")  # what the text ".." would name
    mem.execute("INSERT INTO tracks VALUES (4, ?, 'y', NULL, 'analyzed')", [str(tmp_path / "lib2" / "x.flac")])
    assert resolve_query(mem, str(tmp_path / "lib2" / "to_deep" / ".." / "x.flac")) == [1]
    # ... and a link after the last ".." is the link's own track, as it is without one.
    assert resolve_query(mem, str(tmp_path / "lib1" / "deep" / ".." / ".." / "lib2" / "link.flac")) == [3]
    mem.execute("DELETE FROM tracks WHERE track_id = 3")
    assert resolve_query(mem, str(link)) == [1]  # with no track of its own, the file it points to


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
    mix = build_mix(con, originals(family)[0], 3)
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
    gone = originals(family_catalog[1])[1]
    con.execute("UPDATE tracks SET status = 'missing' WHERE path = ?", [gone])
    info = refresh_similarity_index(con)
    assert not info["skipped"] and info["tracks"] == len(family_catalog[1]) - 1
    assert gone not in similar_tracks(con, originals(family_catalog[1])[0], 30)["path"].to_list()
    assert (
        con.execute(
            "SELECT count(*) FROM similar_tracks(?, 30) WHERE path = ?", [originals(family_catalog[1])[0], gone]
        ).fetchall()[0][0]
        == 0
    )
    con.close()


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


def test_similar_tracks_refuses_a_k_under_one_and_a_window_that_is_no_percentage(con):
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            similar_tracks(con, 1, k)
    for window in (-5.0, float("nan")):  # as the SQL macro refuses them (NaN matched no track)
        with pytest.raises(ValueError, match="bpm_window must be a number of at least 0"):
            similar_tracks(con, 1, 3, bpm_window=window)


def test_a_new_catalog_has_the_documented_similarity_tables_before_its_first_refresh(tmp_path):
    # A first run still under way (or killed before its refresh) published a catalog without similarity_stats:
    # the README's query on it failed with "Table ... does not exist".
    from tasks.catalog.store import open_catalog
    from tasks.similarity.index import IndexMissingError, index_is_current, load_index

    con = open_catalog(tmp_path / "new.duckdb")
    assert con.execute("SELECT group_weights::JSON->>'timbre' FROM similarity_stats").fetchall() == []
    assert con.execute("SELECT count(*) FROM similarity_index").fetchall() == [(0,)]
    assert not index_is_current(con)
    with pytest.raises(IndexMissingError):
        load_index(con)
    # A catalog made before the table came with every catalog, and stopped before its first refresh: the next
    # writer to open it adds the table.
    con.execute("DROP TABLE similarity_stats")
    con.close()
    con = open_catalog(tmp_path / "new.duckdb")
    assert con.execute("SELECT count(*) FROM similarity_stats").fetchall() == [(0,)]
    con.close()


def test_a_relative_path_is_read_from_the_folder_the_shell_is_in(tmp_path, monkeypatch):
    # In a folder reached through a link, the system's working folder is the link's target, while the catalog holds
    # the files under the link's path (the walk took it): "e.flac" named nothing. And a title query from a deleted
    # working folder failed with FileNotFoundError.
    import duckdb

    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "e.flac").write_bytes(b"e")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "dirlink").symlink_to(tmp_path / "ext")
    mem = duckdb.connect()
    mem.execute("CREATE TABLE tracks (track_id INTEGER, path VARCHAR, title VARCHAR, artist VARCHAR, status VARCHAR)")
    mem.execute(
        "INSERT INTO tracks VALUES (7, ?, 'AC/DC live', NULL, 'analyzed')",
        [str(tmp_path / "lib" / "dirlink" / "e.flac")],
    )
    monkeypatch.chdir(tmp_path / "lib" / "dirlink")
    monkeypatch.setenv("PWD", str(tmp_path / "lib" / "dirlink"))
    assert resolve_query(mem, "e.flac") == [7]
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert resolve_query(mem, "AC/DC") == [7]
