"""Tag write-back: to spec per container, the decoded audio identical sample for sample, the original intact
when anything fails, and a retagged file not re-analysed by the next run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import mutagen
import numpy as np
import pytest

from tasks.audio import tag_write
from tasks.audio.decode import read_native
from tasks.audio.tag_write import TagValues, TagWriteError, read_tag_texts, tag_changes, write_tags_safely
from tasks.audio.tags import read_tags
from tasks.constants import ANALYZER_VERSION, SR
from tasks.synth.files import write_audio
from tasks.synth.songs import SongSpec, render_song

FORMATS = ("flac", "mp3", "ogg", "opus", "m4a", "wav")
VALUES = TagValues(bpm=127.456, key="F#m", loudness_lufs=-11.2, replaygain_db=-6.8, peak_dbtp=-0.4)


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return render_song(SongSpec(bpm=127.5, tonic=6, mode="minor", duration_s=3.0, seed=21), sr=SR)


def _file(folder: Path, fmt: str, song: np.ndarray) -> Path:
    return write_audio(folder / f"track é.{fmt}", song, SR, title="T", artist="A", bpm=120.0, key="C major")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_back_keeps_every_sample_and_reads_back(fmt, song, tmp_path):
    path = _file(tmp_path, fmt, song)
    before, sr_before, _ = read_native(path)
    changes = write_tags_safely(path, VALUES)
    assert changes and tag_changes(path, VALUES) == []  # written, and a second run has nothing to do
    after, sr_after, _ = read_native(path)
    assert sr_after == sr_before and after.shape == before.shape
    assert np.array_equal(after, before)  # bit for bit
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left
    tags = read_tags(path)  # what the next analysis will read
    assert tags["tag_key"] == "F#m" and tags["title"] == "T"
    raw = mutagen.File(path).tags
    if fmt in ("mp3", "wav"):
        assert raw.version[:2] == (2, 4)
        assert str(raw["TBPM"]) == "127" and str(raw["TXXX:BPM"]) == "127.46" and str(raw["TKEY"]) == "F#m"
        assert str(raw["TXXX:REPLAYGAIN_TRACK_GAIN"]) == "-6.80 dB"
        assert float(str(raw["TXXX:REPLAYGAIN_TRACK_PEAK"])) == pytest.approx(10 ** (-0.4 / 20), abs=1e-6)
    elif fmt == "m4a":
        assert raw["tmpo"] == [127] and bytes(raw["----:com.apple.iTunes:initialkey"][0]) == b"F#m"
        assert bytes(raw["----:com.apple.iTunes:replaygain_track_gain"][0]) == b"-6.80 dB"
    elif fmt == "opus":
        assert raw["BPM"] == ["127.46"] and raw["INITIALKEY"] == ["F#m"]
        assert raw["R128_TRACK_GAIN"] == [str(round((-23 + 11.2) * 256))]  # Q7.8 dB to -23 LUFS
        assert "REPLAYGAIN_TRACK_GAIN" not in raw
    else:
        assert raw["BPM"] == ["127.46"] and raw["INITIALKEY"] == ["F#m"]
        assert raw["REPLAYGAIN_TRACK_GAIN"] == ["-6.80 dB"]


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a"])
@pytest.mark.parametrize("where", ["verify", "rename", "decode"])
def test_a_failure_leaves_the_original_intact(fmt, where, song, tmp_path, monkeypatch):
    path = _file(tmp_path, fmt, song)
    digest = _sha(path)
    if where == "verify":  # the copy is tagged, then the process "crashes"
        monkeypatch.setattr(tag_write, "_verify", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            write_tags_safely(path, VALUES)
    elif where == "rename":
        monkeypatch.setattr(tag_write.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space")))
        with pytest.raises(TagWriteError, match="No space"):
            write_tags_safely(path, VALUES)
    else:  # a decoder that sees one sample differ in the copy
        real = tag_write.audio_digest
        monkeypatch.setattr(
            tag_write, "audio_digest", lambda p, backend: real(p, backend=backend) + (".cratedig-" in str(p),)
        )
        with pytest.raises(TagWriteError, match="audio would change"):
            write_tags_safely(path, VALUES)
    assert _sha(path) == digest
    assert os.listdir(tmp_path) == [path.name]


def test_unwritable_container_is_refused(tmp_path):
    path = tmp_path / "x.wma"
    path.write_bytes(b"0" * 100)
    with pytest.raises(TagWriteError, match="cannot write tags"):
        write_tags_safely(path, VALUES)


def test_retagged_file_is_not_reanalysed(song, tmp_path):
    from tasks.catalog.corrections import Correction, set_correction
    from tasks.catalog.scan import plan_scan
    from tasks.catalog.store import known_tracks, open_catalog, store_results
    from tasks.catalog.tag_sync import apply, planned_changes, tag_jobs
    from tasks.catalog.walk import walk_library
    from tasks.features.analyze import analyze_file

    library = tmp_path / "lib"
    library.mkdir()
    paths = [_file(library / "", fmt, song).rename(library / f"t.{fmt}") for fmt in ("flac", "mp3")]
    con = open_catalog(tmp_path / "c.duckdb")
    store_results(con, [analyze_file(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths], "r1")
    set_correction(con, 1, Correction(bpm=127.5, key="Am"), by="dj")
    jobs, unknown = tag_jobs(con, [str(library), str(tmp_path / "nope.flac")], fields=["bpm", "key", "replaygain"])
    assert len(jobs) == 2 and unknown == [str(tmp_path / "nope.flac")]
    (tmp_path / "link").symlink_to(library)
    assert len(tag_jobs(con, [str(tmp_path / "link")], fields=["bpm"])[0]) == 2  # a link to the library
    # A link inside the library to one of its files is that file: one job, not a second write refused as changed.
    twin = library / "z_link.flac"
    twin.symlink_to(paths[0])
    store_results(con, [analyze_file(str(twin), twin.stat().st_size, twin.stat().st_mtime_ns)], "r1")
    assert [j.path for j in tag_jobs(con, [str(library)], fields=["bpm"])[0]] == [str(p) for p in paths]
    twin.unlink()
    con.execute("DELETE FROM features WHERE track_id = 3")
    con.execute("DELETE FROM tracks WHERE track_id = 3")
    for job in jobs:
        assert apply(con, job)
    assert read_tag_texts(paths[0], ["BPM", "INITIALKEY"]) == {"BPM": "127.50", "INITIALKEY": "Am"}  # the correction
    assert tag_write.planned_tags("x.flac", TagValues(bpm=124.0))["BPM"] == "124"  # a whole tempo, no ".00" churn
    plan = plan_scan(walk_library(library).files, known_tracks(con), analyzer_version=ANALYZER_VERSION)
    assert plan.changed.height == 0 and plan.to_analyze.height == 0 and plan.unchanged.height == 2
    assert con.execute("SELECT tag_key FROM tracks WHERE track_id = 1").fetchall() == [("Am",)]
    # A file edited since its analysis is refused, dry run or not: the catalog's values are another recording's.
    os.utime(paths[1], ns=(1, 1))
    before = _sha(paths[1])
    (job,) = tag_jobs(con, [str(paths[1])], fields=["key"], key_notation="camelot")[0]
    for attempt in (apply, planned_changes):
        with pytest.raises(TagWriteError, match="changed since it was analysed"):
            attempt(con, job)
    assert _sha(paths[1]) == before
    plan = plan_scan(walk_library(library).files, known_tracks(con), analyzer_version=ANALYZER_VERSION)
    assert plan.changed["path"].to_list() == [str(paths[1])]
    # Content replaced under the same size and mtime (touch -r, rsync -t) is another recording too.
    original, st = paths[0].read_bytes(), paths[0].stat()
    paths[0].write_bytes(
        original[: len(original) // 2]
        + bytes([original[len(original) // 2] ^ 0xFF])
        + original[len(original) // 2 + 1 :]
    )
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    (job,) = tag_jobs(con, [str(paths[0])], fields=["key"], key_notation="camelot")[0]
    for attempt in (apply, planned_changes):
        with pytest.raises(TagWriteError, match="same size and mtime"):
            attempt(con, job)
    paths[0].write_bytes(original)
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    # What --apply would refuse, the dry run refuses too (a hard link: the rename would split the names).
    os.link(paths[0], tmp_path / "twin.flac")
    (job,) = tag_jobs(con, [str(paths[0])], fields=["key"], key_notation="camelot")[0]
    with pytest.raises(TagWriteError, match="hard links"):
        planned_changes(con, job)
    con.close()


def test_a_leftover_of_a_killed_write_is_not_taken_for_audio(tmp_path):
    from tasks.catalog.walk import walk_library

    (tmp_path / ".song.flac.cratedig-0123abcd.tmp").write_bytes(b"fLaC" + bytes(100))
    found = walk_library(tmp_path)
    assert found.files.height == 0 and found.n_ignored == 1


def test_links_and_permissions(song, tmp_path):
    path = _file(tmp_path, "flac", song)
    os.chmod(path, 0o640)
    link = tmp_path / "link.flac"
    link.symlink_to(path)
    assert write_tags_safely(link, VALUES)
    assert link.is_symlink() and read_tag_texts(path, ["INITIALKEY"]) == {"INITIALKEY": "F#m"}  # target tagged
    assert (os.stat(path).st_mode & 0o777) == 0o640
    twin = tmp_path / "twin.flac"
    os.link(path, twin)
    digest = _sha(path)
    with pytest.raises(TagWriteError, match="hard links"):
        write_tags_safely(path, TagValues(bpm=99.0))
    assert _sha(path) == _sha(twin) == digest


@pytest.mark.parametrize(("codec", "name"), [("opus", "in.ogg"), ("opus", "in.oga"), ("ogg", "in.opus")])
def test_the_fields_follow_the_codec_not_the_name(codec, name, song, tmp_path):
    # Opus in an .ogg or .oga takes R128_TRACK_GAIN, as a .opus does, not REPLAYGAIN_*; Vorbis in a .opus the reverse.
    path = _file(tmp_path, codec, song).rename(tmp_path / name)
    values = TagValues(bpm=120.0, loudness_lufs=-14.0, replaygain_db=-4.0, peak_dbtp=-1.0)
    opus = codec == "opus"
    want = {"BPM", "R128_TRACK_GAIN"} if opus else {"BPM", "REPLAYGAIN_TRACK_GAIN", "REPLAYGAIN_TRACK_PEAK"}
    assert set(tag_write.planned_tags(path, values)) == want
    write_tags_safely(path, values)
    f = mutagen.File(path)
    assert {k.upper() for k in f.tags.keys()} >= want
    assert any(k.upper().startswith("REPLAYGAIN") for k in f.tags.keys()) != opus


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_an_id3v23_tag_stays_v23_with_its_frames(fmt, song, tmp_path):
    # mutagen reads any tag as 2.4 and would save it so, dropping 2.3 frames 2.4 has no place for (TYER, TDAT,
    # IPLS, TSIZ); read as 2.3 it drops the 2.4 frames taggers also write into 2.3 tags (TSOP, TSOA, TMOO).
    from mutagen.id3 import (
        APIC,
        COMM,
        IPLS,
        POPM,
        PRIV,
        TCON,
        TDAT,
        TIME,
        TIT2,
        TMOO,
        TSIZ,
        TSOA,
        TSOP,
        TXXX,
        TYER,
        UFID,
        USLT,
    )

    path = _file(tmp_path, fmt, song)
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    f.tags.clear()
    frames = [
        TIT2(encoding=1, text=["Заголовок"]),
        TYER(text=["2001"]),
        TDAT(text=["0503"]),
        TIME(text=["1230"]),
        TSIZ(text=["12345"]),
        TSOP(text=["Artist, The"]),
        TSOA(text=["Album sort"]),
        TMOO(text=["Calm"]),
        TCON(text=["(17)Rock"]),
        IPLS(people=[["producer", "Someone"]]),
        APIC(encoding=0, mime="image/png", type=3, desc="", data=b"\x89PNG fake"),
        COMM(encoding=1, lang="eng", desc="", text=["первый"]),
        COMM(encoding=0, lang="eng", desc="two", text=["second"]),
        USLT(encoding=1, lang="eng", desc="", text="la la"),
        TXXX(encoding=1, desc="MOOD", text=["спокойный"]),
        POPM(email="a@b", rating=196, count=3),
        PRIV(owner="x", data=b"\x00\x01"),
        UFID(owner="http://musicbrainz.org", data=b"abc"),
    ]
    for frame in frames:
        f.tags.add(frame)
    f.save(v2_version=3)

    def frames_of(p):
        tags = type(mutagen.File(p))(p, translate=False).tags
        return tags.version[:2], {k: repr(v) for k, v in tags.items()}

    version, before = frames_of(path)
    assert version == (2, 3)
    write_tags_safely(path, TagValues(bpm=124.5, key="Am"))
    version, after = frames_of(path)
    assert version == (2, 3)
    assert {k: v for k, v in after.items() if k not in ("TBPM", "TKEY", "TXXX:BPM")} == before
    assert read_tag_texts(path, ["TBPM", "TKEY", "TXXX:BPM"]) == {"TBPM": "125", "TKEY": "Am", "TXXX:BPM": "124.50"}


def test_the_tagged_file_keeps_its_owner_and_a_read_only_file_is_refused(song, tmp_path):
    path = _file(tmp_path, "flac", song)
    if os.geteuid() == 0:  # root can give the copy to the file's owner: it must
        os.chown(path, 65534, 65534)
        write_tags_safely(path, TagValues(bpm=121.0))
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)
    else:  # a user cannot: the file is refused rather than given to them
        assert path.stat().st_uid == os.geteuid()
        write_tags_safely(path, TagValues(bpm=121.0))
        assert path.stat().st_uid == os.geteuid()
    path.chmod(0o444)
    before = _sha(path)
    with pytest.raises(TagWriteError, match="read-only"):
        write_tags_safely(path, TagValues(bpm=122.0))
    assert _sha(path) == before


def test_an_unwritable_format_is_refused_by_name(tmp_path):
    path = tmp_path / "track.aac"
    path.write_bytes(b"0" * 100)
    with pytest.raises(TagWriteError, match=r"track\.aac: cannot write tags to \.aac files"):
        write_tags_safely(path, VALUES)


def test_ctrl_c_during_a_tag_write_says_what_was_done(song, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app
    from tasks.catalog import tag_sync
    from tasks.catalog.store import open_catalog, store_results
    from tasks.features.analyze import analyze_file

    library = tmp_path / "lib"
    library.mkdir()
    paths = [_file(library, fmt, song).rename(library / f"t{i}.{fmt}") for i, fmt in enumerate(("flac", "ogg", "mp3"))]
    catalog = tmp_path / "c.duckdb"
    con = open_catalog(catalog)
    store_results(con, [analyze_file(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths], "r1")
    con.close()
    real, calls = tag_sync.apply, []

    def interrupted_on_the_second(con, job):
        calls.append(job.path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(con, job)

    monkeypatch.setattr(tag_sync, "apply", interrupted_on_the_second)
    res = CliRunner().invoke(app, ["tags", "write", str(library), "--apply", "--catalog", str(catalog)])
    assert res.exit_code == 130, res.output
    assert "interrupted: 1 of 3 files tagged" in " ".join(res.output.split()), res.output
    # The file tagged before the interrupt is in step with the catalog: the same command goes on from there.
    monkeypatch.setattr(tag_sync, "apply", real)
    res = CliRunner().invoke(app, ["tags", "write", str(library), "--apply", "--catalog", str(catalog)])
    assert res.exit_code == 0 and "2 of 3 files tagged" in " ".join(res.output.split()), res.output


def test_the_copy_reaches_the_disk_before_it_replaces_the_file(song, tmp_path, monkeypatch):
    # A rename of an unflushed copy can come back empty after a power cut (XFS, FAT and exFAT USB drives); the
    # rename is flushed too, by flushing the folder. An unreadable folder cannot be flushed: the write stands.
    path = _file(tmp_path, "flac", song)
    events: list[str] = []
    real_fsync, real_replace, real_open = os.fsync, os.replace, os.open

    def fsync(fd: int) -> None:
        events.append("fsync " + os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_tags_safely(path, TagValues(bpm=123.0))
    assert events[-2:] == ["replace", f"fsync {tmp_path}"]
    assert events[-3].startswith("fsync ") and ".cratedig-" in events[-3]  # the copy, before the rename

    def unreadable_folders(p, flags, *args):
        if Path(p).is_dir():
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args)

    monkeypatch.setattr(os, "open", unreadable_folders)
    assert write_tags_safely(path, TagValues(bpm=124.0))  # tagged, and said so
    assert read_tag_texts(path, ["BPM"]) == {"BPM": "124"}


def test_integer_bpm_fields_round_halves_up():
    """ID3 TBPM and MP4 tmpo hold whole numbers: every half rounds up alike, not to the even neighbour."""
    # ... from the value the two-decimal fields hold: 124.499 is written "124.50" there, so 125 here.
    for bpm, whole in ((124.5, "125"), (125.5, "126"), (124.49, "124"), (99.5, "100"), (124.499, "125")):
        assert tag_write.planned_tags("x.mp3", TagValues(bpm=bpm))["TBPM"] == whole
        assert tag_write.planned_tags("x.m4a", TagValues(bpm=bpm))["tmpo"] == whole
