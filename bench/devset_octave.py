"""Leave-one-family-out refits of the tempo octave model, on material issue 19 permits.

    python -m bench.devset_octave [DEVSET] [--jobs 2] [--write]

Training material: the dev set's families (each held out in turn), plus synthesized sets that are no family
of the dev set (``bench/tempo_sets.py``): metronomes, bare drum-machine loops and synthesized four-part
chorales, and ``tasks.synth`` songs of seeds 1-4 except while the dev set's ``synth`` family (seed 9 of the
same generator) is held out. Never the training chorales of ``bench/render_training_chorales.py``: they come
from the start of music21's chorale list, which issue 19 holds out, and the weights shipped up to analyzer
version 9 were fitted on them.

Every file's evidence is what the analysis decides on (:func:`tasks.features.tempo.estimate.pulse_evidence`,
the legato rescue included); the choice is the model's probabilities folded into the range, as
:func:`~tasks.features.tempo.estimate.tempo_from_envelopes` makes it. Files with no tempo count as wrong.
Variants: ``shipped`` (the weights in ``octave_weights.json``), ``permitted`` (every weight fitted from zero
by :func:`fit_octave_weights`, the conditional-logit fit and settings used up to version 9, on the
training material above) and ``+songs`` (the same, but the synth family's fold keeps the songs of seeds 1-4:
the synth family is then not held out, as it is not for ``shipped``). Scores: held-out Acc1 per family at the
default range and at 40-250 (where the model chooses freely). The ship rule of issue 19: the pooled held-out
score rises and no family loses more than one file. ``--write`` writes the weights fitted on all of that
material to ``octave_weights.json`` when ``+songs`` meets the rule at the default range, the range users get.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
from collections.abc import Callable, Sequence
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import scipy.optimize

from bench.corpus import corpus_root
from bench.results import recording
from bench.tempo_eval import score as tempo_score
from bench.tempo_sets import click_items, drum_items, hymn_items, synth_items
from tasks.audio.decode import decode_audio
from tasks.constants import ANALYZER_VERSION, BPM_RANGE
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo import octave as tempo_octave
from tasks.features.tempo.envelopes import frame_mean_square, harmonic_change, onset_bands, pitch_onsets
from tasks.features.tempo.estimate import PulseEvidence, pulse_evidence
from tasks.features.tempo.octave import fold_into_range, octave_probabilities, octave_weights

WIDE = (40.0, 250.0)
#: Weight of a bare drum-machine loop in the fit (enough to stop loud hats from doubling a beat) and the L2
#: penalty on the level weights: the settings of the fit up to analyzer version 9, kept rather than tuned here.
DRUM_WEIGHT = 0.2
FIT_LAMBDA = 3.0
#: (ratios, features, pulse BPM) per range, or None without a tempo.
Evidence = dict[tuple[float, float], tuple[np.ndarray, np.ndarray, float] | None]


def evidence_of(y: np.ndarray) -> Evidence:
    """The octave model's candidates and features for one signal, at the default range and at 40-250."""
    spec = compute_spectrum(y)
    env = (onset_bands(spec), frame_mean_square(spec), harmonic_change(spec))
    pitch = pitch_onsets(spec)
    out: Evidence = {}
    for rng in (BPM_RANGE, WIDE):
        ev = pulse_evidence(*env, frame_rate=spec.frame_rate, bpm_range=rng, pitch=pitch)
        out[rng] = (ev.ratios, ev.features, 60.0 * ev.pulse.freq) if isinstance(ev, PulseEvidence) else None
    return out


def _file_evidence(task: tuple[Callable[[np.ndarray], Evidence], str]) -> Evidence:
    evidence, path = task
    return evidence(decode_audio(path).y)


def choose(ev: tuple[np.ndarray, np.ndarray, float] | None, w: np.ndarray, rng: tuple[float, float]) -> float | None:
    """The tempo the analysis reports with weights ``w``, BPM (None without a tempo)."""
    if ev is None:
        return None
    ratios, feats, pulse_bpm = ev
    p = fold_into_range(ratios, octave_probabilities(feats, w), pulse_bpm, rng)
    return float(ratios[int(np.argmax(p))] * pulse_bpm)


