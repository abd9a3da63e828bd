"""The tempo octave model: which multiple of the tracked pulse is the beat.

Candidates are ratios of the pulse (1/8 ... 4); each is described by where it sits in the model's preferred
range (:func:`preference_range`) and by the pulse strength of four onset bands, of the harmonic change
(:func:`tasks.features.tempo.envelopes.harmonic_change`) and of the pitch onsets' rise
(:func:`tasks.features.tempo.envelopes.pitch_onsets`, row 0) at levels around it, and by the strength of each of these
six envelopes at the candidate itself times three numbers of the track's texture: :func:`pulse_change_ratio`
(how strongly the harmonic change, against the onsets, repeats with the tracked pulse), :func:`attack_rise`
(how steeply the level jumps at the sharpest attacks) and :func:`onset_smoothness` (how far each onset is
spread over several frames). The place in the range is also scored times the attack rise, so that the
preference across the range may differ between legato music (bowed, sung, blown: a soft rise) and struck or
drummed music (a steep one). The low and mid bands' strength at half a candidate counts against it the more
the onsets are spread (:func:`onset_smoothness`; for the mid band floored at ``HALF_MID_FLOOR``): under a
slow chorale whose voices move in 8ths the bass and the inner voices walk in the beat, half the 8th. Where
the chords change with the pulse, the harmonic change at a candidate counts for more and the mid-band
onsets for less. A linear score with weights fitted by ``bench/devset_octave.py --write`` (training sets and
held-out sets in the provenance of ``octave_weights.json``) gives each candidate a probability.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np

from tasks.constants import BPM_RANGE

#: Tempi that can be returned, BPM, widened to a ``bpm_range`` that reaches past it (:func:`candidate_range`);
#: ``bpm_range`` sets the preference inside it (and, spanning an octave or more, bounds it: :func:`fold_into_range`).
SEARCH_RANGE: tuple[float, float] = (40.0, 250.0)

# Candidate ratios to the pulse, levels scored around each.
RATIOS = (1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 4 / 3, 3 / 2, 2, 3, 4)
LEVELS = (1 / 4, 1 / 3, 1 / 2, 2 / 3, 1, 3 / 2, 2)
#: :func:`pulse_change_ratio`, :func:`attack_rise` and :func:`onset_smoothness` are centred and scaled by
#: these: their mean and spread, rounded, over the items the weights are fitted on (``bench/devset_octave.py``:
#: the dev set and the synthesized training sets).
RATIO_CENTRE, RATIO_SCALE = 0.13, 0.56
RISE_CENTRE, RISE_SCALE = 1.64, 0.81
SMOOTH_CENTRE, SMOOTH_SCALE = 0.43, 0.12
#: The scaled attack rise and onset smoothness are clipped to this, either side of 0: a linear score must not
#: extrapolate past the textures of the fit (a metronome under louder noise, a flat level).
TEXTURE_CLIP = 1.5
#: Levels are floored this far under the loudest 5 % of frames for :func:`attack_rise`, dB: a note out of
#: digital silence or out of dither rises alike.
_RISE_FLOOR_DB = 60.0
_LEVEL_1 = LEVELS.index(1)
_LEVEL_HALF = LEVELS.index(1 / 2)
#: The fitted weights, loaded from ``octave_weights.json`` beside this module, which ``bench/devset_octave.py
#: --write`` writes with the fit's provenance. W_PRIOR: the place in the range (x, x squared); W_LEVELS: rows all,
#: low, mid, high onset bands, harmonic change, pitch onsets' rise, columns :data:`LEVELS`; W_BY_TEXTURE: the six
#: envelopes' log amplitudes at the candidate times each scaled texture number (rows: pulse-change ratio, attack
#: rise, onset smoothness); W_PRIOR_BY_RISE: the place in the range times the scaled attack rise;
#: W_HALF_BY_SMOOTHNESS: the low and mid bands' log amplitudes at half the candidate times the scaled onset
#: smoothness (negative: a pulse at half a legato candidate marks that candidate as the 8th).
WEIGHTS_FILE = "octave_weights.json"
#: The groups of weights in the file, in the column order of :func:`octave_features`, and each one's shape.
WEIGHT_GROUPS = ("W_PRIOR", "W_LEVELS", "W_BY_TEXTURE", "W_PRIOR_BY_RISE", "W_HALF_BY_SMOOTHNESS")
#: The envelopes the model reads, in the rows of :class:`Amplitudes` (see W_LEVELS).
N_ENVELOPES = 6
_GROUP_SHAPES = ((2,), (N_ENVELOPES, len(LEVELS)), (3, N_ENVELOPES), (2,), (2,))
#: The mid band's term takes the scaled smoothness floored here: a metronome under louder noise than the fit's
#: (-10 dB, tests/test_tempo.py), whose flux has no smoothness at all, was otherwise doubled.
HALF_MID_FLOOR = -0.5

_BATCH_CELLS = 1 << 20  # multiples x frames computed at once by Amplitudes.many


def beat_harmonics(beat_hz: float, fr: float) -> np.ndarray:
    """Harmonics 1..8 of the beat rate that stay below 0.45 of the frame rate."""
    return np.arange(1, int(np.clip(0.45 * fr / beat_hz, 1, 8)) + 1)


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

    def periodic_share(self, r: float, pulse_hz: float, fr: float) -> np.ndarray:
        """Share of each envelope's variance at the harmonics of ``r`` times the pulse (``pulse_hz``, frames per
        second ``fr``; :func:`beat_harmonics`), 0..1, shape (n_envelopes,)."""
        ks = beat_harmonics(pulse_hz * r, fr)
        return np.minimum(1.0, (np.abs(self.many([r * k for k in ks])) ** 2).sum(axis=1))

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


def _percentile(a: np.ndarray, q: float) -> float:
    """``np.percentile(a, q)`` (linear interpolation) by a partial sort: 10 us instead of 150 on 1300 frames."""
    pos = q / 100.0 * (len(a) - 1)
    k = int(pos)
    k1 = min(k + 1, len(a) - 1)
    part = np.partition(a, [k, k1])
    return float(part[k] + (pos - k) * (part[k1] - part[k]))


def attack_rise(frame_ms: np.ndarray) -> float:
    """``log(0.1 + r)``, ``r`` the 99th percentile of the rise of the level from one frame to the next, dB.

    Parameters
    ----------
    frame_ms : np.ndarray, shape (n_frames,)
        Mean square per frame (:func:`tasks.features.tempo.envelopes.frame_mean_square`), full scale squared.

    ``r`` is 25-40 dB on the drum loops and metronomes of the fit (one frame is 23 ms), 6 dB on the
    synthesized songs, 1.5-2.5 dB on the rendered chorales, whose bowed, sung and blown notes swell in: a
    feature of the track's texture, not of any tempo.
    """
    ms = np.asarray(frame_ms, dtype=np.float64)
    loud = max(_percentile(ms, 95), 1e-20)
    db = 10.0 * np.log10(np.maximum(ms, loud * 10.0 ** (-_RISE_FLOOR_DB / 10.0)))
    return float(np.log(_percentile(np.maximum(np.diff(db), 0.0), 99) + 0.1))


def onset_smoothness(onsets: np.ndarray) -> float:
    """Lag-1 autocorrelation of the all-band onset envelope, shape (n_frames,): -1..1, no unit.

    Sharp attacks put an onset's flux into one frame (0.27-0.36 on metronomes, drum loops and songs); soft
    ones spread it over several (0.55 on the rendered training chorales), whatever the tempo.
    """
    o = np.asarray(onsets, dtype=np.float64)
    o = o - o.mean()
    return float(np.dot(o[1:], o[:-1]) / (np.dot(o, o) + 1e-12))


def candidate_range(bpm_range: tuple[float, float]) -> tuple[float, float]:
    """The tempi the candidates may take, BPM: :data:`SEARCH_RANGE`, widened to ``bpm_range`` where it reaches
    past it (e.g. 30-300), so that a range of an octave or more holds the octave of every metrical level: without
    it, a 129 BPM beat asked for within 150-300 had no candidate at 258 and was reported at a 4/3 or 3/2 level."""
    lo, hi = bpm_range
    return min(SEARCH_RANGE[0], float(lo)), max(SEARCH_RANGE[1], float(hi))


def preference_range(bpm_range: tuple[float, float]) -> tuple[float, float]:
    """The range the place-in-range features of :func:`octave_features` are measured across, BPM.

    A range spanning an octave or more is a promise, kept by :func:`fold_into_range`; the model's own
    preference across tempi is then the one it was fitted with, across :data:`~tasks.constants.BPM_RANGE`, so
    that a wide range such as 40-250 lets it choose as it learned to, rather than stretching its preference
    over the whole width. A narrower range cannot be kept for every metre (a 3/4 piece may have no candidate
    inside it) and is a preference only: the features are measured across it.
    """
    lo, hi = bpm_range
    return BPM_RANGE if hi >= 2.0 * lo else (float(lo), float(hi))


def octave_features(
    amp: Amplitudes, pulse_bpm: float, bpm_range: tuple[float, float], *, rise: float, smoothness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ratios to the pulse (n,) and their features (n, 2 + 6 * len(LEVELS) + 18 + 2 + 2).

    Columns: the place in :func:`preference_range` of ``bpm_range`` (x, x squared); the log amplitudes of the
    six envelopes at ``LEVELS`` times the candidate (envelope-major); those at the candidate itself times the
    centred, scaled :func:`pulse_change_ratio`, ``rise`` (:func:`attack_rise`) and ``smoothness``
    (:func:`onset_smoothness`); x and x squared times the scaled ``rise``; the low and mid bands' log
    amplitudes at half the candidate times the scaled ``smoothness``.
    """
    lo_bpm, hi_bpm = candidate_range(bpm_range)
    ratios = np.array([r for r in RATIOS if lo_bpm <= r * pulse_bpm <= hi_bpm])
    lo, hi = preference_range(bpm_range)
    x = 2.0 * np.log2(ratios * pulse_bpm / np.sqrt(lo * hi)) / np.log2(hi / lo)  # -1..1 across the range
    at_levels = amp.many([r * q for r in ratios for q in LEVELS]).reshape(-1, len(ratios), len(LEVELS))
    levels = np.log(np.abs(at_levels.transpose(1, 0, 2)) + 0.02)  # (candidates, envelopes, LEVELS)
    texture = np.array(
        [
            (pulse_change_ratio(amp) - RATIO_CENTRE) / RATIO_SCALE,
            *np.clip(
                [(rise - RISE_CENTRE) / RISE_SCALE, (smoothness - SMOOTH_CENTRE) / SMOOTH_SCALE],
                -TEXTURE_CLIP,
                TEXTURE_CLIP,
            ),
        ]
    )
    by_texture = levels[:, :, _LEVEL_1, None] * texture  # (candidates, envelopes, texture numbers)
    return ratios, np.column_stack(
        [
            x,
            x * x,
            levels.reshape(len(ratios), -1),
            by_texture.transpose(0, 2, 1).reshape(len(ratios), -1),
            x * texture[1],
            x * x * texture[1],
            levels[:, 1, _LEVEL_HALF] * texture[2],
            levels[:, 2, _LEVEL_HALF] * max(texture[2], HALF_MID_FLOOR),
        ]
    )


