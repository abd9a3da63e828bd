"""rekordbox XML and Traktor NML of a small analysed catalog, read back by independent parsers (pyrekordbox's
``RekordboxXml``; traktor-nml-utils' NML models through a strict xsdata parser) and compared with the
catalog's effective values, corrections included."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest

from tasks.catalog.corrections import Correction, set_correction
from tasks.catalog.crates import save_smart_crate, save_static_crate
from tasks.catalog.store import open_catalog
from tasks.durable import write_atomically
from tasks.export.rekordbox import export_rekordbox
from tasks.export.selection import file_uri
from tasks.export.traktor import export_traktor, traktor_location
from tasks.features.key.names import key_index, standard_key


@pytest.fixture
def curated(catalog_copy):
    """The catalog with one correction and two crates; yields (con, effective rows by track_id)."""
    con = open_catalog(catalog_copy)
    set_correction(con, 2, Correction(bpm=63.0, key="F#m", beat_offset_s=1.25, beats_per_bar=3), by="dj")
    save_smart_crate(con, "house", "bpm BETWEEN 120 AND 130")
    save_static_crate(con, "set", [3, 4, 1])
    rows = con.sql("SELECT * FROM effective_tracks WHERE status = 'analyzed'").pl()
    yield con, {r["track_id"]: r for r in rows.iter_rows(named=True)}
    con.close()


def _path_of(uri: str) -> str:
    parsed = urllib.parse.urlparse(uri)
    assert parsed.scheme == "file" and parsed.netloc == "localhost"
    return urllib.parse.unquote(parsed.path)


def test_rekordbox_xml_matches_the_catalog(curated, tmp_path):
    from pyrekordbox import RekordboxXml

    con, truth = curated
    out = tmp_path / "rekordbox.xml"
    selection = export_rekordbox(con, out)
    assert [Path(p).suffix for p, _ in selection.skipped] == [".ogg"]  # rekordbox plays no Ogg Vorbis
    xml = RekordboxXml(out)
    tracks = {t["TrackID"]: t for t in xml.get_tracks()}
    assert set(tracks) == {t for t, r in truth.items() if not r["path"].endswith(".ogg")}
    for track_id, t in tracks.items():
        r = truth[track_id]
        path = _path_of(t._element.attrib["Location"])
        assert path == r["path"] and os.path.exists(path)
        assert t["Location"] == r["path"].lstrip("/")  # pyrekordbox's own decoding agrees
        assert t["Name"] == r["title"] and t["Artist"] == r["artist"] and t["Genre"] == r["genre"]
        assert t["TotalTime"] == round(r["duration_s"])
        assert t["AverageBpm"] == pytest.approx(r["bpm"], abs=0.005)
        assert t["Tonality"] == standard_key(r["key"])
        (tempo,) = t.tempos
        assert tempo.Inizio == pytest.approx(r["beat_offset_s"], abs=1e-6)
        assert tempo.Bpm == pytest.approx(r["bpm"], abs=0.005)
        assert tempo.Metro == f"{r['beats_per_bar']}/4" and tempo.Battito == 1
        (mark,) = t.marks
        assert mark.Type == "cue" and mark.Num == -1 and mark.Start == pytest.approx(r["beat_offset_s"], abs=1e-6)
    assert tracks[2]["AverageBpm"] == 63.0 and tracks[2]["Tonality"] == "F#m"  # the correction, not the analysis
    assert tracks[2].tempos[0].Metro == "3/4" and tracks[2].tempos[0].Inizio == 1.25
    assert xml.get_playlist("set").get_tracks() == [3, 1]  # the ogg (4) left out, order kept
    assert sorted(xml.get_playlist("house").get_tracks()) == sorted(
        t for t, r in truth.items() if 120 <= r["bpm"] <= 130 and t in tracks
    )


def test_traktor_nml_matches_the_catalog(curated, tmp_path):
    from traktor_nml_utils.models.collection import Nml
    from xsdata.formats.dataclass.parsers import XmlParser
    from xsdata.formats.dataclass.parsers.config import ParserConfig

    con, truth = curated
    out = tmp_path / "collection.nml"
    selection = export_traktor(con, out, crates=["set"])
    assert selection.skipped == []
    strict = ParserConfig(fail_on_unknown_properties=True, fail_on_unknown_attributes=True)
    nml = XmlParser(config=strict).parse(str(out), Nml)
    by_path = {}
    for e in nml.collection.entry:
        assert e.location.volume == "Macintosh HD"
        path = e.location.dir.replace("/:", "/").rstrip("/") + "/" + e.location.file
        by_path[path] = e
    assert set(by_path) == {truth[t]["path"] for t in (3, 4, 1)}  # only the crate's tracks
    for path, e in by_path.items():
        r = next(r for r in truth.values() if r["path"] == path)
        assert os.path.exists(path)
        assert e.title == r["title"] and e.artist == r["artist"] and e.info.genre == r["genre"]
        assert e.tempo.bpm == pytest.approx(r["bpm"], abs=0.005)
        assert e.musical_key.value_attribute == key_index(r["key"])
        (grid,) = [c for c in e.cue_v2 if c.type == 4]
        assert grid.start == pytest.approx(1000 * r["beat_offset_s"], abs=0.5)  # ms
        assert grid.grid.bpm == pytest.approx(r["bpm"], abs=0.005)
        assert e.loudness.perceived_db == pytest.approx(r["loudness_lufs"] + 18.0, abs=1e-4)
        assert e.loudness.peak_db == pytest.approx(r["true_peak_dbtp"], abs=1e-4)
    (node,) = nml.playlists.node.subnodes.node
    keys = [x.primarykey.key for x in node.playlist.entry]
    assert node.name == "set" and keys == [
        "Macintosh HD" + traktor_location(truth[t]["path"])[1] + Path(truth[t]["path"]).name for t in (3, 4, 1)
    ]


def test_opus_audio_in_an_ogg_file_is_left_out_of_traktor(curated, tmp_path):
    """Traktor plays Ogg Vorbis but not Opus: the decoder's format decides, not the extension."""
    con, truth = curated
    (ogg,) = [t for t, r in truth.items() if r["path"].endswith(".ogg")]
    con.execute("UPDATE tracks SET format = 'opus', codec = 'opus' WHERE track_id = ?", [ogg])  # as scanned from one
    selection = export_traktor(con, tmp_path / "collection.nml")
    assert selection.skipped == [(truth[ogg]["path"], "Traktor cannot play opus audio")]
    assert truth[ogg]["path"] not in selection.tracks["path"].to_list()
    assert len(selection.tracks) == len(truth) - 1
    # Opus in an MP4 file (format m4a/opus): the codec decides there too, for rekordbox as for Traktor.
    con.execute("UPDATE tracks SET format = 'm4a/opus' WHERE track_id = ?", [ogg])
    assert export_traktor(con, tmp_path / "again.nml").skipped == [
        (truth[ogg]["path"], "Traktor cannot play opus audio")
    ]
    # Nor anything but AAC or ALAC in an MP4 file (Vorbis there: "vorbis" is no format name that was listed).
    con.execute("UPDATE tracks SET format = 'm4a/vorbis' WHERE track_id = ?", [ogg])
    skipped = export_traktor(con, tmp_path / "third.nml").skipped
    assert [why for _, why in skipped] == ["Traktor cannot play vorbis audio"]


