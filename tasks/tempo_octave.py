"""The tempo octave model: which multiple of the tracked pulse is the beat.

Candidates are ratios of the pulse (1/8 ... 4); each is described by where it sits in the preferred BPM range
and by the pulse strength of four onset bands and of the harmonic change
(:func:`tasks.tempo_envelopes.harmonic_change`) at levels around it, and by the strength of each of the five
envelopes at the candidate itself times one number of the track, :func:`pulse_change_ratio` (how strongly
the harmonic change, against the onsets, repeats with the tracked pulse): where the chords change with the
pulse, the harmonic change at a candidate counts for more and the mid-band onsets for less. A linear score
with weights fitted by ``bench/tempo_eval.py --fit`` (synth seeds 1-4, metronomes, synthesized chorales, drum loops, and the train
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
#: :func:`pulse_change_ratio` is centred and scaled by these (its mean and spread over the fit's items
#: other than the continuo renderings: 0.195, 0.498). Its mean is -0.43 on the drum loops, 0.15 on synth
#: seed 0, 0.34 and 0.54 on the check split of the training chorales in their varied and continuo
#: renderings, 0.50 on the metronomes, with a spread of 0.4-0.7 in each: a loose texture cue.
RATIO_CENTRE, RATIO_SCALE = 0.2, 0.5
_LEVEL_1 = LEVELS.index(1)
W_PRIOR = np.array([-2.068, -0.959])
W_LEVELS = np.array([  # rows: all, low, mid, high onset bands, harmonic change; columns: LEVELS
    [0.365, 0.129, 0.02, -0.156, 0.359, -0.227, 1.247],
    [-0.272, 0.835, -0.154, -0.137, 0.386, 0.312, 1.624],
    [-0.063, 0.134, -0.021, 0.039, 0.494, -0.214, 0.73],
    [0.015, 0.531, 0.064, -0.443, 0.612, 0.825, 0.697],
    [0.2, 0.198, 0.022, -0.481, 0.839, -0.388, 2.019],
])
#: Weights of the five envelopes' log amplitudes at the candidate (level 1) times the scaled ratio.
W_BY_RATIO = np.array([-0.056, 0.325, -0.683, -0.03, 0.504])

_BATCH_CELLS = 1 << 20  # multiples x frames computed at once by Amplitudes.many


class Amplitudes:
    """Envelope (rows of ``bands``) amplitudes at multiples ``m`` of a tracked pulse,
    ``sqrt(2) |mean(o exp(-2 pi i m phase))| / std``.

    Squared, this is the share of a band's variance at that rate; cached per multiple.
    """

    def __init__(self, bands: np.ndarray, phase: np.ndarray) -> None:
        b = bands - bands.mean(axis=1, keepdims=True)
        b = b / (b.std(axis=1, keepdims=True) + 1e-12) * (np.sqrt(2.0) / b.shape[1])
        self._b32 = np.ascontiguousarray(b.T, dtype=np.float32)  # (frames, envelopes)
        self._phase = np.asarray(phase, dtype=np.float64)
        self._cache: dict[int, np.ndarray] = {}

    def __call__(self, m: float) -> np.ndarray:
        """Complex amplitudes of the envelopes at ``m`` times the pulse rate, shape (n_envelopes,)."""
        return self.many([m])[:, 0]

    def many(self, ms) -> np.ndarray:
        """Complex amplitudes at each multiple of ``ms``, shape (n_envelopes, len(ms)); the new ones in one pass."""
        keys = [round(m * 1e9) for m in ms]  # int keys merge float noise of r * q; round(m, 9) cost 9 us a call
        new = {k: m for k, m in zip(keys, ms) if k not in self._cache}
        # The phase times m, reduced to a turn in float64, then cos/sin in float32, which numpy vectorises
        # (float64 trigonometry was most of the octave model's time); as many multiples at once as keep the
        # temporaries near 8 MB (a 2-hour mix has 310 000 frames).
        todo, step = list(new.items()), max(1, _BATCH_CELLS // len(self._phase))
        for i in range(0, len(todo), step):
            part = todo[i : i + step]
            turns = np.multiply.outer(np.array([m for _, m in part]), self._phase)
            turns -= np.floor(turns)  # not % 1.0: numpy's float64 fmod is 5x slower
            arg = (2.0 * np.pi * turns).astype(np.float32)
            amps = np.cos(arg) @ self._b32 - 1j * (np.sin(arg) @ self._b32)
            self._cache.update(zip([k for k, _ in part], amps))
        return np.stack([self._cache[k] for k in keys], axis=1)


def pulse_change_ratio(amp: Amplitudes) -> float:
    """``log(|harmonic change| + 0.02) - log(|onsets| + 0.02)``, amplitudes at the tracked pulse (onsets: all bands).

    Higher when the spectral shape changes with the pulse (chords change on it) than when only attacks repeat
    (a chord re-struck on every beat, a drum loop); clicks score high too, their attack being a shape change.
    """
    a = np.abs(amp(1.0))
    return float(np.log(a[4] + 0.02) - np.log(a[0] + 0.02))


def octave_features(amp: Amplitudes, pulse_bpm: float, bpm_range: tuple[float, float]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ratios to the pulse (n,) and their features (n, 2 + 5 * len(LEVELS) + 5).

    Columns: the place in ``bpm_range`` (x, x squared); the log amplitudes of the five envelopes at
    ``LEVELS`` times the candidate (envelope-major); those at the candidate itself times the centred,
    scaled :func:`pulse_change_ratio`.
    """
    ratios = np.array([r for r in RATIOS if SEARCH_RANGE[0] <= r * pulse_bpm <= SEARCH_RANGE[1]])
    lo, hi = bpm_range
    x = 2.0 * np.log2(ratios * pulse_bpm / np.sqrt(lo * hi)) / np.log2(hi / lo)  # -1..1 across bpm_range
    at_levels = amp.many([r * q for r in ratios for q in LEVELS]).reshape(-1, len(ratios), len(LEVELS))
    levels = np.log(np.abs(at_levels.transpose(1, 0, 2)) + 0.02)  # (candidates, envelopes, LEVELS)
    ratio = (pulse_change_ratio(amp) - RATIO_CENTRE) / RATIO_SCALE
    return ratios, np.column_stack([x, x * x, levels.reshape(len(ratios), -1), levels[:, :, _LEVEL_1] * ratio])


def octave_weights() -> np.ndarray:
    """All weights in the column order of :func:`octave_features`."""
    return np.concatenate([W_PRIOR, W_LEVELS.ravel(), W_BY_RATIO])


def octave_probabilities(features: np.ndarray) -> np.ndarray:
    s = features @ octave_weights()
    p = np.exp(s - s.max())
    return p / p.sum()
