"""The tempo octave model: which multiple of the tracked pulse is the beat.

Candidates are ratios of the pulse (1/8 ... 4); each is described by where it sits in the preferred BPM range
and by the pulse strength of four onset bands and of the harmonic change
(:func:`tasks.tempo_envelopes.harmonic_change`) at levels around it; a linear score with weights fitted by
``bench/tempo_eval.py --fit`` (synth seeds 1-4, metronomes, synthesized chorales, drum loops; seed 0 and the
rendered Bach chorales held out) gives each candidate a probability.
"""
from __future__ import annotations

import numpy as np

#: Tempi that can be returned, BPM; ``bpm_range`` only sets the preference inside it.
SEARCH_RANGE: tuple[float, float] = (40.0, 250.0)

# Candidate ratios to the pulse, levels scored around each.
RATIOS = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4)
LEVELS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 1, 3 / 2, 2)
W_PRIOR = np.array([-5.626, -1.506])
W_LEVELS = np.array([  # rows: all, low, mid, high onset bands, harmonic change; columns: LEVELS
    [1.712, 0.222, 1.696, -0.53, 1.482, -0.845, 2.315],
    [0.125, 1.811, -0.693, 0.23, 0.484, 0.548, 1.517],
    [-0.356, 0.917, -0.196, 0.717, 0.881, 0.07, 1.322],
    [-0.329, 0.4, -1.076, -0.177, 0.48, 2.808, 1.875],
    [1.587, 0.375, 0.478, -1.098, 0.64, -0.448, 2.12],
])


class Amplitudes:
    """Envelope (rows of ``bands``) amplitudes at multiples ``m`` of a tracked pulse,
    ``sqrt(2) |mean(o exp(-2 pi i m phase))| / std``.

    Squared, this is the share of a band's variance at that rate; cached per multiple.
    """

    def __init__(self, bands: np.ndarray, phase: np.ndarray) -> None:
        b = bands - bands.mean(axis=1, keepdims=True)
        self._b = b / (b.std(axis=1, keepdims=True) + 1e-12) * (np.sqrt(2.0) / b.shape[1])
        self._phase = 2.0 * np.pi * phase
        self._cache: dict[float, np.ndarray] = {}

    def __call__(self, m: float) -> np.ndarray:
        """Complex amplitudes of the envelopes at ``m`` times the pulse rate, shape (n_envelopes,)."""
        key = round(m, 9)
        if key not in self._cache:
            arg = m * self._phase
            self._cache[key] = self._b @ np.cos(arg) - 1j * (self._b @ np.sin(arg))
        return self._cache[key]


def octave_features(amp: Amplitudes, pulse_bpm: float, bpm_range: tuple[float, float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ratios to the pulse (n,) and their features (n, 2 + len(W_LEVELS) * len(LEVELS))."""
    ratios = np.array([r for r in RATIOS if SEARCH_RANGE[0] <= r * pulse_bpm <= SEARCH_RANGE[1]])
    lo, hi = bpm_range
    x = 2.0 * np.log2(ratios * pulse_bpm / np.sqrt(lo * hi)) / np.log2(hi / lo)  # -1..1 across bpm_range
    levels = [np.log(np.abs(np.stack([amp(r * q) for q in LEVELS], axis=1)) + 0.02).ravel() for r in ratios]
    return ratios, np.column_stack([x, x * x, np.array(levels)])


def octave_probabilities(features: np.ndarray) -> np.ndarray:
    s = features @ np.concatenate([W_PRIOR, W_LEVELS.ravel()])
    p = np.exp(s - s.max())
    return p / p.sum()