def synthetic_sets(
    jobs: int, evidence: Callable[[np.ndarray], Evidence] = evidence_of
) -> dict[str, tuple[list[Evidence], np.ndarray]]:
    """``evidence`` (of a signal) and reference BPM of the synthesized training sets, by set."""
    from tasks.synth.songs import ground_truth_set

    sets = {
        "songs": lambda: [it for seed in (1, 2, 3, 4) for it in synth_items(ground_truth_set(120, seed=seed))],
        "metronomes": click_items,
        "chorales (synthesized)": hymn_items,
        "drum loops": drum_items,
    }
    out = {}
    with Pool(jobs) as pool:
        for name, make in sets.items():
            items = make()
            signals = [y for _, y, _ in items]
            out[name] = (pool.map(evidence, signals, chunksize=4), np.array([ref for *_, ref in items]))
    return out


def training_rows(
    sets: dict[str, tuple[list[Evidence], np.ndarray]], rng: tuple[float, float]
) -> tuple[list[tuple[np.ndarray, np.ndarray, float]], list[float]]:
    """``fit_octave_weights`` rows (candidate BPMs, features, reference) and sample weights of ``sets``."""
    rows, weights = [], []
    for name, (evs, refs) in sets.items():
        for ev, ref in zip(evs, refs):
            if ev[rng] is not None:
                ratios, feats, pulse_bpm = ev[rng]
                rows.append((ratios * pulse_bpm, feats, float(ref)))
                weights.append(DRUM_WEIGHT if name == "drum loops" else 1.0)
    return rows, weights


def load_weights(source: str) -> np.ndarray:
    """The weights of an ``octave_weights.json``-style file (a path, or ``git:REV`` for the shipped file at commit
    ``REV``), in the order of ``octave_weights()``.

    Weights fitted before the model read the pitch onsets (analyzer version 13 and earlier: five envelopes) get
    zero weights for that envelope: the same scores as they gave, so a refit is compared with them as they were.
    """
    if source.startswith("git:"):
        shipped = Path(tempo_octave.__file__).with_name(tempo_octave.WEIGHTS_FILE)
        rel = shipped.relative_to(Path(__file__).resolve().parents[1])
        text = subprocess.run(
            ["git", "show", f"{source[4:]}:{rel.as_posix()}"], capture_output=True, text=True, check=True
        ).stdout
    else:
        text = Path(source).read_text()
    data = json.loads(text)
    missing = tempo_octave.N_ENVELOPES - len(data["W_LEVELS"])
    if missing > 0:
        data["W_LEVELS"] = data["W_LEVELS"] + [[0.0] * len(tempo_octave.LEVELS)] * missing
        data["W_BY_TEXTURE"] = [row + [0.0] * missing for row in data["W_BY_TEXTURE"]]
    return tempo_octave.weights_from_groups(data)


def write_octave_weights(w: np.ndarray, provenance: dict) -> Path:
    """Write fitted weights ``w`` (the order of ``octave_weights()``) to the model's data file, with ``provenance``
    plus the date, the commit and the analyzer version."""
    from datetime import date

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    path = Path(tempo_octave.__file__).with_name(tempo_octave.WEIGHTS_FILE)
    data = {
        "provenance": {
            "fitted_by": "python -m bench.devset_octave --write",
            "fitted_on": date.today().isoformat(),
            "fitted_in_commit": commit or "unknown",
            "analyzer_version": ANALYZER_VERSION,
        }
        | provenance,
        **tempo_octave.weights_to_groups(w),
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"weights written to {path}")
    return path


