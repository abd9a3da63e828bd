"""Write audio in every container cratedig reads, with tags, and check that it decodes back.

Used for test fixtures, the demo library and the benchmark. libsndfile writes wav/flac/ogg/opus/mp3,
PyAV (FFmpeg) writes AAC in .m4a, and mutagen writes the tags, using the field names MusicBrainz Picard
uses (ID3 ``TBPM``/``TKEY``, Vorbis ``BPM``/``KEY``, MP4 ``tmpo`` + ``----:com.apple.iTunes:initialkey``).
"""

from __future__ import annotations

from pathlib import Path

import av
import mutagen
import numpy as np
import soxr
from mutagen.id3 import ID3, TALB, TBPM, TCON, TIT2, TKEY, TPE1
from mutagen.mp4 import MP4, MP4FreeForm

from tasks.audio.sndfile import sf  # not `import soundfile`: the faster system libsndfile
from tasks.errors import CratedigError

#: Extension -> (libsndfile format, subtype); ``.m4a`` and ``.aac`` go through PyAV instead.
_SF_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Extension -> FFmpeg muxer of the AAC files PyAV writes: MP4, or a raw ADTS stream (no container, no tags).
_AAC_MUXERS: dict[str, str] = {".m4a": "ipod", ".aac": "adts"}
WRITABLE_EXTENSIONS: frozenset[str] = frozenset({*_SF_FORMATS, *_AAC_MUXERS})
#: What :func:`write_tags` can tag (a raw ADTS stream holds no tags).
TAGGABLE_EXTENSIONS: frozenset[str] = WRITABLE_EXTENSIONS - {".aac"}
_OPUS_SR = 48000  # libopus codes 8/12/16/24/48 kHz; 48 kHz is what every real .opus file uses
_DURATION_TOLERANCE_S = 0.1


def _channels_last(y: np.ndarray) -> np.ndarray:
    """(n,) or (channels, n) -> (n, channels) float32, as soundfile wants it."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        return y[:, None]
    if y.ndim != 2 or y.shape[0] > 8:
        raise CratedigError(f"audio must have shape (n,) or (channels, n), got {y.shape}")
    return np.ascontiguousarray(y.T)


def _write_aac(path: Path, frames: np.ndarray, sr: int) -> None:
    """AAC-LC via PyAV, mono or stereo, in the container of :data:`_AAC_MUXERS` for ``path``'s extension."""
    n, channels = frames.shape
    with av.open(str(path), mode="w", format=_AAC_MUXERS[path.suffix.lower()]) as container:
        # The "fast" coder halves encoding time; at 96 kbit/s per channel nobody can tell.
        stream = container.add_stream(
            "aac", rate=sr, layout="mono" if channels == 1 else "stereo", options={"aac_coder": "fast"}
        )
        stream.bit_rate = 96_000 * channels
        planar = np.ascontiguousarray(frames.T)
        block = 1024 * 16
        for start in range(0, n, block):
            frame = av.AudioFrame.from_ndarray(
                planar[:, start : start + block], format="fltp", layout=stream.layout.name
            )
            frame.sample_rate = sr
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _bpm_text(bpm: float) -> str:
    return str(int(round(bpm))) if abs(bpm - round(bpm)) < 1e-6 else f"{bpm:.2f}"


def write_tags(
    path: Path,
    *,
    title: str | None = None,
    artist: str | None = None,
    album: str | None = None,
    genre: str | None = None,
    bpm: float | None = None,
    key: str | None = None,
) -> None:
    """Write the given tags into ``path`` (any format :func:`write_audio` writes); None fields are skipped.

    ID3 (wav, mp3) and MP4 store BPM as an integer (their specs say so); Vorbis comments keep 2 decimals.
    """
    ext = path.suffix.lower()
    fields = {"title": title, "artist": artist, "album": album, "genre": genre}
    if all(v is None for v in (*fields.values(), bpm, key)):
        return
    if ext == ".aac":
        raise CratedigError("a raw ADTS stream (.aac) holds no tags")
    if ext in (".wav", ".mp3"):
        audio = mutagen.File(path)
        if audio is None:
            raise CratedigError(f"mutagen cannot open {path}")
        if audio.tags is None:
            audio.add_tags()
        tags: ID3 = audio.tags
        for frame, value in ((TIT2, title), (TPE1, artist), (TALB, album), (TCON, genre)):
            if value is not None:
                tags.add(frame(encoding=3, text=[value]))
        if bpm is not None:
            tags.add(TBPM(encoding=3, text=[str(int(round(bpm)))]))
        if key is not None:
            tags.add(TKEY(encoding=3, text=[key]))
        audio.save()
    elif ext == ".m4a":
        audio = MP4(path)
        if audio.tags is None:
            audio.add_tags()
        atoms = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "genre": "\xa9gen"}
        for name, value in fields.items():
            if value is not None:
                audio.tags[atoms[name]] = [value]
        if bpm is not None:
            audio.tags["tmpo"] = [int(round(bpm))]
        if key is not None:
            audio.tags["----:com.apple.iTunes:initialkey"] = [MP4FreeForm(key.encode())]
        audio.save()
    else:  # flac, ogg vorbis, ogg opus: Vorbis comments
        audio = mutagen.File(path)
        if audio is None:
            raise CratedigError(f"mutagen cannot open {path}")
        if audio.tags is None:
            audio.add_tags()
        for name, value in fields.items():
            if value is not None:
                audio.tags[name.upper()] = [value]
        if bpm is not None:
            audio.tags["BPM"] = [_bpm_text(bpm)]
        if key is not None:
            audio.tags["KEY"] = [key]
        audio.save()


