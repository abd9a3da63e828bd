"""The demo library: two dozen synthetic songs in two families of related tempi and keys, in every supported format,
with tags and ground truth.

Used by the notebooks, the CLI walkthrough and end-to-end tests. Building is idempotent: a complete
library (every file present and ``ground_truth.csv`` matching the specs) is left alone.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tasks.synth.files import write_audio
from tasks.synth.songs import SongSpec, render_song
from tasks.synth.styles import PITCH_NAMES, TIMBRES

#: Formats cycled over the songs, so each appears at least ``len(demo_specs()) // 6`` times.
DEMO_FORMATS: tuple[str, ...] = (".flac", ".ogg", ".opus", ".mp3", ".wav", ".m4a")
DEMO_ARTIST = "cratedig synth"
DEMO_ALBUM = "cratedig demo library"
#: Files that must be rejected (truncated container; HTML with an audio extension).
BROKEN_FILES: tuple[str, ...] = ("broken_truncated.flac", "not_really.mp3")
GROUND_TRUTH = "ground_truth.csv"
_COLUMNS = ("file", "bpm", "key", "style", "timbre", "duration_s")
_FILE_SR = 44100  # what real libraries hold; opus files are rendered at their native 48 kHz instead
_OPUS_SR = 48000
_NOT_AUDIO = """<!DOCTYPE html>
<html><head><title>404 Not Found</title></head>
<body><h1>Not Found</h1><p>The requested track was not found on this server.</p></body></html>
"""


#: The demo's two families of songs in related tempi and keys, so a mix from any seed has somewhere to go:
#: (tempi in BPM, keys as (tonic pitch class, mode), styles), cycled in step. The first lives at 120-126 BPM in
#: Camelot 8A/8B/9A/9B; the second at 84-88 and 168-175 BPM (half/double time of each other) in 4A/4B/5A/5B.
#: Within a family every song is tempo-compatible with every other (within 6 %) and key-compatible with 8 of
#: the 11 others, so a greedy mix from any seed lasts at least 9 tracks when tempo and key are estimated right.
DEMO_FAMILIES: tuple[tuple[tuple[float, ...], tuple[tuple[int, str], ...], tuple[str, ...]], ...] = (
    (
        (120, 120.5, 121, 121.5, 122, 122.5, 123, 123.5, 124, 124.5, 125, 126),
        ((9, "minor"), (0, "major"), (4, "minor"), (7, "major")),
        ("house", "funk", "rock", "house", "ambient-pulse", "funk", "house", "rock", "waltz", "house", "funk", "house"),
    ),
    (
        (84, 168, 85, 169, 85.5, 170, 86, 171.5, 87, 172.5, 88, 175),
        ((5, "minor"), (8, "major"), (0, "minor"), (3, "major")),
        ("hiphop", "dnb", "reggae", "rock", "hiphop", "dnb", "reggae", "waltz", "ambient-pulse", "dnb", "funk", "rock"),
    ),
)


def demo_specs() -> list[SongSpec]:
    """24 songs of 30-90 s in two families of related tempi and keys (:data:`DEMO_FAMILIES`), interleaved,
    with every style and timbre; some swung, drifting or noisy."""
    members = [
        (bpm, key, style)
        for bpms, keys, styles in DEMO_FAMILIES
        for j, (bpm, style) in enumerate(zip(bpms, styles))
        for key in [keys[j % len(keys)]]
    ]
    half = len(members) // 2
    order = [m for pair in zip(members[:half], members[half:]) for m in pair]  # A, B, A, B ...
    specs = []
    for i, (bpm, (tonic, mode), style) in enumerate(order):
        specs.append(
            SongSpec(
                bpm=float(bpm),
                tonic=tonic,
                mode=mode,
                duration_s=(30.0, 45.0, 60.0, 90.0)[(i + i // 2) % 4],
                style=style,
                timbre=TIMBRES[i % len(TIMBRES)],
                swing=0.15 if i % 5 == 3 else 0.0,
                tempo_drift=0.005 if i % 7 == 6 else 0.0,
                noise_db=25.0 if i % 6 == 5 else None,
                seed=1000 + i,
            )
        )
    return specs


def demo_title(index: int, spec: SongSpec) -> str:
    """Tag title of the ``index``-th (0-based) demo song, e.g. ``'Demo 07 — house in A minor'``."""
    return f"Demo {index + 1:02d} — {spec.style} in {spec.key}"


def _file_name(index: int, spec: SongSpec, ext: str) -> str:
    tonic = PITCH_NAMES[spec.tonic].replace("#", "s")
    return f"demo_{index + 1:02d}_{spec.style}_{tonic}_{spec.mode}{ext}"


def demo_rows(specs: Sequence[SongSpec] | None = None) -> list[dict]:
    """The ground-truth rows of a library of ``specs`` (default :func:`demo_specs`), without building it."""
    specs = demo_specs() if specs is None else specs
    return [
        {
            "file": _file_name(i, s, DEMO_FORMATS[i % len(DEMO_FORMATS)]),
            "bpm": s.bpm,
            "key": s.key,
            "style": s.style,
            "timbre": s.timbre,
            "duration_s": s.duration_s,
        }
        for i, s in enumerate(specs)
    ]


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _write_song(job: tuple[int, SongSpec, str]) -> str:
    """Render, encode and tag one song; written under a temporary name and renamed, so never half there."""
    index, spec, path = job
    final = Path(path)
    sr = _OPUS_SR if final.suffix == ".opus" else _FILE_SR
    tmp = final.with_name(f".partial-{final.name}")
    write_audio(
        tmp,
        render_song(spec, sr=sr),
        sr,
        title=demo_title(index, spec),
        artist=DEMO_ARTIST,
        album=DEMO_ALBUM,
        genre=spec.style,
        bpm=spec.bpm,
        key=spec.key,
    )
    os.replace(tmp, final)
    return final.name


def _write_broken(dest: Path, spec: SongSpec) -> None:
    short = SongSpec(**{**spec.__dict__, "duration_s": 8.0})
    tmp = dest / ".partial-broken.flac"
    write_audio(tmp, render_song(short, sr=_FILE_SR), _FILE_SR, title="Broken on purpose", artist=DEMO_ARTIST)
    data = tmp.read_bytes()
    (dest / BROKEN_FILES[0]).write_bytes(data[: int(len(data) * 0.3)])
    tmp.unlink()
    (dest / BROKEN_FILES[1]).write_text(_NOT_AUDIO, encoding="utf-8")


def _is_complete(dest: Path, rows: list[dict]) -> bool:
    truth = dest / GROUND_TRUTH
    if not truth.is_file() or truth.read_text(encoding="utf-8") != _csv_text(rows):
        return False
    names = [r["file"] for r in rows] + list(BROKEN_FILES)
    return all((dest / n).is_file() and (dest / n).stat().st_size > 0 for n in names)


def build_demo_library(
    dest: Path | str, *, force: bool = False, specs: Sequence[SongSpec] | None = None, processes: int | None = None
) -> list[dict]:
    """Write the demo songs to ``dest`` over flac/ogg/opus/mp3/wav/m4a, tagged, plus ground truth.

    Parameters
    ----------
    dest : Path or str
        Directory, created if missing.
    force : bool
        Rebuild everything even if the library is complete.
    specs : sequence of SongSpec, optional
        Songs to write; default :func:`demo_specs`.
    processes : int, optional
        Worker processes for rendering + encoding; default the CPU count (at most 4).

    Returns
    -------
    list of dict
        One row per song, as in ``ground_truth.csv``: file (name in ``dest``), bpm (BPM), key, style,
        timbre, duration_s (s). ``dest`` also gets :data:`BROKEN_FILES`, which are not in the rows.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    specs = list(demo_specs() if specs is None else specs)
    rows = demo_rows(specs)
    if not force and _is_complete(dest, rows):
        return rows
    truth = dest / GROUND_TRUTH
    # Stale ground truth means the specs changed: every song may differ, so redo them all.
    redo_all = force or not truth.is_file() or truth.read_text(encoding="utf-8") != _csv_text(rows)
    truth.unlink(missing_ok=True)  # the ground truth is written last and marks a finished build
    jobs = [
        (i, s, str(dest / r["file"]))
        for i, (s, r) in enumerate(zip(specs, rows))
        if redo_all or not (dest / r["file"]).is_file()
    ]
    jobs.sort(key=lambda job: -job[1].duration_s)  # longest first balances the pool
    workers = min(processes or min(os.cpu_count() or 1, 4), len(jobs))
    if workers > 1:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            list(pool.map(_write_song, jobs))
    else:
        for job in jobs:
            _write_song(job)
    if redo_all or not all((dest / n).is_file() for n in BROKEN_FILES):
        _write_broken(dest, specs[0])
    truth.write_text(_csv_text(rows), encoding="utf-8")
    return rows
