"""Traktor's collection file (NML, ``VERSION="19"``), as Traktor imports it (Import Collection, or a playlist
import from the Explorer).

One ``ENTRY`` per analysed track: ``LOCATION`` (Traktor's ``/:``-separated ``DIR``, ``FILE``, ``VOLUME``),
``INFO`` (genre, play time in s, key text in Open Key notation, size in KiB), ``TEMPO BPM``, ``LOUDNESS``,
``MUSICAL_KEY VALUE`` (0-11 C..B major, 12-23 C..B minor) and a grid marker ``CUE_V2 TYPE="4"`` at the first
downbeat (``START`` in ms). ``PLAYLISTS`` holds one playlist per crate, its entries keyed by
``VOLUME + DIR + FILE``. Structure as read by traktor-nml-utils' NML models.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath
from typing import Any

import duckdb

from tasks.audio.identity import text_to_path
from tasks.durable import write_atomically
from tasks.export.selection import Selection, select_for_export, xml_safe
from tasks.features.key.names import key_index, open_key

#: What Traktor plays, by extension (no Opus; WMA only on Windows, left out).
EXTENSIONS: frozenset[str] = frozenset({".mp3", ".m4a", ".mp4", ".wav", ".wave", ".aif", ".aiff", ".flac", ".ogg"})
#: Audio Traktor cannot play whatever the file's extension (the catalog's ``format``).
UNPLAYABLE: frozenset[str] = frozenset({"opus", "wma"})
#: Loudness reference of ``PERCEIVED_DB`` / ``ANALYZED_DB``, LUFS (ReplayGain 2's; Traktor documents none).
REFERENCE_LUFS = -18.0
#: The header Traktor writes and expects.
HEAD = {"COMPANY": "www.native-instruments.com", "PROGRAM": "Traktor"}
_MAC_VOLUME = re.compile(r"^/Volumes/([^/]+)(/.*)$")


def traktor_location(path: str, *, volume: str = "Macintosh HD") -> tuple[str, str, str]:
    """``(VOLUME, DIR, FILE)`` of a path as Traktor writes them.

    ``/Users/me/a.mp3`` -> ``('Macintosh HD', '/:Users/:me/:', 'a.mp3')`` (``volume`` names the startup
    disk); ``/Volumes/USB/Music/a.mp3`` -> ``('USB', '/:Music/:', 'a.mp3')``; ``C:\\Music\\a.mp3`` ->
    ``('C:', '/:Music/:', 'a.mp3')``.
    """
    path = text_to_path(path)  # the name as the file system holds it (a catalog text doubles backslashes)
    win = PureWindowsPath(path)
    if win.drive and not path.startswith("/"):  # in a POSIX path a backslash is part of a name
        volume, parts = win.drive, list(win.parts[1:])
    else:
        m = _MAC_VOLUME.match(path)
        if m:
            volume, path = m.group(1), m.group(2)
        parts = [p for p in path.split("/") if p]
    *dirs, name = parts
    return volume, "/:" + "".join(f"{d}/:" for d in dirs), name


def _date(value: Any) -> str:
    return f"{value.year}/{value.month}/{value.day}" if value is not None else ""


def _entry(collection: ET.Element, r: dict[str, Any], volume: str) -> str:
    vol, folder, name = traktor_location(r["path"], volume=volume)
    entry = ET.SubElement(
        collection,
        "ENTRY",
        {
            "MODIFIED_DATE": _date(r["analyzed_at"]),
            "MODIFIED_TIME": "0",
            "TITLE": r["title"] or Path(name).stem,
            "ARTIST": r["artist"] or "",
        },
    )
    ET.SubElement(entry, "LOCATION", {"DIR": folder, "FILE": name, "VOLUME": vol})
    if r["album"]:
        ET.SubElement(entry, "ALBUM", {"TITLE": r["album"]})
    info = {
        "GENRE": r["genre"] or "",
        "PLAYTIME": str(int(round(r["duration_s"] or 0))),
        "PLAYTIME_FLOAT": f"{r['duration_s'] or 0:.6f}",
        "IMPORT_DATE": _date(r["analyzed_at"]),
        "FILESIZE": str((r["size_bytes"] or 0) // 1024),
    }
    if r["key"]:
        info["KEY"] = open_key(r["key"])
    ET.SubElement(entry, "INFO", info)
    if r["bpm"]:
        ET.SubElement(entry, "TEMPO", {"BPM": f"{r['bpm']:.6f}", "BPM_QUALITY": "100.000000"})
    if r["loudness_lufs"] is not None:
        above = r["loudness_lufs"] - REFERENCE_LUFS
        peak = r["true_peak_dbtp"] if r["true_peak_dbtp"] is not None else 0.0
        ET.SubElement(
            entry, "LOUDNESS", {"PEAK_DB": f"{peak:.6f}", "PERCEIVED_DB": f"{above:.6f}", "ANALYZED_DB": f"{above:.6f}"}
        )
    if r["key"]:
        ET.SubElement(entry, "MUSICAL_KEY", {"VALUE": str(key_index(r["key"]))})
    if r["bpm"] and r["beat_offset_s"] is not None:
        cue = ET.SubElement(
            entry,
            "CUE_V2",
            {
                "NAME": "AutoGrid",
                "DISPL_ORDER": "0",
                "TYPE": "4",
                "START": f"{r['beat_offset_s'] * 1000.0:.6f}",
                "LEN": "0.000000",
                "REPEATS": "-1",
                "HOTCUE": "0",
            },
        )
        ET.SubElement(cue, "GRID", {"BPM": f"{r['bpm']:.6f}"})
    return vol + folder + name


def build_nml(selection: Selection, *, volume: str = "Macintosh HD") -> ET.ElementTree:
    """The NML document of ``selection``; ``volume`` names the startup disk (see :func:`traktor_location`)."""
    root = ET.Element("NML", {"VERSION": "19"})
    ET.SubElement(root, "HEAD", HEAD)
    ET.SubElement(root, "MUSICFOLDERS")
    collection = ET.SubElement(root, "COLLECTION", {"ENTRIES": str(selection.tracks.height)})
    keys = {r["track_id"]: _entry(collection, r, volume) for r in selection.tracks.iter_rows(named=True)}
    ET.SubElement(root, "SETS", {"ENTRIES": "0"})
    playlists = ET.SubElement(root, "PLAYLISTS")
    top = ET.SubElement(playlists, "NODE", {"TYPE": "FOLDER", "NAME": "$ROOT"})
    subnodes = ET.SubElement(top, "SUBNODES", {"COUNT": str(len(selection.playlists))})
    for name, ids in selection.playlists:
        node = ET.SubElement(subnodes, "NODE", {"TYPE": "PLAYLIST", "NAME": name})
        playlist = ET.SubElement(
            node,
            "PLAYLIST",
            {"ENTRIES": str(len(ids)), "TYPE": "LIST", "UUID": uuid.uuid5(uuid.NAMESPACE_URL, name).hex},
        )
        for track_id in ids:
            item = ET.SubElement(playlist, "ENTRY")
            ET.SubElement(item, "PRIMARYKEY", {"TYPE": "TRACK", "KEY": keys[track_id]})
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return xml_safe(tree)


def export_traktor(
    con: duckdb.DuckDBPyConnection, out: str | Path, crates: list[str] | None = None, *, volume: str = "Macintosh HD"
) -> Selection:
    """Write a Traktor NML of the analysed tracks (or of ``crates`` only) to ``out``, atomically.

    Returns the :class:`Selection` written (``skipped`` lists tracks Traktor cannot play: opus...).
    """
    selection = select_for_export(
        con, crates, extensions=EXTENSIONS, software="Traktor", unplayable=UNPLAYABLE, utf8_names=True
    )
    tree = build_nml(selection, volume=volume)
    write_atomically(out, lambda f: (tree.write(f, encoding="UTF-8", xml_declaration=True), f.write(b"\n")))
    return selection