def fold_into_range(
    ratios: np.ndarray, prob: np.ndarray, pulse_bpm: float, bpm_range: tuple[float, float]
) -> np.ndarray:
    """The candidates' probabilities with ``bpm_range`` kept as a promise when it spans an octave or more.

    Each candidate outside the range hands its probability to its octave (a power of two times it) inside
    the range: the model's choice among metrical structures (duple, triple) stands, and only the octave is
    the user's. A narrower range is a preference only (the model's ``x`` feature) and changes nothing here.

    Parameters
    ----------
    ratios : np.ndarray, shape (n,)
        Candidate ratios to the pulse.
    prob : np.ndarray, shape (n,)
        The octave model's probabilities.
    pulse_bpm : float
        The tracked pulse, BPM.
    bpm_range : (float, float)
        The preferred range, BPM.

    Returns
    -------
    np.ndarray, shape (n,)
        Probabilities summing to 1, zero outside the range (unchanged when no candidate is inside).
    """
    lo, hi = bpm_range
    bpm = np.asarray(ratios) * pulse_bpm
    inside = (bpm >= lo) & (bpm <= hi)
    if hi < 2.0 * lo or not inside.any():
        return prob
    out = np.where(inside, prob, 0.0)
    for i in np.nonzero(~inside)[0]:
        octave = 2.0 ** np.floor(np.log2(hi / bpm[i]))  # the highest power of two that stays under hi
        j = np.nonzero(inside & np.isclose(ratios, ratios[i] * octave))[0]
        if len(j):  # (a ratio whose octave is not a candidate, e.g. 8/3, loses its share)
            out[j[0]] += prob[i]
    return out / out.sum()


