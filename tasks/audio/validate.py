"""Cheap checks before decoding: size limits and magic-byte sniffing.

Everything here is pure or reads at most the first 64 KiB of a file, so a whole library can be checked
before any decoder touches it. A file that fails raises :class:`~tasks.errors.RejectError` with a stable
reason code.
"""

from __future__ import annotations

from pathlib import Path

from tasks.errors import RejectError
from tasks.vocabulary import Reason

#: Default maximum file size: a 2-hour 96 kHz 24-bit stereo WAV is ~4.1 GB.
MAX_BYTES: int = 5 * 1024**3
#: Bytes read for sniffing.
SNIFF_BYTES: int = 64 * 1024
#: Native sample rates cratedig decodes, Hz: below, a file is a few samples spread over hours (a "1 Hz" WAV);
#: above, no converter or instrument produces it.
SAMPLE_RATE_RANGE: tuple[int, int] = (4000, 768000)
#: Most channels a file may have (Atmos beds and ambisonics of 3rd order stay under it).
MAX_CHANNELS: int = 32

# MPEG-1/2/2.5 layer III bitrates (kbit/s) and sample rates, for checking frame-sync candidates.
_MP3_BITRATES = {
    3: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],  # MPEG-1
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],  # MPEG-2
    0: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],  # MPEG-2.5
}
_MP3_RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}

# Signatures of common non-audio content, to name what a file really is in the reject detail.
_NOT_AUDIO_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip archive"),
    (b"<!doctype html", "HTML page"),
    (b"<html", "HTML page"),
    (b"<?xml", "XML document"),
    (b"{", "JSON/text"),
)


def _mp3_frame_length(h: bytes) -> int:
    """Length in bytes of the layer III frame whose 4-byte header is ``h``, or 0 if ``h`` is not one."""
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return 0
    version, layer = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate_idx, rate_idx, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer != 1 or bitrate_idx in (0, 15) or rate_idx == 3:
        return 0
    bitrate = _MP3_BITRATES[version][bitrate_idx] * 1000
    rate = _MP3_RATES[version][rate_idx]
    return (144 if version == 3 else 72) * bitrate // rate + padding


def _find_mp3_frames(head: bytes, start: int = 0, chain: int = 4) -> bool:
    """True if ``chain`` consecutive valid MPEG audio frames start somewhere in ``head[start:]``.

    One valid-looking header turns up in random bytes every few kilobytes, two in a row in about one
    64 KiB block in a hundred; four in a row practically never, while real streams always have them.
    """
    i = head.find(b"\xff", start)
    while 0 <= i < len(head) - 4:
        j, found = i, 0
        while found < chain and (n := _mp3_frame_length(head[j : j + 4])):
            found += 1
            j += n
        if found == chain:
            return True
        i = head.find(b"\xff", i + 1)
    return False


def _is_adts(head: bytes) -> bool:
    return len(head) >= 7 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0


def sniff_format(head: bytes) -> str | None:
    """Name the audio container that ``head`` (the first bytes of a file) starts with, or ``None``.

    Examples
    --------
    >>> sniff_format(b"fLaC\\x00\\x00\\x00\\x22")
    'flac'
    >>> sniff_format(b"<!DOCTYPE html><html>") is None
    True
    """
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x30\x26\xb2\x75":
        return "asf"
    if head[:4] == b"wvpk":
        return "wavpack"
    if head[:4] == b"MAC ":
        return "ape"
    if head[:4] == b"caff":
        return "caf"
    if head[:3] == b"ID3" and len(head) >= 10:
        # Skip the ID3v2 tag (syncsafe size) and look at what follows: mp3 frames, or flac/aac behind a tag.
        size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
        rest = head[10 + size :]
        if len(rest) < 4:
            return "mp3"  # the tag is larger than the sniffed head: trust it, the decode probe decides
        return sniff_format(rest) or ("mp3" if _find_mp3_frames(rest) else None)
    if _find_mp3_frames(head[:SNIFF_BYTES]):
        return "mp3"
    if _is_adts(head):
        return "aac"
    return None


def describe_non_audio(head: bytes) -> str:
    """Best guess, in words, of what a non-audio file is (for ``rejects.detail``)."""
    lowered = head[:64].lstrip().lower()
    for sig, name in _NOT_AUDIO_SIGNATURES:
        if lowered.startswith(sig.lower()) or head.startswith(sig):
            return name
    return "unrecognised content"


def check_size(size_bytes: int, *, max_bytes: int = MAX_BYTES) -> None:
    """Raise ``EMPTY`` for 0 bytes and ``TOO_LARGE`` above ``max_bytes``."""
    if size_bytes <= 0:
        raise RejectError(Reason.EMPTY, "0 bytes")
    if size_bytes > max_bytes:
        raise RejectError(Reason.TOO_LARGE, f"{size_bytes} bytes > limit {max_bytes}")


def check_format(sample_rate: int, channels: int) -> None:
    """Raise ``UNSUPPORTED_FORMAT`` for a sample rate outside :data:`SAMPLE_RATE_RANGE` (Hz) or more than
    :data:`MAX_CHANNELS` channels: checked on the header, before any sample is decoded."""
    lo, hi = SAMPLE_RATE_RANGE
    if not lo <= sample_rate <= hi:
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"sample rate {sample_rate} Hz outside {lo}-{hi} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{channels} channels (1 to {MAX_CHANNELS} are analysed)")


def check_file(path: str | Path, size_bytes: int, *, max_bytes: int = MAX_BYTES) -> str:
    """Check size and content of one file before decoding; return the sniffed container name.

    Raises
    ------
    RejectError
        ``EMPTY``, ``TOO_LARGE``, ``UNREADABLE`` or ``NOT_AUDIO``.
    """
    check_size(size_bytes, max_bytes=max_bytes)
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as exc:
        raise RejectError(Reason.UNREADABLE, f"{type(exc).__name__}: {exc.strerror or exc}") from None
    if not head:
        raise RejectError(Reason.EMPTY, "no bytes could be read")
    kind = sniff_format(head)
    if kind is None:
        raise RejectError(Reason.NOT_AUDIO, describe_non_audio(head))
    return kind