def fit_octave_weights(
    data: list[tuple[np.ndarray, np.ndarray, float]], *, lam: float, sample_weight: Sequence[float] | None = None
) -> np.ndarray:
    """Conditional-logit weights (prior first, then levels) maximising the likelihood of the right candidate.

    L2 penalty ``lam`` on the level weights only. Items whose candidates miss the reference, or whose sample
    weight is 0, are skipped.
    """
    rows = []
    for i, (bpms, feats, ref) in enumerate(data):
        ok = np.flatnonzero(np.abs(bpms - ref) <= 0.04 * ref)
        sw = 1.0 if sample_weight is None else float(sample_weight[i])
        if len(ok) and sw > 0:
            rows.append((feats, int(ok[0]), sw))
    if not rows:
        raise ValueError("no training item has a candidate at its reference tempo")
    # Items have different numbers of candidates: pad to the most, masked out of the softmax.
    n, width, k = len(rows), max(len(f) for f, _, _ in rows), rows[0][0].shape[1]
    feats, mask = np.zeros((n, width, k)), np.zeros((n, width), bool)
    for i, (f, _, _) in enumerate(rows):
        feats[i, : len(f)], mask[i, : len(f)] = f, True
    target = np.array([t for _, t, _ in rows])
    sw = np.array([w for _, _, w in rows])
    right = feats[np.arange(n), target]

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.where(mask, feats @ w, -np.inf)
        top = s.max(axis=1, keepdims=True)
        p = np.exp(s - top)
        z = p.sum(axis=1, keepdims=True)
        p /= z
        log_p = right @ w - top[:, 0] - np.log(z[:, 0])
        val = lam * np.sum(w[2:] ** 2) - sw @ log_p
        grad = np.r_[0.0, 0.0, 2 * lam * w[2:]] - sw @ (right - np.einsum("nc,nck->nk", p, feats))
        return float(val), grad

    return scipy.optimize.minimize(nll, np.zeros(k), jac=True, method="L-BFGS-B").x