def test_locations_and_uris():
    assert file_uri("/Music/A b#1 é.flac") == "file://localhost/Music/A%20b%231%20%C3%A9.flac"
    assert file_uri("C:\\Music\\a.mp3") == "file://localhost/C:/Music/a.mp3"
    assert traktor_location("/Volumes/USB/Music/a.mp3") == ("USB", "/:Music/:", "a.mp3")
    assert traktor_location("/Users/me/a.mp3", volume="HD") == ("HD", "/:Users/:me/:", "a.mp3")
    assert traktor_location("C:\\Music\\a.mp3") == ("C:", "/:Music/:", "a.mp3")


def test_export_is_atomic(tmp_path):
    out = tmp_path / "rekordbox.xml"
    out.write_text("previous export")

    def fails(f):
        f.write(b"<DJ_PLAYLISTS")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(out, fails)
    assert out.read_text() == "previous export"
    assert os.listdir(tmp_path) == ["rekordbox.xml"]


def test_a_control_character_in_a_tag_leaves_both_exports_readable(curated, tmp_path):
    import xml.etree.ElementTree as ET

    con, truth = curated
    track_id = next(t for t, r in truth.items() if not r["path"].endswith((".ogg", ".opus")))
    con.execute("UPDATE tracks SET title = ? WHERE track_id = ?", ["bad\x1b[31m\x00title\ttab", track_id])
    rekordbox = export_rekordbox(con, tmp_path / "rb.xml")
    traktor = export_traktor(con, tmp_path / "tk.nml")
    assert track_id in rekordbox.tracks["track_id"] and track_id in traktor.tracks["track_id"]
    names = {t.get("Name") for t in ET.parse(tmp_path / "rb.xml").iter("TRACK")}
    titles = {e.get("TITLE") for e in ET.parse(tmp_path / "tk.nml").iter("ENTRY")}
    assert "bad\\x1b[31m\\x00title\ttab" in names & titles  # shown as the command line shows it; a tab is XML


