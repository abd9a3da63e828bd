"""A hostile library: every broken, odd or dangerous entry is accounted for, and the run completes."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf

from tasks.catalog.store import open_catalog, store_results
from tasks.constants import SR
from tasks.features.analyze import analyze_file
from tasks.features.workers import AnalysisOptions, AnalysisPool
from tasks.synth.songs import SongSpec, render_song
from tests.flows import crashing

SONG = SongSpec(bpm=120.0, tonic=0, mode="major", duration_s=8.0, style="house", timbre="saw", seed=9)


def _song(sr: int = SR, channels: int = 2) -> np.ndarray:
    y = render_song(SONG, sr=sr, stereo=True).T
    return np.tile(y, (1, channels // 2)) if channels > 2 else y


def one_hz_wav(path: Path) -> None:
    """20 KB of 16-bit samples at a sample rate of 1 Hz: a header that announces a 2.8-hour track."""
    sf.write(path, np.zeros(10000, np.int16), 1, subtype="PCM_16")


def wide_sparse_wav(path: Path, channels: int = 1024, seconds: float = 140.0, sr: int = 8000) -> None:
    """A ``channels``-channel 16-bit WAV whose data chunk is a hole: a few KB on disk, 2.3 GB of samples."""
    sf.write(path, np.zeros((16, channels), np.int16), sr, subtype="PCM_16")
    raw = path.read_bytes()
    at = raw.index(b"data")
    size = int(seconds * sr) * channels * 2
    with open(path, "wb") as f:
        f.write(raw[:4] + struct.pack("<I", at + size) + raw[8:at] + b"data" + struct.pack("<I", size))
        f.truncate(at + 8 + size)


def build_hostile_library(root: Path) -> dict[str, tuple[str, str | None]]:
    """Write the hostile library; return relative name → (expected status, expected reason or flag)."""
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, tuple[str, str | None]] = {}
    good = _song()
    sf.write(root / "good.flac", good, SR)
    expect["good.flac"] = ("analyzed", None)
    (root / "empty.mp3").write_bytes(b"")
    expect["empty.mp3"] = ("rejected", "EMPTY")
    data = (root / "good.flac").read_bytes()
    (root / "truncated.flac").write_bytes(data[: len(data) // 3])
    expect["truncated.flac"] = ("rejected", "TRUNCATED")
    sf.write(root / "header_only.wav", good, SR)
    (root / "header_only.wav").write_bytes((root / "header_only.wav").read_bytes()[:44])
    expect["header_only.wav"] = ("rejected", "TRUNCATED|DECODE_ERROR")
    (root / "random.mp3").write_bytes(np.random.default_rng(1).bytes(200_000))
    expect["random.mp3"] = ("rejected", "NOT_AUDIO")
    (root / "page.flac").write_text("<html><head><title>Download</title></head><body>mirror</body></html>" * 30)
    expect["page.flac"] = ("rejected", "NOT_AUDIO")
    (root / "program.ogg").write_bytes(Path("/bin/ls").read_bytes())
    expect["program.ogg"] = ("rejected", "NOT_AUDIO")
    sf.write(root / "flipped.ogg", good, SR, format="OGG", subtype="VORBIS")
    raw = bytearray((root / "flipped.ogg").read_bytes())
    rng = np.random.default_rng(2)
    for i in rng.integers(len(raw) // 4, len(raw), 40):
        raw[i] ^= 0xFF
    (root / "flipped.ogg").write_bytes(bytes(raw))
    expect["flipped.ogg"] = ("analyzed|rejected", "DECODE_ERROR|TRUNCATED|None")
    nan = good.copy()
    nan[1000:1100] = np.nan
    nan[5000] = np.inf
    sf.write(root / "nan_inf.wav", nan, SR, subtype="FLOAT")
    expect["nan_inf.wav"] = ("analyzed", "NON_FINITE")
    sf.write(root / "silence.flac", np.zeros((SR * 10, 2), np.float32), SR)
    expect["silence.flac"] = ("analyzed", "SILENT")
    sf.write(root / "one_sample.wav", np.zeros((1, 1), np.float32), SR)
    expect["one_sample.wav"] = ("rejected", "TOO_SHORT")
    sf.write(root / "surround_96k_24bit.wav", _song(96000, 6), 96000, subtype="PCM_24")
    expect["surround_96k_24bit.wav"] = ("analyzed", None)
    sf.write(root / "phone_8k.mp3", _song(8000)[:, 0], 8000, format="MP3")
    expect["phone_8k.mp3"] = ("analyzed", None)
    sf.write(root / "ünïcødé ♫ song.flac", good, SR)
    expect["ünïcødé ♫ song.flac"] = ("analyzed", None)
    sf.write(root / "new\nline.flac", good, SR)
    expect["new\nline.flac"] = ("analyzed", None)
    sf.write(root / "latin1.flac", good, SR)
    os.rename(root / "latin1.flac", os.fsencode(str(root)) + b"/caf\xe9.flac")
    expect["caf\\xe9.flac"] = ("analyzed", None)  # stored with the byte escaped
    deep = root.joinpath(*[f"d{i}" for i in range(40)])
    deep.mkdir(parents=True)
    sf.write(deep / "deep.flac", good, SR)
    expect[str((deep / "deep.flac").relative_to(root))] = ("analyzed", None)
    os.symlink(root, deep / "loop")
    os.symlink(root / "nowhere.flac", root / "dangling.flac")
    expect["dangling.flac"] = ("rejected", "UNREADABLE")
    (root / "folder.wav").mkdir()
    with open(root / "sparse_6gb.wav", "wb") as f:
        f.truncate(6 * 1024**3)
    expect["sparse_6gb.wav"] = ("rejected", "TOO_LARGE")
    one_hz_wav(root / "one_hz.wav")
    expect["one_hz.wav"] = ("rejected", "UNSUPPORTED_FORMAT")
    wide_sparse_wav(root / "wide_1024ch.wav")
    expect["wide_1024ch.wav"] = ("rejected", "UNSUPPORTED_FORMAT")
    (root / "notes.txt").write_text("not audio, ignored")
    return expect


def _matches(value: str | None, pattern: str | None) -> bool:
    return pattern is None or str(value) in pattern.split("|")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "library"
    return root, build_hostile_library(root)


@pytest.mark.slow
def test_every_hostile_entry_is_accounted_for(hostile, prefect_harness, tmp_path):
    from flows.analyze import analyze_library

    root, expect = hostile
    catalog = tmp_path / "catalog.duckdb"
    summary = analyze_library(str(root), catalog_path=str(catalog), workers=2, batch_size=3)
    assert summary["ignored"] == 1
    con = duckdb.connect(str(catalog), read_only=True)
    tracks = {
        r[0]: r[1:]
        for r in con.execute(
            'SELECT t.path, t.status, t.reason, f.flags, f.bpm, f."key" FROM tracks t '
            "LEFT JOIN features f USING (track_id)"
        ).fetchall()
    }
    rejects = dict(con.execute("SELECT path, reason FROM rejects").fetchall())
    con.close()
    prefix = str(root) + "/"
    seen = {p.removeprefix(prefix) for p in tracks} | {p.removeprefix(prefix) for p in rejects}
    assert seen == set(expect)
    for name, (status, detail) in expect.items():
        path = prefix + name
        if path not in tracks:  # walk problems are rejects without a track row
            assert status == "rejected" and _matches(rejects[path], detail), name
            continue
        got_status, reason, flags, bpm, key = tracks[path]
        assert got_status in status.split("|"), (name, got_status, reason)
        if got_status == "rejected":
            assert _matches(reason, detail), (name, reason)
            assert rejects[path] == reason
        elif detail in ("SILENT", "NON_FINITE"):
            assert detail in flags, (name, flags)
    silent = tracks[prefix + "silence.flac"]
    assert silent[3] is None and silent[4] is None  # silence: null tempo and key, not numbers


def test_stale_file_is_not_stored_with_wrong_features(tmp_path):
    p = tmp_path / "song.flac"
    sf.write(p, _song(), SR)
    st = p.stat()
    result = analyze_file(str(p), st.st_size, st.st_mtime_ns - 1)  # the file changed after the walk
    assert (result["status"], result["reason"], result["features"]) == ("failed", "STALE", None)


def test_timeout_fails_only_that_file(tmp_path):
    p = tmp_path / "song.flac"
    sf.write(p, _song(), SR)
    st = p.stat()
    item = {"path": str(p), "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "track_id": None}
    with AnalysisPool(1, AnalysisOptions(timeout_s=0.001)) as pool:
        (result,) = pool.analyze_batch([item])
    assert (result["status"], result["reason"]) == ("failed", "TIMEOUT")


def test_worker_crash_fails_only_the_culprit(tmp_path):
    items = []
    for name in ("a.flac", "crash_me.flac", "c.flac"):
        sf.write(tmp_path / name, _song()[: SR * 3], SR)
        st = (tmp_path / name).stat()
        items.append(
            {"path": str(tmp_path / name), "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "track_id": None}
        )
    with AnalysisPool(2, analyze=crashing.analyze_or_crash) as pool:  # the worker SIGKILLs itself on crash_me
        results = pool.analyze_batch(items)
        again = pool.analyze_batch(items[:1])  # the pool recovers for later batches
    assert [(r["status"], r["reason"]) for r in results] == [
        ("analyzed", None),
        ("failed", "WORKER_CRASH"),
        ("analyzed", None),
    ]
    assert again[0]["status"] == "analyzed"


def test_bad_rows_never_reach_the_catalog(tmp_path):
    p = tmp_path / "song.flac"
    sf.write(p, _song(), SR)
    st = p.stat()
    good = analyze_file(str(p), st.st_size, st.st_mtime_ns)
    bad = dict(good, path=str(tmp_path / "other.flac"), features=dict(good["features"], bpm=float("nan")))
    con = open_catalog(tmp_path / "c.duckdb")
    counts = store_results(con, [good, bad], "run")
    assert counts == {"analyzed": 1, "rejected": 0, "failed": 1}
    assert con.execute("SELECT count(*) FROM features").fetchall() == [(1,)]
    ((reason, detail),) = con.execute("SELECT reason, detail FROM rejects").fetchall()
    assert reason == "SCHEMA" and "bpm" in detail
    con.close()


@pytest.mark.parametrize("make", [one_hz_wav, wide_sparse_wav])
def test_absurd_formats_are_refused_before_decoding(make, tmp_path):
    path = tmp_path / "bomb.wav"
    make(path)
    st = path.stat()
    started = time.process_time()
    result = analyze_file(str(path), st.st_size, st.st_mtime_ns)
    assert (result["status"], result["reason"]) == ("rejected", "UNSUPPORTED_FORMAT"), result["detail"]
    assert result["sample_rate"] is None and result["channels"] is None  # the absurd numbers are in the detail
    assert time.process_time() - started < 2.0


def test_a_row_that_fails_the_track_schema_fails_only_its_file(tmp_path):
    from tasks.features.analyze import empty_result

    p = tmp_path / "song.flac"
    sf.write(p, _song(), SR)
    st = p.stat()
    good = analyze_file(str(p), st.st_size, st.st_mtime_ns)
    odd = dict(good, path=str(tmp_path / "odd.flac"), channels=1024, sample_rate=1)
    empty = empty_result(str(tmp_path / "e.flac"), 0, 1, reason="EMPTY", detail="0 bytes")
    con = open_catalog(tmp_path / "c.duckdb")
    counts = store_results(con, [good, odd, empty], "run")
    assert counts == {"analyzed": 1, "rejected": 1, "failed": 1}
    rows = con.execute("SELECT path, status, reason, channels FROM tracks ORDER BY path").fetchall()
    assert rows == [
        (str(tmp_path / "e.flac"), "rejected", "EMPTY", None),
        (str(tmp_path / "odd.flac"), "failed", "SCHEMA", None),
        (str(p), "analyzed", None, 2),
    ]
    assert "channels" in con.execute("SELECT detail FROM rejects WHERE reason = 'SCHEMA'").fetchall()[0][0]
    con.close()


@pytest.mark.slow
def test_worker_peak_memory_on_the_hostile_library(hostile):
    """One warm worker analyses every hostile file; its peak RSS (VmHWM) stays under 700 MB."""
    from tasks.catalog.walk import walk_library

    root, _ = hostile
    items = walk_library(root).files.to_dicts()
    with AnalysisPool(1) as pool:
        results = pool.analyze_batch(items)
        (pid,) = pool.worker_pids()
        with open(f"/proc/{pid}/status") as f:
            peak_mb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    print(f"peak worker RSS over {len(items)} hostile files: {peak_mb:.0f} MB")
    assert len(results) == len(items)
    assert peak_mb <= 700, peak_mb