def decoded_duration(path: Path) -> float:
    """Duration in s found by decoding the whole file (soundfile, or PyAV for what libsndfile lacks)."""
    if path.suffix.lower() in _SF_FORMATS:
        # One read of the whole file: libsndfile's chunked MP3 reads make libmpg123 print spurious
        # bit-reservoir errors at the chunk boundaries.
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        return len(y) / sr
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        n = sum(frame.samples for frame in container.decode(stream))
        return n / stream.codec_context.sample_rate


def write_audio(path: Path | str, y: np.ndarray, sr: int, *, verify: bool = True, **tags: str | float | None) -> Path:
    """Encode ``y`` to ``path`` in the format its extension names, tag it, and check it decodes back.

    Parameters
    ----------
    path : Path or str
        Destination; the extension picks the format: ``.wav`` (PCM 16-bit), ``.flac``, ``.ogg`` (Vorbis),
        ``.opus`` (resampled to 48 kHz), ``.mp3``, ``.m4a`` (AAC), ``.aac`` (raw ADTS: takes no tags).
    y : np.ndarray, shape (n,) or (channels, n)
        Audio in [-1, 1], float.
    sr : int
        Sample rate of ``y``, Hz.
    **tags
        The keyword arguments of :func:`write_tags` (``title``, ``artist``, ``album``, ``genre``, ``bpm`` in
        BPM, ``key`` e.g. ``'A minor'``); None leaves a field out.
    verify : bool
        Decode the written file and raise if its duration is off by more than 0.1 s.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CratedigError
        Unknown extension, bad shape, or the written file does not decode to the right duration.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITABLE_EXTENSIONS:
        raise CratedigError(f"cannot write {ext!r}; writable: {sorted(WRITABLE_EXTENSIONS)}")
    frames = _channels_last(y)
    duration = len(frames) / sr
    if ext == ".opus" and sr != _OPUS_SR:
        frames, sr = soxr.resample(frames, sr, _OPUS_SR).astype(np.float32), _OPUS_SR
    frames = np.clip(frames, -1.0, 1.0)
    if ext in _AAC_MUXERS:
        _write_aac(path, frames, sr)
    else:
        fmt, subtype = _SF_FORMATS[ext]
        with sf.SoundFile(path, "w", sr, frames.shape[1], subtype, format=fmt) as f:
            # Bounded writes: libsndfile's Vorbis encoder puts each write's buffer on the stack and
            # segfaults on a long song written in one call.
            for start in range(0, len(frames), 1 << 15):
                f.write(frames[start : start + (1 << 15)])
    write_tags(path, **tags)
    if verify:
        got = decoded_duration(path)
        # AAC/MP3/Opus add encoder delay and pad to whole frames; allow that on top of the tolerance.
        slack = 2048 / sr if ext in (".m4a", ".aac", ".mp3", ".opus") else 0.0
        if not -_DURATION_TOLERANCE_S <= got - duration <= _DURATION_TOLERANCE_S + slack:
            raise CratedigError(f"{path.name}: decodes to {got:.3f} s, wrote {duration:.3f} s")
    return path


def write_long_mix(path: Path | str, songs: list[np.ndarray], sr: int, duration_s: float) -> Path:
    """Write a long FLAC (a DJ mix) by cycling through ``songs`` end to end, a bounded block at a time.

    Parameters
    ----------
    songs : list of np.ndarray, each shape (channels, n)
        Rendered songs, same channel count; one lasting a whole number of bars keeps the beat grid
        (and the tempo) continuous across the joins.
    sr : int
        Sample rate, Hz.
    duration_s : float
        Length of the mix, s: hours are written without holding more than one song in memory.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    total = int(round(duration_s * sr))
    with sf.SoundFile(path, "w", sr, songs[0].shape[0], "PCM_16", format="FLAC") as f:
        written, i = 0, 0
        while written < total:
            song = _channels_last(songs[i % len(songs)])[: total - written]
            for start in range(0, len(song), 1 << 16):
                f.write(np.clip(song[start : start + (1 << 16)], -1.0, 1.0))
            written += len(song)
            i += 1
    return path