def test_odd_names_keep_their_location(curated, tmp_path):
    """A backslash is part of a POSIX name, not a separator; a name that is not UTF-8 keeps its bytes in a URI
    and is left out of the NML (its FILE attribute is text), with the reason."""
    import xml.etree.ElementTree as ET

    from tasks.audio.identity import path_to_text

    con, truth = curated
    wav, flac = (t for t, r in sorted(truth.items()) if r["path"].endswith((".wav", ".flac")))
    odd = {wav: "/m/back\\slash.wav", flac: os.fsdecode(b"/m/inv\xe9lid.flac")}
    for track_id, name in odd.items():
        con.execute("UPDATE tracks SET path = ?, title = NULL WHERE track_id = ?", [path_to_text(name), track_id])
    export_rekordbox(con, tmp_path / "rb.xml")
    located = {t.get("Location"): t.get("Name") for t in ET.parse(tmp_path / "rb.xml").iter("TRACK")}
    assert located["file://localhost/m/back%5Cslash.wav"] == "back\\slash"
    assert located["file://localhost/m/inv%E9lid.flac"] == "inv\\xe9lid"  # the byte as the command line shows it
    traktor = export_traktor(con, tmp_path / "tk.nml")
    files = {(e.get("DIR"), e.get("FILE")) for e in ET.parse(tmp_path / "tk.nml").iter("LOCATION")}
    assert ("/:m/:", "back\\slash.wav") in files
    assert flac not in traktor.tracks["track_id"].to_list()
    assert [why for p, why in traktor.skipped if p == path_to_text(odd[flac])] == [
        "its name is not UTF-8, which Traktor's file cannot hold (rename the file)"
    ]


def test_an_export_writes_through_a_link_and_into_a_pipe_never_over_them(tmp_path):

    from tasks.errors import OutputNotWritableError

    target = tmp_path / "real" / "collection.xml"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.xml"
    link.symlink_to(target)
    assert write_atomically(link, lambda f: f.write(b"new")) == link
    assert link.is_symlink() and target.read_text() == "new"  # the link stays; its target is replaced
    assert sorted(os.listdir(target.parent)) == ["collection.xml"]
    # A pipe (as /dev/stdout may be) is a stream: written into, not replaced by a file.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reading = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader there before the write (a thread might not be yet)
    try:
        write_atomically(fifo, lambda f: f.write(b"<NML/>"))
        assert os.read(reading, 100) == b"<NML/>" and fifo.is_fifo()
    finally:
        os.close(reading)
    # A pipe nobody reads is refused at once: opening it would wait for ever.
    with pytest.raises(OutputNotWritableError, match="no program is reading"):
        write_atomically(fifo, lambda f: f.write(b"<NML/>"))
    # /dev/stdout or /dev/fd/N redirected to a file (`>> log`): written through the descriptor, so it appends.
    log = tmp_path / "log.txt"
    log.write_text("line1\n")
    inode = log.stat().st_ino
    with open(log, "ab") as redirected:
        write_atomically(f"/dev/fd/{redirected.fileno()}", lambda f: f.write(b"<NML/>"))
    assert log.read_text() == "line1\n<NML/>" and log.stat().st_ino == inode
    (tmp_path / "a_file").write_text("x")
    for bad in (tmp_path / "a_file" / "out.xml", tmp_path / "real"):  # a file in the way; a folder
        with pytest.raises(OutputNotWritableError, match="cannot write"):
            write_atomically(bad, lambda f: f.write(b"x"))
    # A folder that is not there (a typo) is not made: nothing is written anywhere.
    with pytest.raises(OutputNotWritableError, match=r"typo/deeper does not exist \(make it first\)"):
        write_atomically(tmp_path / "typo" / "deeper" / "out.xml", lambda f: f.write(b"x"))
    assert not (tmp_path / "typo").exists()
