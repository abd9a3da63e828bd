"""Probes of the tempo octave model: would more evidence, or a non-linear model, lift held-out Acc1?

    python -m bench.devset_octave_probes [DEVSET] [--jobs 2]

Each probe is scored as :mod:`bench.devset_octave` scores its '+songs' variant (each family held out in turn,
the model fitted on the others and on the synthesized sets, at the fit settings of ``devset_octave``), at the
default range and at 40-250, against the shipped features fitted the same way:

- ``levels x3, x4``: the six envelopes' strength at 3 and 4 times each candidate, which the shipped
  :data:`~tasks.features.tempo.octave.LEVELS` stop short of (a beat divided in three: a jig's 8ths under its
  dotted-quarter beat);
- ``backbeat``: per candidate, how far the low band's pulse is in phase with the mid band's, the high band's and
  all bands', at the candidate and at half of it (a kick on beats 1 and 3 against a snare on 2 and 4 is in
  antiphase at half the beat);
- ``trees``: gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``, which librosa already
  pulls in) on the shipped features in place of the linear conditional logit, at three untuned settings.

No probe is shipped: this says where the remaining error is not.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root
from bench.devset_octave import DRUM_WEIGHT, FIT_LAMBDA, WIDE, Evidence, dev_and_synthetic, fit_octave_weights
from bench.results import recording
from bench.tempo_eval import score as tempo_score
from tasks.constants import ANALYZER_VERSION, BPM_RANGE
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo.envelopes import frame_mean_square, harmonic_change, onset_bands, pitch_onsets
from tasks.features.tempo.estimate import PulseEvidence, pulse_evidence
from tasks.features.tempo.octave import fold_into_range

RANGES = ((BPM_RANGE, "default"), (WIDE, "40-250"))
#: Extra levels of the first probe, and the band pairs (rows of the envelopes: 0 all, 1 low, 2 mid, 3 high) and
#: levels of the second.
EXTRA_LEVELS = (3.0, 4.0)
PHASE_PAIRS = ((1, 2), (1, 3), (1, 0))
PHASE_LEVELS = (1.0, 0.5)
N_EXTRA_LEVELS = 6 * len(EXTRA_LEVELS)
TREE_SETTINGS = ((2, 300), (3, 200), (4, 150))  # (depth, iterations), learning rate 0.05


def probe_evidence(y: np.ndarray) -> Evidence:
    """:func:`bench.devset_octave.evidence_of` with the probes' columns after the shipped features: the log
    strength of the six envelopes at ``EXTRA_LEVELS`` times each candidate (envelope-major), then the cosine of
    the phase difference of each of ``PHASE_PAIRS`` at ``PHASE_LEVELS`` times it."""
    spec = compute_spectrum(y)
    env = (onset_bands(spec), frame_mean_square(spec), harmonic_change(spec))
    pitch = pitch_onsets(spec)
    out: Evidence = {}
    for rng, _ in RANGES:
        ev = pulse_evidence(*env, frame_rate=spec.frame_rate, bpm_range=rng, pitch=pitch)
        if not isinstance(ev, PulseEvidence):
            out[rng] = None
            continue
        levels = ev.amp.many([r * q for r in ev.ratios for q in EXTRA_LEVELS]).reshape(6, len(ev.ratios), -1)
        phase = []
        for q in PHASE_LEVELS:
            a = ev.amp.many(list(ev.ratios * q))  # (envelopes, candidates)
            for i, j in PHASE_PAIRS:
                z = a[i] * np.conj(a[j])
                phase.append(z.real / (np.abs(a[i]) * np.abs(a[j]) + 1e-3))
        extra = np.column_stack([np.log(np.abs(levels.transpose(1, 0, 2)) + 0.02).reshape(len(ev.ratios), -1), *phase])
        out[rng] = (ev.ratios, np.column_stack([ev.features, extra]), 60.0 * ev.pulse.freq)
    return out


Chooser = Callable[[np.ndarray], np.ndarray]  # candidate features -> scores (higher: more likely the beat)


def _training(items: list[tuple[Evidence, float, float]], cols: np.ndarray) -> list[tuple]:
    """(candidate BPMs, features, reference, sample weight) of the items with a candidate at the reference."""
    out = []
    for ev, ref, weight in items:
        e = ev[BPM_RANGE]  # as devset_octave fits: on the evidence at the default range
        if e is not None and np.any(np.abs(e[0] * e[2] - ref) <= 0.04 * ref):
            out.append((e[0] * e[2], e[1][:, cols], ref, weight))
    return out


def fit_logit(train: list[tuple], _: object = None) -> Chooser:
    w = fit_octave_weights([t[:3] for t in train], lam=FIT_LAMBDA, sample_weight=[t[3] for t in train])
    return lambda feats: feats @ w


def fit_trees(train: list[tuple], setting: tuple[int, int]) -> Chooser:
    from sklearn.ensemble import HistGradientBoostingClassifier

    depth, iterations = setting
    x = np.vstack([f for _, f, _, _ in train])
    # The first candidate at the reference is the right one, as fit_octave_weights takes it.
    y = np.concatenate([np.arange(len(b)) == np.argmax(np.abs(b - r) <= 0.04 * r) for b, _, r, _ in train])
    sw = np.concatenate([np.full(len(b), w / len(b)) for b, _, _, w in train])  # each item weighs as one
    model = HistGradientBoostingClassifier(
        max_depth=depth, learning_rate=0.05, max_iter=iterations, l2_regularization=1.0, random_state=0
    )
    model.fit(x, y, sample_weight=sw)
    return lambda feats: np.log(np.clip(model.predict_proba(feats)[:, 1], 1e-12, None))


def held_out(
    dev: list[Evidence],
    refs: np.ndarray,
    fam: np.ndarray,
    synthetic: list[tuple[Evidence, float, float]],
    cols: np.ndarray,
    fit: Callable,
    setting: object = None,
) -> dict[tuple[float, float], np.ndarray]:
    """Held-out (Acc1, Acc2, ±0.5 BPM) hits per file and range, each family scored with a model fitted without it."""
    hits = {rng: np.zeros((len(refs), 3), bool) for rng, _ in RANGES}
    for f in sorted(set(fam)):
        test = fam == f
        train = synthetic + [(e, float(r), 1.0) for e, r, t in zip(dev, refs, test) if not t]
        scores = fit(_training(train, cols), setting)
        for rng, _ in RANGES:
            for i in np.flatnonzero(test):
                ev, bpm = dev[i][rng], None
                if ev is not None:
                    ratios, feats, pulse_bpm = ev
                    s = scores(feats[:, cols])
                    p = np.exp(s - s.max())
                    p = fold_into_range(ratios, p / p.sum(), pulse_bpm, rng)
                    bpm = float(ratios[int(np.argmax(p))] * pulse_bpm)
                hits[rng][i] = tempo_score(bpm, refs[i])
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    dev, refs, fam, sets = dev_and_synthetic(args.devset, args.jobs, probe_evidence)
    synthetic = [
        (ev, float(ref), DRUM_WEIGHT if name == "drum loops" else 1.0)
        for name, (evs, rs) in sets.items()
        for ev, ref in zip(evs, rs)
    ]
    width = next(e[BPM_RANGE][1].shape[1] for e in dev if e[BPM_RANGE] is not None)
    shipped = np.arange(width - N_EXTRA_LEVELS - len(PHASE_PAIRS) * len(PHASE_LEVELS))
    levels = np.r_[shipped, len(shipped) : len(shipped) + N_EXTRA_LEVELS]
    backbeat = np.r_[shipped, len(shipped) + N_EXTRA_LEVELS : width]
    probes = [
        ("shipped features", shipped, fit_logit, None),
        ("levels x3, x4", levels, fit_logit, None),
        ("backbeat", backbeat, fit_logit, None),
        *((f"trees depth {d}, {n} rounds", shipped, fit_trees, (d, n)) for d, n in TREE_SETTINGS),
    ]
    families = sorted(set(fam))
    hits = [held_out(dev, refs, fam, synthetic, cols, fit, setting) for _, cols, fit, setting in probes]
    with recording("devset_octave_probes", "Development set: probes of the octave model, LOFO (tempo Acc1)"):
        print(
            f"{len(refs)} dev files; analyzer version {ANALYZER_VERSION}; files right, each family held out "
            f"(fitted as devset_octave's '+songs'); {len(shipped)} shipped feature columns"
        )
        for rng, label in RANGES:
            print(
                f"\n  {label + ' range':26s} {'Acc1':>11s} {'Acc2':>5s}  "
                + " ".join(f"{f[:11]:>11s}" for f in families)
            )
            for (name, *_), by_range in zip(probes, hits):
                h = by_range[rng]
                per = " ".join(f"{int(h[fam == f, 0].sum()):11d}" for f in families)
                print(f"  {name:26s} {int(h[:, 0].sum()):3d} ({h[:, 0].mean():.3f}) {h[:, 1].mean():.3f}  {per}")


if __name__ == "__main__":
    main()
