"""Accompaniment for the dev set: chords fitted to a melody, comping patterns, bass lines and drum kits.

Everything is placed in quarter notes from the start of a bar; a meter is ``(bar, beat)`` in quarter notes
(6/8: 3.0 and 1.5; 2/2: 4.0 and 2.0; 3/4: 3.0 and 1.0). Standard library only (see :mod:`bench.devset_midi`).
"""

from __future__ import annotations

import random

from bench.devset_midi import DRUM_CHANNEL, Note

#: Scale steps of the modes that ABC tunes and scores use, semitones above the tonic.
MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
}
#: The major/minor key a mode's tonic is scored as (its third): Dorian A is A minor, Mixolydian G is G major.
MODE_AS_KEY = {"major": "major", "lydian": "major", "mixolydian": "major", "minor": "minor", "dorian": "minor"}
MODE_AS_KEY["phrygian"] = "minor"

KICK, SNARE, CLOSED_HAT, OPEN_HAT, RIDE, SIDE_STICK = 36, 38, 42, 46, 51, 37
_PREFERENCE = {0: 0.3, 3: 0.15, 4: 0.15, 5: 0.05}  # I, IV, V, vi: the common chords of a tune


def meter_of(numerator: int, denominator: int) -> tuple[float, float]:
    """``(bar, beat)`` in quarter notes: compound meters (6/8, 9/8, 12/8) beat in dotted quarters, 2/2 3/2 4/2
    in halves, the rest in the denominator's note."""
    bar = numerator * 4.0 / denominator
    if denominator == 8 and numerator % 3 == 0 and numerator > 3:
        return bar, 1.5
    if denominator == 2:
        return bar, 2.0
    return bar, 4.0 / denominator


def triad(tonic: int, mode: str, degree: int, harmonic_minor: bool = False) -> tuple[int, int, int]:
    """Pitch classes of the diatonic triad on ``degree`` (0 = I); ``harmonic_minor`` makes V major in minor."""
    steps = list(MODES[mode])
    if harmonic_minor and mode == "minor" and degree == 4:
        steps[6] = 11
    return tuple((tonic + steps[(degree + i) % 7]) % 12 for i in (0, 2, 4))  # type: ignore[return-value]


def fit_chord(
    melody: list[Note], start: float, end: float, tonic: int, mode: str, rng: random.Random, harmonic_minor: bool
) -> int:
    """The degree whose triad covers most of the melody sounding in ``[start, end)`` (by duration), with a
    preference for I, IV, V and vi; ties are broken at random."""
    weight = [0.0] * 12
    for n in melody:
        overlap = min(n.start + n.dur, end) - max(n.start, start)
        if overlap > 0:
            weight[n.pitch % 12] += overlap
    total = sum(weight) or 1.0
    best, best_score = 0, -1.0
    for degree in range(7):
        if degree == 6 or (degree == 1 and mode == "minor"):  # diminished triads: not a tune's chord
            continue
        score = sum(weight[pc] for pc in triad(tonic, mode, degree, harmonic_minor)) / total
        score += _PREFERENCE.get(degree, 0.0) + rng.uniform(0.0, 0.05)
        if score > best_score:
            best, best_score = degree, score
    return best


def _voicing(pcs: tuple[int, int, int], low: int) -> list[int]:
    """The triad's pitches in close position from the first pitch at or above ``low``."""
    root = low + (pcs[0] - low) % 12
    return sorted(root + (pc - pcs[0]) % 12 for pc in pcs)


def comp_bar(
    pcs: tuple[int, int, int], bar0: float, meter: tuple[float, float], style: str, ch: int, bass_ch: int | None
) -> list[Note]:
    """One bar of accompaniment on the chord ``pcs`` from ``bar0``.

    ``style``: ``'oompah'`` (bass on the first beat of each half bar, chord on the other beats), ``'block'``
    (chord on every beat), ``'arpeggio'`` (chord tones in 8ths) or ``'pad'`` (one chord held all bar). The
    bass (root, an octave and more below) goes to ``bass_ch``, or with the chord when it is None.
    """
    bar, beat = meter
    beats = max(1, int(round(bar / beat)))
    chord, bass = _voicing(pcs, 55), 36 + pcs[0] % 12
    bch = ch if bass_ch is None else bass_ch
    out: list[Note] = []
    if style == "pad":
        out += [Note(bar0, bar * 0.95, p, 60, ch) for p in chord] + [Note(bar0, bar * 0.95, bass, 70, bch)]
    elif style == "arpeggio":
        seq = [bass, *chord, chord[1] + 0, chord[0] + 12]
        step = beat / 3 if beat == 1.5 else beat / 2
        for i in range(int(round(bar / step))):
            p = seq[i % len(seq)]
            out.append(Note(bar0 + i * step, step * 1.8, p, 72 if i == 0 else 58, bch if p == bass else ch))
    else:
        for b in range(beats):
            t = bar0 + b * beat
            strong = b == 0 or (beats == 4 and b == 2)
            if style == "oompah" and strong:
                out.append(Note(t, beat * 0.8, bass if b == 0 else bass + 7, 80, bch))
            else:
                out += [Note(t, beat * 0.6, p, 62 if b else 70, ch) for p in chord]
                if b == 0:
                    out.append(Note(t, beat * 0.9, bass, 78, bch))
    return out


