"""Leave-one-family-out refits of the tempo octave model on the development set.

    python -m bench.devset_octave [DEVSET] [--jobs 2]

For every file the octave evidence is computed once as the analysis sees it (``decode_audio``, the shared
STFT, :func:`tasks.features.tempo.estimate.octave_evidence` with the default range), and the choice is made as
:func:`~tasks.features.tempo.estimate.tempo_from_envelopes` makes it (the model's probabilities folded into the
range). Files the analysis gives no tempo (``results/cratedig-vN.jsonl``) count as wrong for every variant.

Variants, each fitted with one family held out at a time and scored on it: the shipped weights; the place in
the range alone refitted (2 weights, then 4 with its interaction with the attack rise); every weight refitted
with an L2 pull towards the shipped ones. Fewer fitted weights beat more: a variant ships only when its
pooled held-out Acc1 rises over the shipped weights' and no family loses more than one file.
"""

from __future__ import annotations

import argparse
import csv
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import scipy.optimize

from bench.corpus import corpus_root
from bench.devset_eval import stored
from bench.results import recording
from tasks.audio.decode import decode_audio
from tasks.constants import ANALYZER_VERSION, BPM_RANGE
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo.envelopes import frame_mean_square, harmonic_change, onset_bands
from tasks.features.tempo.estimate import octave_evidence
from tasks.features.tempo.octave import fold_into_range, octave_weights

Evidence = tuple[np.ndarray, np.ndarray, float]  # ratios, features, pulse BPM


def evidence(path: str) -> Evidence:
    """The octave model's candidates and features for one file."""
    spec = compute_spectrum(decode_audio(path).y)
    pulse, _, ratios, feats = octave_evidence(
        onset_bands(spec).astype(np.float64), frame_mean_square(spec), harmonic_change(spec), spec.frame_rate, BPM_RANGE
    )
    return ratios, feats, 60.0 * pulse.freq


def choose(ev: Evidence, w: np.ndarray) -> float:
    """The tempo the analysis reports with weights ``w``, BPM."""
    ratios, feats, pulse_bpm = ev
    s = feats @ w
    p = np.exp(s - s.max())
    p = fold_into_range(ratios, p / p.sum(), pulse_bpm, BPM_RANGE)
    return float(ratios[int(np.argmax(p))] * pulse_bpm)


def fit(evs: list[Evidence], refs: np.ndarray, free: np.ndarray, w0: np.ndarray, lam: float) -> np.ndarray:
    """Conditional-logit refit of the ``free`` weights from ``w0`` (L2 pull ``lam`` towards ``w0``); files
    whose candidates miss the reference are left out."""
    rows = []
    for (ratios, feats, pulse_bpm), ref in zip(evs, refs):
        ok = np.flatnonzero(np.abs(ratios * pulse_bpm - ref) <= 0.04 * ref)
        if len(ok):
            rows.append((feats, int(ok[0])))

    def nll(v: np.ndarray) -> tuple[float, np.ndarray]:
        w = w0.copy()
        w[free] += v
        val, grad = lam * float(v @ v), 2 * lam * v
        for feats, t in rows:
            s = feats @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            val -= np.log(p[t] + 1e-300)
            grad = grad - (feats[t] - p @ feats)[free]
        return val, grad

    v = scipy.optimize.minimize(nll, np.zeros(int(free.sum())), jac=True, method="L-BFGS-B").x
    w = w0.copy()
    w[free] += v
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with open(args.devset / "ground_truth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    given = stored(args.devset, f"cratedig-v{ANALYZER_VERSION}")
    with Pool(args.jobs) as pool:
        evs = pool.map(evidence, [str(args.devset / r["file"]) for r in rows], chunksize=4)
    refs = np.array([float(r["bpm"]) for r in rows])
    fam = np.array([r["family"] for r in rows])
    has_tempo = np.array([(given.get(r["file"]) or {}).get("cratedig", {}).get("bpm") is not None for r in rows])
    w0 = octave_weights()
    n = len(w0)
    prior = np.zeros(n, bool)
    prior[:2] = True
    prior_rise = prior.copy()
    prior_rise[-4:-2] = True
    variants = {
        "shipped": (np.zeros(n, bool), 0.0),
        "prior (2)": (prior, 0.1),
        "prior+rise (4)": (prior_rise, 0.1),
        f"all ({n}), pulled": (np.ones(n, bool), 3.0),
    }
    hit = {}
    for name, (free, lam) in variants.items():
        h = np.zeros(len(rows), bool)
        for f in sorted(set(fam)):
            test = fam == f
            train = ~test & has_tempo
            w = w0 if not free.any() else fit([e for e, t in zip(evs, train) if t], refs[train], free, w0, lam)
            est = np.array([choose(e, w) for e, t in zip(evs, test) if t])
            h[test] = np.abs(est - refs[test]) <= 0.04 * refs[test]
        hit[name] = h & has_tempo
    reachable = np.array([np.any(np.abs(e[0] * e[2] - r) <= 0.04 * r) for e, r in zip(evs, refs)]) & has_tempo
    with recording("devset_octave", "Development set: octave model refits, leave-one-family-out (tempo Acc1)"):
        print(f"{len(rows)} files; held-out Acc1 per family (files right), analyzer version {ANALYZER_VERSION}")
        print(f"{'family':13s} {'n':>4s} {'reachable':>9s} " + " ".join(f"{v:>18s}" for v in variants))
        for f in [*sorted(set(fam)), "pooled"]:
            m = np.ones(len(rows), bool) if f == "pooled" else fam == f
            cells = [f"{hit[v][m].mean():.3f} ({hit[v][m].sum():3d})" for v in variants]
            print(f"{f:13s} {m.sum():4d} {reachable[m].mean():9.3f} " + " ".join(f"{c:>18s}" for c in cells))
        base = hit["shipped"]
        for v in list(variants)[1:]:
            worst = min((hit[v][fam == f].sum() - base[fam == f].sum(), f) for f in set(fam))
            ok = hit[v].mean() > base.mean() and worst[0] >= -1
            print(
                f"{v}: pooled {hit[v].mean() - base.mean():+.3f}; worst family {worst[1]} {worst[0]:+d} files: "
                f"ship rule {'met' if ok else 'not met'}"
            )


if __name__ == "__main__":
    main()
