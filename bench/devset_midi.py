"""Notes to a Standard MIDI File and a FLAC rendered by fluidsynth: the dev set's one rendering path.

Pure standard library (the dev set renderer runs in its own venv with music21, not the project's). A note is
placed in quarter notes; the file gets one constant tempo, so the reference tempo of a rendering is exact.
Timing and velocity are humanised a little (players are not sequencers; a grid-exact file would flatter any
onset-based estimator).
"""

from __future__ import annotations

import random
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_QUARTER = 480
DRUM_CHANNEL = 9

#: General MIDI soundfonts that Debian ships as sf2/sf3 (fluid-soundfont-gm, timgm6mb-soundfont,
#: musescore-general-soundfont); freepats is GUS patches, which fluidsynth does not read.
SOUNDFONTS = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",
}


@dataclass(frozen=True)
class Note:
    """One note: ``start`` and ``dur`` in quarter notes, MIDI ``pitch`` and ``velocity`` (1-127), ``channel``
    0-15 (9 is the General MIDI drum kit)."""

    start: float
    dur: float
    pitch: int
    velocity: int
    channel: int


def _varlen(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _track(events: list[tuple[int, bytes]]) -> bytes:
    """A track chunk of ``(absolute tick, message)`` events, sorted by tick (note-offs first at equal ticks)."""
    body, last = bytearray(), 0
    for tick, msg in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):
        body += _varlen(tick - last) + msg
        last = tick
    body += b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def write_midi(
    path: Path,
    notes: list[Note],
    programs: dict[int, int],
    quarter_bpm: float,
    rng: random.Random,
    jitter_s: float = 0.008,
) -> None:
    """Write ``notes`` as a format-0 MIDI file at ``quarter_bpm`` (quarter notes per minute).

    Parameters
    ----------
    programs : dict
        Channel -> General MIDI program (0-127) for every melodic channel used.
    jitter_s : float
        Standard deviation of the onset jitter, s (Gaussian, clipped to 3 sigma).
    """
    us_per_quarter = int(round(60e6 / quarter_bpm))
    ticks_per_s = TICKS_PER_QUARTER * quarter_bpm / 60.0
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big"))]
    for ch, prog in programs.items():
        events.append((0, bytes([0xC0 | ch, prog & 0x7F])))
        events.append((0, bytes([0xB0 | ch, 91, rng.randint(20, 70)])))  # reverb send: rooms differ
    for n in notes:
        shift = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * jitter_s * ticks_per_s
        on = max(0, int(round(n.start * TICKS_PER_QUARTER + shift)))
        off = max(on + 1, int(round((n.start + n.dur) * TICKS_PER_QUARTER + shift * 0.5)))
        vel = max(1, min(127, n.velocity + rng.randint(-6, 6)))
        events.append((on, bytes([0x90 | n.channel, n.pitch & 0x7F, vel])))
        events.append((off, bytes([0x80 | n.channel, n.pitch & 0x7F, 0])))
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    path.write_bytes(header + _track(events))


def render(midi: Path, flac: Path, soundfont: str, gain: float = 0.5) -> None:
    """Render ``midi`` to a 44.1 kHz FLAC with fluidsynth and the soundfont named ``soundfont``."""
    part = flac.with_suffix(".part.flac")  # renamed when complete: an interrupted build leaves no short file
    # Dynamic sample loading decodes only the presets a file uses: the same samples, but the compressed sf3
    # costs 1 CPU s to open instead of 6.
    cmd = ["fluidsynth", "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", f"{gain:.2f}", "-r", "44100"]
    cmd += ["-T", "flac", "-F", str(part), SOUNDFONTS[soundfont], str(midi)]
    subprocess.run(cmd, check=True, capture_output=True)
    part.rename(flac)


def clip(notes: list[Note], quarters: float) -> list[Note]:
    """The notes that start before ``quarters``, cut to end by it (a rendering of the first seconds)."""
    return [
        Note(n.start, min(n.dur, quarters - n.start), n.pitch, n.velocity, n.channel)
        for n in notes
        if n.start < quarters
    ]
