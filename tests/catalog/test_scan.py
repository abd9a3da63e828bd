"""The walk, fingerprints and the diff against the catalog."""

import os
from pathlib import Path

import polars as pl

from tasks.audio.identity import fingerprint, path_to_text, text_to_path
from tasks.catalog.scan import plan_scan, required_version
from tasks.catalog.walk import walk_library
from tasks.constants import BPM_RANGE
from tasks.vocabulary import Reason


def touch(p: Path, data: bytes = b"x" * 1000) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_walk_finds_audio_ignores_rest_and_survives_links(tmp_path):
    touch(tmp_path / "a.flac")
    touch(tmp_path / "B.MP3")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "deep" / ("d" * 5) / "c.ogg")
    (tmp_path / "folder.mp3").mkdir()  # a directory named like audio
    touch(tmp_path / "folder.mp3" / "inner.wav")
    os.symlink(tmp_path, tmp_path / "deep" / "loop")  # a symlink loop
    os.symlink(tmp_path / "nowhere.flac", tmp_path / "dangling.flac")
    walk = walk_library(tmp_path)
    names = sorted(Path(p).name for p in walk.files["path"])
    assert names == ["B.MP3", "a.flac", "c.ogg", "inner.wav"]
    assert walk.n_ignored == 1
    assert [(Path(p).name, r) for p, r, _ in walk.problems] == [("dangling.flac", Reason.UNREADABLE)]


