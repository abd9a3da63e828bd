"""Signals with a known beat for the tempo tests: chords, drums, organ tones."""

from __future__ import annotations

import numpy as np

from tasks.constants import SR
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo.estimate import TempoEstimate, estimate_tempo

#: Four voices (MIDI notes) of I IV V I vi ii V I in C major: a chorale-like progression, a new chord a beat.
CADENCE_CHORDS = [
    (48, 55, 64, 72),
    (53, 57, 65, 72),
    (55, 59, 62, 74),
    (48, 55, 64, 72),
    (45, 57, 64, 72),
    (50, 57, 65, 74),
    (43, 59, 62, 71),
    (48, 55, 64, 72),
]


#: A classical listener's preferred range (the CLI's example): slow chorales lie below the DJ default, which is a
#: promise since analyzer version 8, so the tests of the octave model's evidence on them ask for this one.
CLASSICAL = (55.0, 150.0)


def estimate(y: np.ndarray, **kw) -> TempoEstimate:
    """The tempo estimate of a mono float signal at ``SR``."""
    return estimate_tempo(compute_spectrum(y.astype(np.float32)), **kw)


def drum_pattern(bpm: float, *, duration_s: float, swing: float = 0.0, seed: int = 0) -> np.ndarray:
    """Rock beat: kick on 1 and 3, snare on 2 and 4, closed hats on 8ths; off-beat 8ths late by ``swing`` x 8th."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * SR)
    t = np.arange(int(0.4 * SR)) / SR
    kick = np.sin(2 * np.pi * np.cumsum(50 + 90 * np.exp(-t * 30)) / SR) * np.exp(-t * 7)
    snare = (0.6 * rng.standard_normal(len(t)) + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 18)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 60) * 0.25
    beat = 60.0 / bpm
    out = np.zeros(n + len(t) + int(beat * SR))
    for i in range(int(duration_s / beat) + 1):
        t0 = i * beat
        for s, when in ((kick if i % 2 == 0 else snare, t0), (hat, t0), (hat, t0 + beat / 2 * (1 + swing))):
            k = int(round(when * SR))
            out[k : k + len(s)] += s
    return (0.5 * out[:n] / np.abs(out).max()).astype(np.float32)


def organ(midis: list[int], n: int, *, attack_s: float = 0.03) -> np.ndarray:
    """A chord of organ-like tones (6 harmonics) with a linear attack and a short release, shape (n,)."""
    t = np.arange(n) / SR
    y = sum(np.sin(2 * np.pi * k * 440.0 * 2 ** ((m - 69) / 12) * t) / k for m in midis for k in range(1, 7))
    env = np.minimum(1.0, t / attack_s) * np.minimum(1.0, (n / SR - t) / 0.02)
    return y * env
