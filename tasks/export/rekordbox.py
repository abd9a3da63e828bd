"""rekordbox's XML collection (``DJ_PLAYLISTS``), as rekordbox imports it under Preferences > Advanced >
rekordbox xml.

One ``TRACK`` per analysed track (``TrackID`` = the catalog's ``track_id``; ``Location`` a ``file://localhost/``
URI), one ``TEMPO`` (``Inizio`` = first downbeat in s, ``Bpm``, ``Metro`` = meter, ``Battito`` = 1: Inizio is
beat 1 of a bar) and one memory cue (``POSITION_MARK`` ``Type="0"`` ``Num="-1"``) at the first downbeat;
``PLAYLISTS`` holds one playlist node per crate. Structure as documented by Pioneer DJ's "rekordbox xml
format" and read by pyrekordbox's ``RekordboxXml``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import duckdb

from tasks.audio.identity import text_to_path
from tasks.durable import write_atomically
from tasks.export.selection import Selection, file_uri, select_for_export, xml_safe
from tasks.features.key.names import standard_key

#: What rekordbox plays, by extension, with the ``Kind`` it shows.
KINDS: dict[str, str] = {
    ".mp3": "MP3 File",
    ".m4a": "M4A File",
    ".mp4": "M4A File",
    ".wav": "WAV File",
    ".wave": "WAV File",
    ".aif": "AIFF File",
    ".aiff": "AIFF File",
    ".flac": "FLAC File",
}
#: Audio rekordbox cannot play whatever the file's extension (the catalog's ``format``).
UNPLAYABLE: frozenset[str] = frozenset({"ogg", "opus", "wma"})
PRODUCT = {"Name": "cratedig", "Version": "0.1.0", "Company": "cratedig"}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _track(collection: ET.Element, r: dict[str, Any]) -> None:
    bpm, offset = r["bpm"], r["beat_offset_s"]
    track = ET.SubElement(
        collection,
        "TRACK",
        {
            "TrackID": str(r["track_id"]),
            "Name": _text(r["title"]) or Path(text_to_path(r["path"])).stem,
            "Artist": _text(r["artist"]),
            "Album": _text(r["album"]),
            "Genre": _text(r["genre"]),
            "Kind": KINDS[os.path.splitext(r["path"])[1].lower()],
            "Size": _text(r["size_bytes"]),
            "TotalTime": str(int(round(r["duration_s"] or 0))),
            "SampleRate": _text(r["sample_rate"]),
            "AverageBpm": f"{bpm or 0.0:.2f}",
            "Tonality": standard_key(r["key"]) if r["key"] else "",
            "Location": file_uri(r["path"]),
        },
    )
    if bpm and offset is not None:
        meter = f"{r['beats_per_bar'] or 4}/4"
        ET.SubElement(track, "TEMPO", {"Inizio": f"{offset:.6f}", "Bpm": f"{bpm:.2f}", "Metro": meter, "Battito": "1"})
        ET.SubElement(
            track, "POSITION_MARK", {"Name": "1.1 downbeat", "Type": "0", "Start": f"{offset:.6f}", "Num": "-1"}
        )


def build_xml(selection: Selection) -> ET.ElementTree:
    """The ``DJ_PLAYLISTS`` document of ``selection``."""
    root = ET.Element("DJ_PLAYLISTS", {"Version": "1.0.0"})
    ET.SubElement(root, "PRODUCT", PRODUCT)
    collection = ET.SubElement(root, "COLLECTION", {"Entries": str(selection.tracks.height)})
    for r in selection.tracks.iter_rows(named=True):
        _track(collection, r)
    playlists = ET.SubElement(root, "PLAYLISTS")
    top = ET.SubElement(playlists, "NODE", {"Type": "0", "Name": "ROOT", "Count": str(len(selection.playlists))})
    for name, ids in selection.playlists:
        node = ET.SubElement(top, "NODE", {"Name": name, "Type": "1", "KeyType": "0", "Entries": str(len(ids))})
        for track_id in ids:
            ET.SubElement(node, "TRACK", {"Key": str(track_id)})
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return xml_safe(tree)


def export_rekordbox(con: duckdb.DuckDBPyConnection, out: str | Path, crates: list[str] | None = None) -> Selection:
    """Write rekordbox XML of the analysed tracks (or of ``crates`` only) to ``out``, atomically.

    Returns the :class:`Selection` written (``skipped`` lists tracks rekordbox cannot play: ogg, opus...).
    """
    selection = select_for_export(con, crates, extensions=frozenset(KINDS), software="rekordbox", unplayable=UNPLAYABLE)
    tree = build_xml(selection)
    write_atomically(out, lambda f: (tree.write(f, encoding="UTF-8", xml_declaration=True), f.write(b"\n")))
    return selection