def dev_and_synthetic(
    devset: Path, jobs: int, evidence: Callable[[np.ndarray], Evidence] = evidence_of
) -> tuple[list[Evidence], np.ndarray, np.ndarray, dict[str, tuple[list[Evidence], np.ndarray]]]:
    """The dev set's ``evidence`` (:func:`evidence_of` by default; a module-level function of a signal, for the
    worker processes), reference BPMs and families (in ``ground_truth.csv``'s order), and the synthesized
    training sets (:func:`synthetic_sets`)."""
    with open(devset / "ground_truth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with Pool(jobs) as pool:
        dev = pool.map(_file_evidence, [(evidence, str(devset / r["file"])) for r in rows], chunksize=4)
    refs = np.array([float(r["bpm"]) for r in rows])
    fam = np.array([r["family"] for r in rows])
    return dev, refs, fam, synthetic_sets(jobs, evidence)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--baseline",
        help="weights the refits are compared with: a file, or git:REV for the shipped file at that commit "
        "(default: the shipped file as it is)",
    )
    ap.add_argument(
        "--write",
        action="store_true",
        help="write the weights fitted on all permitted material if '+songs' meets the ship rule at the default range",
    )
    args = ap.parse_args()
    dev, refs, fam, synthetic = dev_and_synthetic(args.devset, args.jobs)
    families = sorted(set(fam))
    shipped = load_weights(args.baseline) if args.baseline else octave_weights()
    variants = ("shipped", "permitted", "+songs")
    hit = {(v, rng): np.zeros(len(refs), bool) for v in variants for rng in (BPM_RANGE, WIDE)}
    scores = {(v, rng): np.zeros((len(refs), 3), bool) for v in variants for rng in (BPM_RANGE, WIDE)}
    for f in families:
        test = fam == f
        fits = {"shipped": shipped}
        for v in variants[1:]:
            # "permitted" holds the synth family out entirely: without the songs of its own generator.
            strict = v == "permitted" and f == "synth"
            sets = {k: val for k, val in synthetic.items() if not (strict and k == "songs")}
            sets["dev set"] = ([e for e, t in zip(dev, test) if not t], refs[~test])
            # As shipped: fitted on the evidence at the default range, used at whatever range is asked for.
            train, weights = training_rows(sets, BPM_RANGE)
            fits[v] = fit_octave_weights(train, sample_weight=weights, lam=FIT_LAMBDA)
        for rng in (BPM_RANGE, WIDE):
            for v, wv in fits.items():
                est = [choose(e[rng], wv, rng) for e, t in zip(dev, test) if t]
                scores[v, rng][test] = [tempo_score(e, r) for e, r in zip(est, refs[test])]
                hit[v, rng][test] = scores[v, rng][test, 0]
    with recording("devset_octave", "Development set: octave model refits on permitted material, LOFO (tempo Acc1)"):
        print(
            f"{len(refs)} dev files; analyzer version {ANALYZER_VERSION}; held-out Acc1 per family (files right); "
            "synthesized training items: " + ", ".join(f"{k} {len(v[1])}" for k, v in synthetic.items())
        )
        print(
            "'permitted' holds each family out; '+songs' keeps our synthesizer's songs (seeds 1-4) in the synth "
            "family's fold,\nwhich is then not held out (same generator); 'shipped' is the baseline weights "
            f"({args.baseline or 'in use'}) on this version's features, not refitted per fold."
        )
        ranges = [(BPM_RANGE, "default"), (WIDE, "40-250")]
        print(f"{'':18s}" + "".join(f"{lab + ' range':^45s}" for _, lab in ranges))
        print(f"{'family':13s} {'n':>4s} " + " ".join(f"{v:>14s}" for _ in ranges for v in variants))
        for f in [*families, "pooled"]:
            m = np.ones(len(refs), bool) if f == "pooled" else fam == f
            cells = [f"{hit[v, rng][m].mean():.3f} ({hit[v, rng][m].sum():3d})" for rng, _ in ranges for v in variants]
            print(f"{f:13s} {m.sum():4d} " + " ".join(f"{c:>14s}" for c in cells))
        print("\nAcc1 / Acc2 / ±0.5 BPM, pooled (held out: 'permitted'; '+songs' but for synth; 'shipped' as it is):")
        for rng, lab in ranges:
            print(
                f"  {lab + ' range':15s}"
                + "".join(f"  {v} " + " / ".join(f"{x:.3f}" for x in scores[v, rng].mean(axis=0)) for v in variants)
            )
        met = {}
        for rng, lab in ranges:
            for v in variants[1:]:
                base, new = hit["shipped", rng], hit[v, rng]
                worst = min((new[fam == f].sum() - base[fam == f].sum(), f) for f in families)
                met[v, lab] = new.mean() > base.mean() and worst[0] >= -1
                print(
                    f"{lab} range, {v}: pooled {new.mean() - base.mean():+.3f}; worst family {worst[1]} "
                    f"{worst[0]:+d} files: ship rule {'met' if met[v, lab] else 'not met'}"
                )
        # The same fit on every family, scored on them: a held-out score is not to be expected above it, so it
        # says how far a refit of these features can go.
        sets = dict(synthetic)
        sets["dev set"] = (dev, refs)
        train, weights = training_rows(sets, BPM_RANGE)
        w = fit_octave_weights(train, sample_weight=weights, lam=FIT_LAMBDA)
        ceiling = [
            f"{lab} {np.mean([tempo_score(choose(e[rng], w, rng), r)[0] for e, r in zip(dev, refs)]):.3f}"
            for rng, lab in ranges
        ]
        print("in-sample (the same fit on every family, scored on them), Acc1: " + ", ".join(ceiling))
    if args.write and met["+songs", "default"]:
        provenance = {
            "training_sets": [
                "synth ground_truth_set seeds 1-4",
                "metronomes",
                "synthesized four-part chorales",
                "bare drum-machine loops",
                "every family of the dev set (make devset)",
            ],
            "held_out": [
                "none: these weights saw every family; the held-out scores refit them with each family left out "
                "(bench/devset_octave.py, bench/RESULTS.md)"
            ],
            "note": "fitted on material issue 19 permits: no chorale from the start of music21's list",
        }
        write_octave_weights(w, provenance)


if __name__ == "__main__":
    main()
