"""The musical material of synthesized songs: pitch names, scales, instruments and the styles (drum patterns,
swing, progressions, instrumentation) that :mod:`tasks.synth.songs` renders."""

from __future__ import annotations

from dataclasses import dataclass

PITCH_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MAJOR_SCALE: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE: tuple[int, ...] = (0, 2, 3, 5, 7, 8, 10)  # natural minor; degree 7 below = harmonic-minor V
TIMBRES: tuple[str, ...] = ("saw", "square", "sine", "fm", "pluck", "organ", "piano-ish")

# Chord progressions as scale degrees (0 = tonic). Degree 7 is the major V of harmonic minor.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4), (0, 3, 0, 4), (0, 1, 4, 0)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 3, 7, 0), (0, 6, 5, 7), (0, 5, 3, 7)),
}


@dataclass(frozen=True)
class Style:
    """Drum, bass and chord patterns, one character per 16th.

    Drums: ``x`` hit, ``o`` soft hit, ``O`` open hat. Bass: ``x`` root, ``o`` root an octave up, ``f`` fifth.
    """

    meter: int
    kick: str
    snare: str
    hats: str
    bass: str
    chords: str
    chord_len: float  # chord length in beats; 0 = hold until the next chord hit
    swing_grid: float  # 0.25 swings 16ths, 0.5 swings 8ths
    melody: float  # probability of a melody note per 8th
    snare_kind: str
    bass_timbre: str
    tempo: tuple[float, float]  # plausible BPM range, used to pair styles with tempi in the benchmark


STYLES: dict[str, Style] = {
    "house": Style(
        4,
        "x...x...x...x...",
        "....x.......x...",
        "o.O.o.O.o.O.o.O.",
        "..x...o...x...o.",
        "x.......x.......",
        0,
        0.25,
        0.30,
        "clap",
        "bass",
        (110, 135),
    ),
    "hiphop": Style(
        4,
        "x......x..x.....",
        "....x.......x...",
        "x.o.x.o.x.o.x.oo",
        "x......x..x.....",
        "x...............",
        0,
        0.25,
        0.35,
        "snare",
        "sub",
        (60, 105),
    ),
    "rock": Style(
        4,
        "x.......x.x.....",
        "....x.......x...",
        "x.x.x.x.x.x.x.x.",
        "x.x.x.x.x.x.f.x.",
        "x.......x.......",
        0,
        0.5,
        0.40,
        "snare",
        "bass",
        (88, 182),
    ),
    "dnb": Style(
        4,
        "x.........x.....",
        "....x.......x...",
        "x.o.x.o.x.o.x.o.",
        "x.........x.....",
        "x...............",
        0,
        0.25,
        0.25,
        "snare",
        "sub",
        (150, 190),
    ),
    "ambient-pulse": Style(
        4,
        "o...o...o...o...",
        "................",
        "..o...o...o...o.",
        "x.......x.......",
        "x...............",
        0,
        0.5,
        0.20,
        "snare",
        "sub",
        (60, 130),
    ),
    "reggae": Style(
        4,
        "........x.......",
        "........x.......",
        "x.x.x.x.x.x.x.x.",
        "x..x..f...x.f...",
        "..x...x...x...x.",
        0.4,
        0.5,
        0.30,
        "rim",
        "sub",
        (60, 100),
    ),
    "waltz": Style(
        3,
        "x...........",
        "....o...o...",
        "x.o.x.o.x.o.",
        "x.......f...",
        "....x...x...",
        0.9,
        0.5,
        0.35,
        "snare",
        "bass",
        (80, 180),
    ),
    "funk": Style(
        4,
        "x..x......x..x..",
        "....x..o.o..x...",
        "xoxoxoxoxoxoxoxo",
        "x..o..x...xx..o.",
        "..x..x....x..x..",
        0.3,
        0.25,
        0.40,
        "snare",
        "bass",
        (88, 126),
    ),
}