def drum_bar(bar0: float, meter: tuple[float, float], style: str) -> list[Note]:
    """One bar of the General MIDI kit from ``bar0``: ``'rock'`` (kick on 1 and 3, snare on the back beats,
    hats in 8ths), ``'disco'`` (kick every beat, open hat between), ``'halftime'`` (snare on 3 only), ``'funk'``
    (hats in 16ths, syncopated kick); compound and triple meters use their own backbeat."""
    bar, beat = meter
    beats = max(1, int(round(bar / beat)))
    sub = 3 if beat == 1.5 else (4 if style == "funk" else 2)
    out = []
    for b in range(beats):
        t = bar0 + b * beat
        for s in range(sub):
            hat = OPEN_HAT if style == "disco" and s == sub // 2 else CLOSED_HAT
            if style != "disco" or s == sub // 2 or sub == 3:
                out.append(Note(t + s * beat / sub, 0.1, hat, 70 if s == 0 else 52, DRUM_CHANNEL))
        if style == "disco" or b == 0 or (beats == 4 and b == 2 and style != "halftime"):
            out.append(Note(t, 0.2, KICK, 100, DRUM_CHANNEL))
        backbeat = (b % 2 == 1) if beats != 3 else b > 0
        if style == "halftime":
            backbeat = b == beats // 2 and beats > 1
        if backbeat:
            out.append(Note(t, 0.2, SNARE if beats != 3 else SIDE_STICK, 95 if beats != 3 else 70, DRUM_CHANNEL))
        if style == "funk" and b % 2 == 1:
            out.append(Note(t + beat * 0.75, 0.1, KICK, 85, DRUM_CHANNEL))
    return out


def bass_bar(pcs: tuple[int, int, int], bar0: float, meter: tuple[float, float], ch: int) -> list[Note]:
    """A bass line: root on each beat, the fifth on the off-beats of even beats."""
    bar, beat = meter
    root = 36 + pcs[0] % 12
    fifth = 36 + (pcs[2] - pcs[0]) % 12 + pcs[0] % 12
    out = []
    for b in range(max(1, int(round(bar / beat)))):
        out.append(Note(bar0 + b * beat, beat * 0.45, root if b % 2 == 0 else fifth, 88, ch))
        if b % 2 == 1:
            out.append(Note(bar0 + (b + 0.5) * beat, beat * 0.4, root, 70, ch))
    return out


def melody_bars(
    tonic: int, mode: str, degrees: list[int], meter: tuple[float, float], rng: random.Random, ch: int
) -> list[Note]:
    """A generated tune over ``degrees`` (one chord per bar): chord tones on beats, scale steps between, rests
    now and then (for the band family, which has no score)."""
    bar, beat = meter
    steps = MODES[mode]
    scale = sorted({60 + tonic % 12 + o + s - 12 for o in (0, 12, 24) for s in steps})
    scale = [p for p in scale if 57 <= p <= 84]
    out, idx = [], len(scale) // 2
    for i, degree in enumerate(degrees):
        chord = triad(tonic, mode, degree, harmonic_minor=True)
        t, end = i * bar, (i + 1) * bar
        while t < end - 1e-6:
            dur = rng.choice([beat / 2, beat / 2, beat, beat * 2] if beat != 1.5 else [0.5, 1.0, 1.5])
            dur = min(dur, end - t)
            on_beat = abs((t / beat) - round(t / beat)) < 1e-6
            if on_beat:  # nearest chord tone
                cands = [j for j, p in enumerate(scale) if p % 12 in chord]
                idx = min(cands, key=lambda j: abs(j - idx))
            else:
                idx = max(0, min(len(scale) - 1, idx + rng.choice([-2, -1, -1, 1, 1, 2])))
            if rng.random() > 0.1:
                out.append(Note(t, dur * 0.9, scale[idx], 84 if on_beat else 70, ch))
            t += dur
    return out
