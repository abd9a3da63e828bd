"""What an export holds: the analysed tracks with their effective values, the crates as playlists, and the
small helpers both formats share (file URIs, atomic writes)."""

from __future__ import annotations

import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import duckdb
import polars as pl

from tasks.audio.identity import text_to_path
from tasks.catalog.crates import crate_tracks
from tasks.visible import escape_matches
from tasks.vocabulary import TrackStatus

#: The codecs an MP4 file (``m4a/<codec>``) may hold for DJ software to play it.
MP4_CODECS: frozenset[str] = frozenset({"aac", "alac"})
#: Columns of ``effective_tracks`` an export reads.
EXPORT_COLUMNS = (
    'track_id, path, title, artist, album, genre, format, duration_s, sample_rate, size_bytes, bpm, "key", '
    "beat_offset_s, beats_per_bar, loudness_lufs, replaygain_db, true_peak_dbtp, analyzed_at"
)


@dataclass
class Selection:
    """Tracks and playlists of one export.

    Attributes
    ----------
    tracks : pl.DataFrame
        :data:`EXPORT_COLUMNS` of the tracks to write, by ``track_id``.
    playlists : list of (name, list of track_id)
        One per crate, in name order; track ids in the crate's order, all in ``tracks``.
    skipped : list of (path, why)
        Tracks left out (a format the target software cannot play).
    """

    tracks: pl.DataFrame
    playlists: list[tuple[str, list[int]]]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def select_for_export(
    con: duckdb.DuckDBPyConnection,
    crates: list[str] | None = None,
    *,
    extensions: frozenset[str],
    software: str,
    unplayable: frozenset[str] = frozenset(),
    utf8_names: bool = False,
) -> Selection:
    """The analysed tracks (or only the tracks of ``crates``) and the crates (all, or ``crates``) as playlists.

    Tracks whose extension is not in ``extensions`` (what ``software`` plays), or whose audio is a codec of
    ``unplayable`` (from the catalog's ``format``: Opus audio in an ``.ogg`` file is ``opus``, in an MP4 file
    ``m4a/opus``), or an MP4 file holding anything but :data:`MP4_CODECS`, are skipped and
    listed, and with ``utf8_names`` those whose path is not UTF-8 (a format that names files by text cannot
    name them).
    Raises :class:`tasks.catalog.crates.CrateError` for an unknown crate.
    """
    names = (
        list(dict.fromkeys(n.strip() for n in crates))
        if crates
        else [r[0] for r in con.execute("SELECT name FROM crates ORDER BY name").fetchall()]
    )
    members = {name: crate_tracks(con, name)["track_id"].to_list() for name in names}
    tracks = con.sql(
        f"SELECT {EXPORT_COLUMNS} FROM effective_tracks WHERE status = $status ORDER BY track_id",
        params={"status": TrackStatus.ANALYZED},
    ).pl()
    if crates:
        wanted = {t for ids in members.values() for t in ids}
        tracks = tracks.filter(pl.col("track_id").is_in(list(wanted)))
    playable = tracks["path"].map_elements(lambda p: os.path.splitext(p)[1].lower() in extensions, pl.Boolean)
    skipped = [
        (p, f"{software} cannot play {os.path.splitext(p)[1] or 'this file'}") for p in tracks.filter(~playable)["path"]
    ]
    tracks = tracks.filter(playable)
    # The extension may not say what the audio is: the decoder's format does.
    codec = tracks["format"].str.split("/").list.last()  # m4a/opus: Opus audio in an MP4 file
    in_mp4 = tracks["format"].str.contains("/").fill_null(False)
    # DJ software plays AAC and ALAC in an MP4 file, nothing else there (m4a/vorbis, m4a/flac...).
    audio_ok = ~(codec.is_in(list(unplayable)).fill_null(False) | (in_mp4 & ~codec.is_in(list(MP4_CODECS))))
    skipped += [
        (p, f"{software} cannot play {c} audio")
        for p, c in zip(tracks["path"].filter(~audio_ok), codec.filter(~audio_ok))
    ]
    tracks = tracks.filter(audio_ok)
    if utf8_names:
        named = tracks["path"].map_elements(_utf8, pl.Boolean)
        skipped += [
            (p, f"its name is not UTF-8, which {software}'s file cannot hold (rename the file)")
            for p in tracks.filter(~named)["path"]
        ]
        tracks = tracks.filter(named)
    kept = set(tracks["track_id"].to_list())
    playlists = [(name, [t for t in members[name] if t in kept]) for name in names]
    return Selection(tracks=tracks, playlists=playlists, skipped=skipped)


def _utf8(path: str) -> bool:
    """Whether a catalog path's file name is UTF-8 (no undecodable bytes)."""
    try:
        text_to_path(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def file_uri(path: str) -> str:
    """``file://localhost/`` URI of a catalog path, percent-encoded from its bytes (UTF-8 names, and names
    with undecodable bytes as stored by :func:`tasks.audio.identity.path_to_text`).

    ``/Music/A b.flac`` -> ``file://localhost/Music/A%20b.flac``; ``C:\\Music\\a.mp3`` -> ``file://localhost/C:/Music/a.mp3``.
    A backslash is a separator only in a Windows path: in a POSIX one it is part of a name (``%5C``).
    """
    raw = os.fsencode(text_to_path(path))
    if not raw.startswith(b"/"):
        raw = raw.replace(b"\\", b"/")
    return "file://localhost/" + urllib.parse.quote(raw.lstrip(b"/"), safe="/:")


# What XML 1.0 cannot hold at all, not even as a character reference: C0 controls but tab, newline and carriage
# return; lone surrogates (a file name's undecodable bytes); U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(tree: ET.ElementTree) -> ET.ElementTree:
    """``tree`` with every character XML 1.0 cannot hold, in attributes and text, written as ``\\xNN`` (as the
    command line shows it), in place.

    A tag with an escape character made both DJ exports unreadable as a whole: one track's title must not
    stop a whole library's import. Everything else is left to ElementTree's escaping.
    """
    for element in tree.iter():
        for name, value in element.attrib.items():
            element.set(name, escape_matches(_NOT_XML, value))
        if element.text:
            element.text = escape_matches(_NOT_XML, element.text)
        if element.tail:
            element.tail = escape_matches(_NOT_XML, element.tail)
    return tree
