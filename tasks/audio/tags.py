"""Read the tags users already have (title, artist, album, genre, BPM, key) with mutagen, any container."""

from __future__ import annotations

import re
from pathlib import Path

import mutagen
from mutagen.easyid3 import EasyID3
from mutagen.easymp4 import EasyMP4Tags

# Keys the "easy" interfaces do not map by default.
if "initialkey" not in EasyID3.valid_keys:
    EasyID3.RegisterTextKey("initialkey", "TKEY")
if "initialkey" not in EasyMP4Tags.Get:
    EasyMP4Tags.RegisterFreeformKey("initialkey", "initialkey")

TAG_FIELDS = ("title", "artist", "album", "genre", "tag_bpm", "tag_key")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def _first(tags: object, *names: str) -> str | None:
    for name in names:
        try:
            value = tags[name]  # type: ignore[index]
        except (KeyError, ValueError, TypeError):
            continue
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            continue
        text = str(value).strip().replace("\x00", "")
        if text:
            return text
    return None


def parse_bpm(text: str | None) -> float | None:
    """A tag's BPM as a number (``'128'``, ``'127,5'``, ``'128 BPM'``); ``None`` if absent or implausible."""
    if not text:
        return None
    m = _NUMBER.search(text)
    if not m:
        return None
    bpm = float(m.group().replace(",", "."))
    return bpm if 20.0 <= bpm <= 400.0 else None


# ID3 frames of the tag fields, for containers whose ID3 tag has no "easy" view (WAV, AIFF).
_ID3_FRAMES = {
    "title": "TIT2",
    "artist": "TPE1",
    "albumartist": "TPE2",
    "album": "TALB",
    "genre": "TCON",
    "bpm": "TBPM",
    "initialkey": "TKEY",
}


def _id3_as_easy(tags: object) -> dict[str, list[str]]:
    out = {}
    for name, frame in _ID3_FRAMES.items():
        value = tags.get(frame) if hasattr(tags, "get") else None  # type: ignore[union-attr]
        if value is not None and getattr(value, "text", None):
            out[name] = [str(v) for v in value.text]
    return out


def _open_tags(path: str) -> object | None:
    """The file's tags as a mapping of easy names to lists of strings, or ``None``."""
    f = mutagen.File(path, easy=True)
    if f is not None and f.tags is not None and type(f).__name__ not in ("WAVE", "AIFF"):
        return f.tags
    raw = mutagen.File(path)  # RIFF/AIFF carry ID3 frames but have no easy view
    if raw is not None and raw.tags is not None:
        return _id3_as_easy(raw.tags)
    return None


def read_tags(path: str | Path) -> dict[str, object]:
    """Return the :data:`TAG_FIELDS` of a file; missing or unreadable tags are ``None`` (never raises)."""
    out: dict[str, object] = dict.fromkeys(TAG_FIELDS)
    try:
        t = _open_tags(str(path))
    except Exception:  # mutagen raises many types on malformed tags; tags are optional
        return out
    if t is None:
        return out
    out["title"] = _first(t, "title")
    out["artist"] = _first(t, "artist", "albumartist")
    out["album"] = _first(t, "album")
    out["genre"] = _first(t, "genre")
    out["tag_bpm"] = parse_bpm(_first(t, "bpm", "tempo"))
    out["tag_key"] = _first(t, "initialkey", "key")
    return out
