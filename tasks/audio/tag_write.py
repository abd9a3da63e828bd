"""Write BPM, key and ReplayGain tags to spec, never risking the audio.

Each container gets its own fields: ID3v2.4 (mp3, wav, aiff) ``TBPM`` as an integer plus ``TXXX:BPM`` with
the 0.01 value, ``TKEY``, ``TXXX:REPLAYGAIN_TRACK_GAIN`` / ``_PEAK``; Vorbis comments (flac, ogg) ``BPM``,
``INITIALKEY``, ``REPLAYGAIN_TRACK_GAIN`` / ``_PEAK``; Opus ``BPM``, ``INITIALKEY`` and ``R128_TRACK_GAIN``
(RFC 7845: Q7.8 dB to -23 LUFS; ReplayGain fields are not used in Opus); MP4 ``tmpo`` (integer) and the
iTunes freeform ``initialkey``, ``replaygain_track_gain`` / ``_peak``.

The fields follow the codec, not the name: Opus audio in a ``.ogg`` or ``.oga`` file gets Opus' fields, Vorbis
in a ``.opus`` file Vorbis'. An ID3v2.3 tag stays ID3v2.3 with its frames as they were read (the new ones
written in 2.3): mutagen's conversion to 2.4 would drop the 2.3 frames 2.4 has no place for (TYER, TDAT, IPLS),
and its conversion to 2.3 the 2.4 frames that taggers also write into 2.3 tags (TSOP, TSOA, TSOT).

A write goes to a copy in the same folder (a hidden name with no audio extension, so a scan ignores a
leftover) with the original's owner, group and permission bits, is verified (tags read back; both files decoded
and every sample compared), flushed to disk and only then renamed over the original, and the rename flushed
too: an error or a crash at any point leaves the original file as it was, or the tagged copy in its place.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TBPM, TKEY, TXXX
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4FreeForm
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from tasks.audio.decode import backends_for, open_native
from tasks.durable import flush_file, flush_folder
from tasks.errors import CratedigError

#: What ``--fields`` may name.
FIELDS: tuple[str, ...] = ("bpm", "key", "replaygain")
#: Reference loudness of ``R128_*`` gains (EBU R128), LUFS.
R128_REFERENCE_LUFS = -23.0
_ID3 = {".mp3": MP3, ".wav": WAVE, ".wave": WAVE, ".aif": AIFF, ".aiff": AIFF}
_OGG = (OggVorbis, OggFLAC, OggOpus)  # any Ogg name may hold any of them
_VORBIS = {".flac": (FLAC,), ".ogg": _OGG, ".oga": _OGG, ".opus": (OggOpus, OggVorbis, OggFLAC)}
_MP4 = {".m4a": MP4, ".mp4": MP4}
_FREEFORM = "----:com.apple.iTunes:"
WRITABLE_EXTENSIONS: frozenset[str] = frozenset({*_ID3, *_VORBIS, *_MP4})


class TagWriteError(CratedigError):
    """A tag write that was refused or undone; the original file is untouched."""


@dataclass(frozen=True)
class TagValues:
    """Values to write; ``None`` leaves a field alone.

    Attributes
    ----------
    bpm : float, optional
        Tempo, BPM.
    key : str, optional
        The key as it should read, already in the chosen notation (``'Am'``, ``'8A'``, ``'1m'``).
    loudness_lufs : float, optional
        EBU R128 integrated loudness, LUFS: gives the ReplayGain 2 gain (to -18 LUFS) and Opus' R128 gain.
    replaygain_db : float, optional
        ReplayGain 2 track gain, dB.
    peak_dbtp : float, optional
        True peak, dBTP (written as a linear peak).
    """

    bpm: float | None = None
    key: str | None = None
    loudness_lufs: float | None = None
    replaygain_db: float | None = None
    peak_dbtp: float | None = None


def _bpm_text(bpm: float) -> str:
    """BPM with its 0.01 resolution; a whole tempo as an integer (``'124'``, not ``'124.00'``)."""
    return f"{bpm:.2f}".removesuffix(".00")


def _whole_bpm(bpm: float) -> str:
    """BPM to the nearest whole number, halves up (``124.5`` -> ``'125'``), as DJ software shows it, from the value
    the two-decimal fields hold, so that the two never disagree; Python's ``round`` goes to the even neighbour
    (124.5 -> 124, 125.5 -> 126)."""
    return str(math.floor(float(f"{bpm:.2f}") + 0.5))  # from the 2-decimal text: 124.499 is "124.50", so 125


def _tag_kind(path: str | Path, ext: str) -> str:
    """``'id3'``, ``'mp4'``, ``'opus'`` or ``'vorbis'``: whose fields the file takes (an Ogg file is opened to
    tell Opus from Vorbis and FLAC)."""
    if ext not in WRITABLE_EXTENSIONS:
        kind = f"{ext} files" if ext else "files without an extension"
        raise TagWriteError(f"{Path(path).name}: cannot write tags to {kind}; not tagged")
    if ext in _ID3:
        return "id3"
    if ext in _MP4:
        return "mp4"
    if ext == ".flac":
        return "vorbis"
    return "opus" if isinstance(_open(path, ext), OggOpus) else "vorbis"


def planned_tags(path: str | Path, values: TagValues, *, ext: str | None = None) -> dict[str, str]:
    """The container's tag names and the text each should hold (MP4 ``tmpo`` as a number's text)."""
    kind = _tag_kind(path, ext or Path(path).suffix.lower())
    out: dict[str, str] = {}
    gain = None if values.replaygain_db is None else f"{values.replaygain_db:.2f} dB"
    peak = None if values.peak_dbtp is None else f"{10 ** (values.peak_dbtp / 20):.6f}"
    if kind == "id3":
        names = {"TBPM": "bpm_int", "TXXX:BPM": "bpm_2", "TKEY": "key"}
        names |= {"TXXX:REPLAYGAIN_TRACK_GAIN": "gain", "TXXX:REPLAYGAIN_TRACK_PEAK": "peak"}
    elif kind == "mp4":
        names = {"tmpo": "bpm_int", f"{_FREEFORM}initialkey": "key"}
        names |= {f"{_FREEFORM}replaygain_track_gain": "gain", f"{_FREEFORM}replaygain_track_peak": "peak"}
    elif kind == "opus":
        names = {"BPM": "bpm", "INITIALKEY": "key", "R128_TRACK_GAIN": "r128"}
    else:
        names = {"BPM": "bpm", "INITIALKEY": "key", "REPLAYGAIN_TRACK_GAIN": "gain", "REPLAYGAIN_TRACK_PEAK": "peak"}
    texts = {
        "bpm_int": None if values.bpm is None else _whole_bpm(values.bpm),
        "bpm": None if values.bpm is None else _bpm_text(values.bpm),
        "bpm_2": None if values.bpm is None else f"{values.bpm:.2f}",
        "key": values.key,
        "gain": gain,
        "peak": peak,
        "r128": None
        if values.loudness_lufs is None
        else str(max(-32768, min(32767, round((R128_REFERENCE_LUFS - values.loudness_lufs) * 256)))),
    }
    for name, what in names.items():
        if texts[what] is not None:
            out[name] = texts[what]
    return out


def _open(path: str | Path, ext: str, **kwargs) -> mutagen.FileType:
    """The file with the mutagen class its extension names (whatever the file's own name says); ``kwargs`` go to
    the class (``v2_version`` for ID3)."""
    kinds = (_ID3.get(ext) or _MP4.get(ext),) if ext in _ID3 or ext in _MP4 else _VORBIS[ext]
    errors = []
    for kind in kinds:
        try:
            return kind(path, **kwargs)
        except Exception as exc:  # mutagen raises a different type per container
            errors.append(f"{kind.__name__}: {exc}")
    raise TagWriteError(f"cannot read the tags of {Path(path).name}: {'; '.join(errors)}"[:300])


def read_tag_texts(path: str | Path, names: list[str], *, ext: str | None = None) -> dict[str, str | None]:
    """The current text of each container tag name (``None`` when absent)."""
    ext = ext or Path(path).suffix.lower()
    f = _open(path, ext)
    tags = f.tags
    out: dict[str, str | None] = dict.fromkeys(names)
    if tags is None:
        return out
    for name in names:
        if isinstance(tags, ID3):
            frame = tags.get(name)
            out[name] = str(frame.text[0]) if frame is not None and frame.text else None
        elif name in tags:
            value = tags[name]
            first = value[0] if isinstance(value, list) and value else value
            if isinstance(first, MP4FreeForm) or isinstance(first, bytes):
                first = bytes(first).decode("utf-8", "replace")
            out[name] = None if first in (None, []) else str(first)
    return out


def tag_changes(path: str | Path, values: TagValues) -> list[tuple[str, str | None, str]]:
    """``(tag name, current text, new text)`` for every tag that would change."""
    want = planned_tags(path, values)
    have = read_tag_texts(path, list(want))
    return [(name, have[name], text) for name, text in want.items() if have[name] != text]


def _set(f: mutagen.FileType, want: dict[str, str]) -> None:
    if f.tags is None:
        f.add_tags()
    tags = f.tags
    for name, text in want.items():
        if isinstance(tags, ID3):
            if name.startswith("TXXX:"):
                tags.add(TXXX(encoding=3, desc=name[5:], text=[text]))
            else:
                tags.add({"TBPM": TBPM, "TKEY": TKEY}[name](encoding=3, text=[text]))
        elif name == "tmpo":
            tags[name] = [int(text)]
        elif name.startswith(_FREEFORM):
            tags[name] = [MP4FreeForm(text.encode("utf-8"))]
        else:
            tags[name] = [text]


def _id3_version(f: mutagen.FileType) -> int:
    """3 when the file holds an ID3v2.3 tag, else 4 (no tag, 2.4, or a 2.2 tag, which mutagen cannot write)."""
    return 3 if isinstance(f.tags, ID3) and tuple(f.tags.version[:2]) == (2, 3) else 4


def audio_digest(path: str | Path, *, backend: str) -> tuple[int, int, int, str]:
    """``(sample rate Hz, channels, samples per channel, BLAKE2b of every decoded sample)`` of a file."""
    h = hashlib.blake2b(digest_size=16)
    n = 0
    with open_native(path, backend) as stream:
        for block in stream.blocks:
            h.update(block.T.tobytes())  # interleaved, as decoded
            n += block.shape[1]
        return stream.sr, stream.channels, n, h.hexdigest()


def _verify(original: Path, copy: Path, want: dict[str, str], ext: str) -> None:
    got = read_tag_texts(copy, list(want), ext=ext)
    wrong = {k: v for k, v in got.items() if v != want[k]}
    if wrong:
        raise TagWriteError(f"{original.name}: tags did not read back as written: {wrong}")
    backend = backends_for(original)[0]
    if audio_digest(original, backend=backend) != audio_digest(copy, backend=backend):
        raise TagWriteError(f"{original.name}: the audio would change; nothing written")


def check_replaceable(path: str | Path) -> os.stat_result:
    """The stat of the file ``path`` names (a symbolic link's target), or :class:`TagWriteError` when a tagged
    copy may not replace it: it has several hard links (the rename would leave the other names on the old file)
    is read-only (root may write it, but the user marked it so), belongs to a user or group that the copy
    could not be given (only root can give a file away), or sits in a folder this user cannot write in."""
    link = Path(path)
    st = os.stat(link)
    if st.st_nlink > 1:
        raise TagWriteError(f"{link.name} has {st.st_nlink} hard links; not tagged")
    if not st.st_mode & 0o222:
        raise TagWriteError(f"{link.name} is read-only; not tagged (make it writable to tag it)")
    if os.geteuid() != 0 and (st.st_uid != os.geteuid() or st.st_gid not in (os.getegid(), *os.getgroups())):
        raise TagWriteError(f"{link.name} belongs to another user or group, which a tagged copy would not; not tagged")
    if not os.access(Path(os.path.realpath(link)).parent, os.W_OK | os.X_OK):
        raise TagWriteError(f"{link.name}: cannot write a copy in its folder (permission denied); not tagged")
    return st


def write_tags_safely(path: str | Path, values: TagValues) -> list[tuple[str, str | None, str]]:
    """Write ``values`` to ``path`` through a verified copy (module docstring); returns the changes made.

    Nothing is written when nothing would change. Raises :class:`TagWriteError` (the original untouched) when
    the container is not writable, the tags do not read back or the decoded audio differs by one sample, the
    file has several hard links (the rename would split them), is read-only, or belongs to a user or group the
    copy cannot be given. A symbolic link's target is tagged and the link kept; the copy keeps the file's
    owner, group and permission bits.
    """
    link = Path(path)
    path = Path(os.path.realpath(link))  # a symbolic link stays a link: its target is tagged
    ext = link.suffix.lower()
    want = planned_tags(path, values, ext=ext)
    have = read_tag_texts(path, list(want), ext=ext)
    changes = [(name, have[name], text) for name, text in want.items() if have[name] != text]
    if not changes:
        return []
    st = check_replaceable(link)
    want = {name: new for name, _, new in changes}
    tmp = path.with_name(f".{path.name}.cratedig-{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            shutil.copy2(path, tmp)
        except OSError as exc:
            raise TagWriteError(f"{link.name}: cannot write a copy in its folder ({exc.strerror}); not tagged") from exc
        if (os.stat(tmp).st_uid, os.stat(tmp).st_gid) != (st.st_uid, st.st_gid):
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError as exc:
                raise TagWriteError(
                    f"{link.name} belongs to another user or group, which a tagged copy would not; not tagged"
                ) from exc
        f = _open(tmp, ext)
        v2 = _id3_version(f)
        if v2 == 3:  # reopened untranslated: its frames are saved back as they were read (module docstring)
            f = _open(tmp, ext, translate=False)
        _set(f, want)
        f.save(**({"v2_version": 3} if v2 == 3 else {}))
        _verify(path, tmp, want, ext)
        flush_file(tmp)
        os.replace(tmp, path)
        flush_folder(path.parent)
    except TagWriteError:
        raise
    except Exception as exc:
        raise TagWriteError(f"{path.name}: {type(exc).__name__}: {exc}"[:300]) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return changes