def test_undecodable_names_round_trip(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9 song.flac"
    with open(raw, "wb") as f:
        f.write(b"fLaC" + bytes(100))
    walk = walk_library(tmp_path)
    (text,) = walk.files["path"]
    text.encode("utf-8")  # storable
    assert os.path.exists(text_to_path(text))
    assert path_to_text("/plain/ünïcode.flac") == "/plain/ünïcode.flac"


def test_fingerprint_samples_and_changes(tmp_path):
    big = touch(tmp_path / "big.wav", os.urandom(1_000_000))
    same = touch(tmp_path / "copy.wav", big.read_bytes())
    assert fingerprint(big) == fingerprint(same)
    data = bytearray(big.read_bytes())
    data[0] ^= 1
    touch(tmp_path / "other.wav", bytes(data))
    assert fingerprint(tmp_path / "other.wav") != fingerprint(big)


def _known(rows):
    return pl.DataFrame(
        rows,
        schema={
            "track_id": pl.Int64,
            "path": pl.Utf8,
            "size_bytes": pl.Int64,
            "mtime_ns": pl.Int64,
            "fingerprint": pl.Utf8,
            "status": pl.Utf8,
            "analyzer_version": pl.Int64,
        },
        orient="row",
    )


def test_plan_classifies_every_case(tmp_path):
    inv = pl.DataFrame(
        {
            "path": ["/l/same", "/l/touched", "/l/new", "/l/moved_here", "/l/old_version", "/l/failed"],
            "size_bytes": [10, 10, 10, 77, 10, 10],
            "mtime_ns": [1, 2, 1, 5, 1, 1],
        }
    )
    known = _known(
        [
            (1, "/l/same", 10, 1, "f1", "analyzed", 2),
            (2, "/l/touched", 10, 1, "f2", "analyzed", 2),
            (3, "/l/was_here", 77, 1, "fp-moved", "analyzed", 2),
            (4, "/l/deleted", 11, 1, "f4", "analyzed", 2),
            (5, "/l/old_version", 10, 1, "f5", "analyzed", 1),
            (6, "/l/failed", 10, 1, "f6", "failed", None),
        ]
    )
    calls = []

    def fp(path, size):
        calls.append(path)
        return "fp-moved" if path == "/l/moved_here" else "fp-new"

    plan = plan_scan(inv, known, analyzer_version=2, fingerprint_fn=fp)
    assert plan.unchanged["path"].to_list() == ["/l/same"]
    assert plan.changed["path"].to_list() == ["/l/touched"]
    assert plan.new["path"].to_list() == ["/l/new"]
    assert plan.moved.select("path", "old_path", "track_id").rows() == [("/l/moved_here", "/l/was_here", 3)]
    assert plan.missing["track_id"].to_list() == [4]
    assert sorted(plan.outdated["path"].to_list()) == ["/l/failed", "/l/old_version"]
    assert sorted(plan.to_analyze["path"].to_list()) == ["/l/failed", "/l/new", "/l/old_version", "/l/touched"]
    # Only files a size match makes worth reading are fingerprinted: a changed one whose new size a known track has
    # (it may now hold that track's bytes) and an unknown one whose size a gone track had (a move).
    assert calls == ["/l/touched", "/l/moved_here"]
    assert plan.other_audio == []
    swapped = plan_scan(
        inv, known, analyzer_version=2, fingerprint_fn=lambda p, s: "f1" if p == "/l/touched" else fp(p, s)
    )
    assert swapped.other_audio == [(2, 1)]  # /l/touched now holds the bytes track 1 holds
    forced = plan_scan(inv, known, analyzer_version=2, force=True, fingerprint_fn=fp)
    assert forced.unchanged.height == 0


def test_a_file_still_holding_its_own_bytes_is_not_taken_for_another_tracks():
    """A touched file that has a byte-identical copy in the library holds its own bytes still (its corrections
    stay); a file retagged in place (its size kept, and no other track of that size) is not even read."""
    inv = pl.DataFrame({"path": ["/l/a", "/l/b", "/l/c"], "size_bytes": [10, 10, 20], "mtime_ns": [2, 1, 2]})
    known = _known(
        [
            (1, "/l/a", 10, 1, "X", "analyzed", 2),
            (2, "/l/b", 10, 1, "X", "analyzed", 2),  # a copy of /l/a
            (3, "/l/c", 20, 1, "Y", "analyzed", 2),
        ]
    )
    calls = []

    def fp(path, size):
        calls.append(path)
        return {"/l/a": "X", "/l/c": "Y2"}[path]

    plan = plan_scan(inv, known, analyzer_version=2, fingerprint_fn=fp)
    assert sorted(plan.changed["path"]) == ["/l/a", "/l/c"] and plan.other_audio == []
    assert calls == ["/l/a"]


def test_a_version_that_changes_only_other_ranges_leaves_default_range_rows_alone():
    """Version 18 changes only what a range other than the default gives: rows version 17 made at the default
    range are current, rows it made at another range and older rows are re-analysed."""
    assert required_version(18, at_default=True, arhythmic=True) == 17
    assert required_version(17, at_default=True, arhythmic=True) == 17
    assert required_version(18, at_default=False, arhythmic=True) == 18
    wide = (40.0, 250.0)
    cases = [("/l/v17_default", 17, BPM_RANGE), ("/l/v16_default", 16, BPM_RANGE), ("/l/v17_wide", 17, wide)]
    cases += [("/l/v18_wide", 18, wide), ("/l/v17_unknown", 17, (None, None))]
    inv = pl.DataFrame({"path": [c[0] for c in cases], "size_bytes": [10] * len(cases), "mtime_ns": [1] * len(cases)})
    known = pl.concat(
        [
            _known([(i, path, 10, 1, f"f{i}", "analyzed", version) for i, (path, version, _) in enumerate(cases)]),
            pl.DataFrame(
                [rng for *_, rng in cases],
                schema={"bpm_range_lo": pl.Float64, "bpm_range_hi": pl.Float64},
                orient="row",
            ),
        ],
        how="horizontal",
    )
    at_default = plan_scan(inv, known, analyzer_version=18, bpm_range=BPM_RANGE)
    assert at_default.unchanged["path"].to_list() == ["/l/v17_default"]
    assert sorted(at_default.outdated["path"]) == ["/l/v16_default", "/l/v17_unknown", "/l/v17_wide", "/l/v18_wide"]
    at_wide = plan_scan(inv, known, analyzer_version=18, bpm_range=wide)
    assert at_wide.unchanged["path"].to_list() == ["/l/v18_wide"]
    # Without ranges to compare (bpm_range None, no range columns), every row older than the version is redone.
    bare = plan_scan(inv, _known([(0, "/l/v17_default", 10, 1, "f0", "analyzed", 17)]), analyzer_version=18)
    assert bare.outdated["path"].to_list() == ["/l/v17_default"]


def test_a_version_that_changes_only_arhythmic_tracks_leaves_the_others_alone():
    """Version 20 changes only what a track given no tempo as ARHYTHMIC gets: rows version 19 made with a tempo,
    or with another reason for none, are current; its ARHYTHMIC rows and older rows are re-analysed, at any
    range; a row whose reason is not known is re-analysed too."""
    assert required_version(20, at_default=True, arhythmic=False) == 19
    assert required_version(20, at_default=False, arhythmic=False) == 19
    assert required_version(20, at_default=True, arhythmic=True) == 20
    # Both narrowings at once: at the default range, 18 reaches no row and 20 only ARHYTHMIC ones.
    assert required_version(18, at_default=True, arhythmic=False) == 17
    wide = (40.0, 250.0)
    cases = [
        ("/l/v19_tempo", 19, None, BPM_RANGE),
        ("/l/v19_silent", 19, "SILENT", BPM_RANGE),
        ("/l/v19_arhythmic", 19, "ARHYTHMIC", BPM_RANGE),
        ("/l/v18_tempo", 18, None, BPM_RANGE),
        ("/l/v19_wide_tempo", 19, None, wide),
        ("/l/v19_wide_arhythmic", 19, "ARHYTHMIC", wide),
        ("/l/v20_arhythmic", 20, "ARHYTHMIC", BPM_RANGE),
    ]
    inv = pl.DataFrame({"path": [c[0] for c in cases], "size_bytes": [10] * len(cases), "mtime_ns": [1] * len(cases)})
    known = pl.concat(
        [
            _known([(i, path, 10, 1, f"f{i}", "analyzed", version) for i, (path, version, *_) in enumerate(cases)]),
            pl.DataFrame(
                [(*rng, reason) for _, _, reason, rng in cases],
                schema={"bpm_range_lo": pl.Float64, "bpm_range_hi": pl.Float64, "tempo_reason": pl.Utf8},
                orient="row",
            ),
        ],
        how="horizontal",
    )
    plan = plan_scan(inv, known, analyzer_version=20, bpm_range=BPM_RANGE)
    assert sorted(plan.unchanged["path"]) == ["/l/v19_silent", "/l/v19_tempo", "/l/v20_arhythmic"]
    assert sorted(plan.outdated["path"]) == [
        "/l/v18_tempo",
        "/l/v19_arhythmic",
        "/l/v19_wide_arhythmic",
        "/l/v19_wide_tempo",  # made at another range than the run's
    ]
    at_wide = plan_scan(inv, known, analyzer_version=20, bpm_range=wide)
    assert "/l/v19_wide_tempo" in at_wide.unchanged["path"].to_list()
    assert "/l/v19_wide_arhythmic" in at_wide.outdated["path"].to_list()
    # Without reasons to tell (no tempo_reason column), version 20 reaches every row.
    bare = plan_scan(inv, known.drop("tempo_reason"), analyzer_version=20, bpm_range=BPM_RANGE)
    assert sorted(bare.unchanged["path"]) == ["/l/v20_arhythmic"]


def test_plan_batches():
    inv = pl.DataFrame(
        {
            "path": [f"/l/{i}" for i in range(10)],
            "size_bytes": [(7 * i) % 10 + 1 for i in range(10)],
            "mtime_ns": [1] * 10,
        }
    )
    plan = plan_scan(inv, _known([]), analyzer_version=1)
    assert [len(b) for b in plan.batches(4)] == [4, 4, 2]
    sizes = [item["size_bytes"] for batch in plan.batches(4) for item in batch]
    assert sizes == sorted(sizes, reverse=True)  # largest first: the run ends on short files
    assert set(plan.batches(4)[0][0]) == {"path", "size_bytes", "mtime_ns", "track_id"}


def test_a_name_spelling_backslash_xe9_and_one_with_the_byte_stay_two_files(tmp_path):
    """``caf\\xe9.wav`` (four characters) and ``caf<0xE9>.wav`` (one byte): two paths, each analysed from itself."""
    import numpy as np
    import soundfile as sf

    from tasks.catalog.store import known_tracks, open_catalog, store_results
    from tasks.constants import ANALYZER_VERSION
    from tasks.features.analyze import analyze_file

    spelled = tmp_path / "caf\\xe9.wav"
    byte = os.fsencode(str(tmp_path)) + b"/caf\xe9.wav"
    tone = np.sin(np.arange(22050 * 3) / 10).astype(np.float32) * 0.3
    sf.write(spelled, tone[: 22050 * 2], 22050)  # 2 s
    sf.write(tmp_path / "tmp.wav", tone, 22050)  # 3 s
    os.rename(tmp_path / "tmp.wav", byte)
    walk = walk_library(tmp_path)
    assert walk.files.height == 2 and walk.files["path"].n_unique() == 2
    assert sorted(os.fsencode(text_to_path(p)) for p in walk.files["path"]) == sorted([os.fsencode(spelled), byte])
    con = open_catalog(tmp_path / "c.duckdb")
    plan = plan_scan(walk.files, known_tracks(con), analyzer_version=ANALYZER_VERSION)
    results = [analyze_file(r["path"], r["size_bytes"], r["mtime_ns"]) for r in plan.to_analyze.to_dicts()]
    store_results(con, results, "r")
    rows = dict(con.execute("SELECT path, round(duration_s) FROM tracks WHERE status = 'analyzed'").fetchall())
    assert rows == {path_to_text(str(spelled)): 2.0, path_to_text(os.fsdecode(byte)): 3.0}
    again = plan_scan(walk_library(tmp_path).files, known_tracks(con), analyzer_version=ANALYZER_VERSION)
    assert again.to_analyze.height == 0 and again.unchanged.height == 2  # never STALE, never re-analysed
    con.close()


def test_version_6_path_texts_are_reencoded(tmp_path):
    from tasks.catalog.migrations import SCHEMA_VERSION
    from tasks.catalog.store import open_catalog

    spelled = tmp_path / "caf\\xe9.flac"  # exists: its backslash was literal
    spelled.write_bytes(b"x")
    gone_byte = str(tmp_path / "gone\\xe9.flac")  # does not exist: the old text's escape was a byte
    con = open_catalog(tmp_path / "c.duckdb")
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (6)")
    for i, p in enumerate([str(spelled), gone_byte, "/plain/ünï.flac"], 1):
        con.execute(
            "INSERT INTO tracks (track_id, path, size_bytes, mtime_ns, fingerprint, status, first_seen, last_seen) "
            "VALUES (?, ?, 1, 1, 'f', 'missing', now(), now())",
            [i, p],
        )
    con.close()
    con = open_catalog(tmp_path / "c.duckdb")
    paths = [p for (p,) in con.execute("SELECT path FROM tracks ORDER BY track_id").fetchall()]
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    con.close()
    assert paths == [
        path_to_text(str(spelled)),
        path_to_text(os.fsdecode(str(tmp_path).encode() + b"/gone\xe9.flac")),
        "/plain/ünï.flac",
    ]
    assert text_to_path(paths[0]) == str(spelled)