def weights_from_groups(data: dict) -> np.ndarray:
    """The weights of an ``octave_weights.json``-style mapping (its :data:`WEIGHT_GROUPS`), one vector in the
    column order of :func:`octave_features`."""
    for name, shape in zip(WEIGHT_GROUPS, _GROUP_SHAPES):
        if np.shape(data[name]) != shape:
            raise ValueError(f"{name} has shape {np.shape(data[name])}, the model needs {shape}")
    return np.concatenate([np.ravel(data[k]) for k in WEIGHT_GROUPS]).astype(np.float64)


def weights_to_groups(w: np.ndarray, decimals: int = 3) -> dict[str, list]:
    """:func:`weights_from_groups` reversed: ``w`` split into :data:`WEIGHT_GROUPS`, rounded, as JSON lists."""
    out, start = {}, 0
    for name, shape in zip(WEIGHT_GROUPS, _GROUP_SHAPES):
        size = int(np.prod(shape))
        out[name] = np.round(np.asarray(w[start : start + size]).reshape(shape), decimals).tolist()
        start += size
    if start != len(w):
        raise ValueError(f"{len(w)} weights, the model has {start}")
    return out


_SHIPPED = weights_from_groups(json.loads(resources.files(__package__).joinpath(WEIGHTS_FILE).read_text()))
_SHIPPED.flags.writeable = False


def octave_weights() -> np.ndarray:
    """The shipped weights (read-only), in the column order of :func:`octave_features`."""
    return _SHIPPED


def octave_probabilities(features: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Each candidate's probability under the conditional-logit model: softmax of ``features @ weights``
    (the shipped weights by default)."""
    s = features @ (_SHIPPED if weights is None else weights)
    p = np.exp(s - s.max())
    return p / p.sum()
