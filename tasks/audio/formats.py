"""The names of audio formats users know (``wav``, ``m4a/aac``...), from a file's extension and decoded codec."""

from __future__ import annotations

import os

#: Containers whose format name carries the codec, because one extension holds several (``m4a/aac``, ``m4a/alac``).
MP4_EXTENSIONS: frozenset[str] = frozenset({".m4a", ".mp4", ".m4b"})

_BY_CODEC = {
    "flac": "flac",
    "vorbis": "ogg",
    "opus": "opus",
    "mp3": "mp3",
    "mp3float": "mp3",
    "mpeg": "mp3",
    "wmav2": "wma",
    "wmav1": "wma",
    "aiff": "aiff",
}
_BY_EXTENSION = {".wav": "wav", ".wave": "wav", ".aif": "aiff", ".aiff": "aiff", ".aifc": "aiff", ".w64": "wav"}


def codec_name(codec: str | None) -> str | None:
    """The decoder's codec name, tidied: ``'pcm_pcm_16'`` (libsndfile's WAV subtype) becomes ``'pcm_16'``."""
    if not codec:
        return None
    codec = codec.lower()
    return codec.replace("pcm_pcm_", "pcm_", 1)


def format_name(path: str | os.PathLike, codec: str | None) -> str | None:
    """What a user calls the file's format: ``wav``, ``aiff``, ``flac``, ``mp3``, ``ogg``, ``opus``, ``wma``, or
    ``m4a/<codec>`` (``m4a/aac``, ``m4a/alac``) for MP4 containers; the extension when nothing else fits.

    >>> format_name("a.wav", "pcm_pcm_16"), format_name("b.m4a", "alac"), format_name("c.ogg", "vorbis")
    ('wav', 'm4a/alac', 'ogg')
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    codec = codec_name(codec)
    if codec is None:
        return None
    if ext == ".aac":  # raw ADTS stream, no container
        return "aac"
    if ext in MP4_EXTENSIONS:
        return f"{ext[1:]}/{codec}"
    if codec.startswith("pcm_") or codec in ("wav", "wavex"):
        return _BY_EXTENSION.get(ext, "wav")
    return _BY_CODEC.get(codec, ext.lstrip(".") or codec)
