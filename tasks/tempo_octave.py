"""The tempo octave model: which multiple of the tracked pulse is the beat.

Candidates are ratios of the pulse (1/8 ... 4); each is described by where it sits in the preferred BPM range
and by the pulse strength of four onset bands and of the harmonic change
(:func:`tasks.tempo_envelopes.harmonic_change`) at levels around it; a linear score with weights fitted by
``bench/tempo_eval.py --fit`` (synth seeds 1-4, metronomes, synthesized chorales, drum loops, and the train
split of the rendered training chorales, other works than the test set's, in two renderings: 208 varied
ensembles and 207 strings over a piano bass; seed 0, the training chorales' check split in both renderings
and the rendered test chorales held out) gives each candidate a probability.
"""
from __future__ import annotations

import numpy as np

#: Tempi that can be returned, BPM; ``bpm_range`` only sets the preference inside it.
SEARCH_RANGE: tuple[float, float] = (40.0, 250.0)

# Candidate ratios to the pulse, levels scored around each.
RATIOS = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4)
LEVELS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 1, 3 / 2, 2)
W_PRIOR = np.array([-1.895, -0.939])
W_LEVELS = np.array([  # rows: all, low, mid, high onset bands, harmonic change; columns: LEVELS
    [0.371, 0.138, 0.134, -0.154, 0.27, -0.22, 1.258],
    [-0.194, 0.804, -0.16, -0.138, 0.405, 0.299, 1.562],
    [-0.052, 0.127, 0.057, 0.047, 0.335, -0.271, 0.658],
    [0.09, 0.589, 0.053, -0.472, 0.666, 0.832, 0.754],
    [0.099, 0.143, -0.067, -0.541, 0.968, -0.506, 2.152],
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
        key = round(m * 1e9)  # an int key merges float noise of r * q; round(m, 9) cost 9 us a call here
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
