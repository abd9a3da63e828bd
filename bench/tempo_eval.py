"""Tempo benchmark: cratedig vs librosa's ``feature.tempo`` (and Essentia's RhythmExtractor2013 when importable).

    .venv/bin/python bench/tempo_eval.py              # synth ground_truth_set(120, seed=0), chorales, 3-min timing
    .venv/bin/python bench/tempo_eval.py --fit        # refit the octave model (tasks/features/tempo/octave.py)
    .venv/bin/python bench/tempo_eval.py --sets chorales --no-essentia   # one set, cratedig and librosa only

Run with ``OPENBLAS_NUM_THREADS=1``: the times are CPU times, and idle BLAS threads spinning on a busy
machine can multiply them several times.

Metrics: ``acc1`` (within 4 % of the reference), ``acc2`` (within 4 % of 1, 2, 1/2, 3 or 1/3 times it),
``within_0.5`` (within +-0.5 BPM) and CPU ms per track. Items are ``(label, y, bpm)``: mono float32 audio at
``SR`` and the reference tempo. Sets:

- ``synth``: ``tasks.synth.songs.ground_truth_set`` (60-190 BPM, 8 styles, swing, drift, noise), 30 s songs.
- ``chorales``: rendered Bach chorales in ``$CRATEDIG_CORPUS/groundtruth/ground_truth.csv`` (quarter-note
  BPM; default ``~/.cache/cratedig-corpus``), when built. The TEST set: never used to choose anything.
- ``bachcheck``: the check split of the training chorales (``bench/render_training_chorales.py``: other
  works of the same collection, 55-150 BPM, varied instruments, 30-60 s excerpts).
- ``contcheck``: the same works rendered again as strings over a piano bass, whole pieces
  (``render_training_chorales.py --continuo``).
- ``recipedev``: the development set, 44 works used nowhere else rendered by the test set's recipe, each
  at two of its nine tempi, one of them 63, 70 or 76 (``render_training_chorales.py --recipe-dev``).
- ``reccheck``: the check split's works rendered by the test set's recipe (``--recipe``).

The octave model is fitted on ``ground_truth_set(seed=1..4)`` plus :func:`click_items`, :func:`hymn_items`
(seed 13; seed 99 is its check), the ``train`` split of the training chorales in all three renderings
(varied, continuo, the test recipe; ``reccheck`` is the check split's) and :func:`drum_items`
(sets in ``bench/tempo_sets.py``), so seed 0 (the reported benchmark), the ``check`` split of the training
chorales and the rendered test chorales are held out.

Essentia is optional: run with ``PYTHONPATH=<site-packages holding essentia>`` to include it (it gets
44.1 kHz audio, as it expects; its time includes its own onset analysis).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.optimize

from bench.results import recording
from bench.tempo_sets import (
    Item,
    chorale_items,
    click_items,
    drum_items,
    hymn_items,
    recipe_dev_items,
    synth_items,
    training_chorale_items,
)
from tasks.constants import HOP_LENGTH, SR
from tasks.features.spectrum import Spectrum, compute_spectrum
from tasks.features.tempo import estimate as tempo
from tasks.features.tempo import octave as tempo_octave
from tasks.features.tempo.envelopes import frame_mean_square

#: Weight of a bare drum-machine item in the octave fit: enough to stop loud hats from doubling a beat,
#: small enough not to cost the songs, metronomes and chorales much (see the table in tasks/features/tempo/estimate.py).
DRUM_WEIGHT = 0.2
#: Weight of a rendered training chorale, and the L2 penalty of the fit. Chosen by 5-fold cross-validation
#: over the 259 training chorales (folds by piece; the other sets always in), with synth seed 5 and hymns
#: seed 99 as checks: weight 0.5 / 1 / 2 gave 0.846 / 0.857 / 0.880 at penalty 0.3, and penalty 1 gave
#: 0.892 at weight 2 (synth seed 5 0.983, hymns seed 99 0.850 for both). With the continuo renderings
#: added (``render_training_chorales.py --continuo``) the same CV (folds by work over the 208 + 207
#: train-split renderings, octave choice, weight 2, varied / continuo renderings) gave: 0.913 / 0.928 at
#: penalty 1 and 0.918 / 0.932 at penalty 3 with the old features, which doubled the 100 BPM funk song of
#: tests/test_flow.py; 0.928 / 0.957 at penalty 3 with every feature also times the pulse-change ratio,
#: which left a clean 110 BPM metronome's octave less sure than a noisy one's (0.64 against 0.99:
#: tests/test_tempo.py::test_confidence_drops_with_noise); 0.909 / 0.952 at penalty 1 and 0.918 / 0.957 at
#: penalty 3 with only the candidate's own amplitudes times the ratio (tasks/features/tempo/octave.py, chosen:
#: check split 0.902 / 0.961, synth seed 5 0.975, drum loops 0.567 against 0.667 before). The model before
#: the continuo renderings scored 0.899 on the continuo ones. Texture (``ANALYZER_VERSION`` 4), the same CV
#: repeated over six fold draws (seeds 0-2 / 3-5; the evidence of every item cached once): the model above
#: 0.926 / 0.953 and 0.917 / 0.960; with the candidate's amplitudes and the prior (x, x squared) times the
#: attack rise (tasks/features/tempo/octave.py; of 5 rise statistics the 99th percentiles were best) 0.933 / 0.965 and
#: 0.928 / 0.961; the amplitudes also times the onset smoothness 0.939 / 0.966 and 0.933 / 0.963 (penalty 1
#: and 10: within 0.01), but a metronome under -10 dB of noise and flat-level legato envelopes
#: (tests/test_tempo.py) lay outside the fit's textures and got the wrong octave; both scaled numbers clipped
#: to +-1.5 (chosen: 0.936 / 0.968 and 0.934 / 0.969; clipped to +-2.5 or +-2 the flat level still failed;
#: check split 0.902 / 0.980, synth seed 0 0.992, seed 5 0.992, hymns seed 99 0.883, drum loops 0.633).
#: Tried and left: the prior times the onset smoothness, the peakiness of the onsets or the level's rise/fall
#: balance (no better in CV, some worse on synth seed 0 or the drum loops); the prior also times the
#: pulse-change ratio (0.938 / 0.965, but synth seed 0 0.967, check split 0.882); the levels 1/2 and 2 times
#: the rise (0.934 / 0.969, drums 0.750, but check split 0.882); Bach weight 3 (0.944 / 0.968, at a cost to
#: the synthesized sets). Version 5, slow chorales doubled (CV errors by type, mean of fold draws 0-2, of
#: 415: 8.0 doubled, all under 80 BPM, 11.0 halved): with the low band's log amplitude at half the candidate
#: times the scaled onset smoothness (chosen) 0.941 / 0.973, 6.3 doubled, 10.7 halved (draws 3-5: 0.939 /
#: 0.974, 6.3, 10.7 against 0.934 / 0.969, 7.7, 11.3); check split 0.922 / 1.000, synth seed 0 0.992, seed
#: 5 0.983, hymns seed 99 0.883, drum loops 0.667. Stronger alone but each costing hymns seed 99 three of
#: 60 (0.833): the mid band, all onsets or the harmonic change at half the candidate times the smoothness
#: (0.952 / 0.976, 2.7 doubled; 0.941 / 0.977, 3.7; 0.955 / 0.977, 3.3), all five envelopes at 1/2 and 2
#: (0.949 / 0.976, 3.3); gated to the smoothest textures (relu of the scaled smoothness, or of it minus 0.5)
#: or times the pulse-change ratio or the rise they lost most of the gain. No better: a hinge penalty below
#: the range (x < -0.5, -1 or -1.5; also times the smoothness or the rise: 0.936-0.939 / 0.968, 7.3-8.0
#: doubled); the harmonic change at the candidate minus at twice it times the smoothness, the rise or the
#: pulse-change ratio (0.936-0.938 / 0.966-0.968, 8.0-8.3); x, x squared times the smoothness (0.941 /
#: 0.971, 7.0, but hymns seed 99 0.867, synth seed 5 0.983). The rendered test chorales play no part.
#: Development set (``recipedev``: 88 renderings of 44 unused works by the test recipe, which makes every
#: voice a piano, not strings over a piano bass): version 5 gets 0.898, the 9 errors all slow ones doubled (8
#: of 22 at 63 BPM, 1 of 17 at 70), against 7.3 of 114 slow doubled in this CV (own fold draws 0-2: 0.941 /
#: 0.973, 9.7 halved) and 48 of 51 on ``reccheck``. Tried (CV as above, plus the train split's test-recipe
#: renderings, ``--recipe``, in the fit at weight w): those renderings alone (w 0.25-2: CV 0.929-0.944 /
#: 0.965-0.973, dev 0.92-0.99, but synth seed 5 and the drum loops lose 1-5, no better in total); with the
#: mid band at half the candidate times the smoothness too, 0.946 / 0.974, 3.3 doubled (w 0.5; dev 86 of
#: 88, hymns seed 99 50 of 60, drums 44 of 60), but a metronome under -10 dB of noise and two legato tests of
#: tests/test_tempo.py failed; with that smoothness floored at -0.5 the tests pass (0.946 / 0.971, 3.7
#: doubled, dev 84 of 88) but CV, checks, synth, hymns and drums sum 1.3 items under version 5 (hymns -2).
#: Version 7 is that floored variant all the same: it halves slow doubling in CV and gains 5 of the 88
#: development renderings, whose texture (a piano on every voice) is the benchmark's, for 2 of the 60
#: synthesized hymns; synth, drums and the check splits hold.
BACH_WEIGHT = 2.0
#: Weight of a training chorale rendered by the test set's recipe (``render_training_chorales.py --recipe``).
RECIPE_WEIGHT = 0.5
FIT_LAMBDA = 3.0
_OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


# ---------------------------------------------------------------- methods (audio or Spectrum -> bpm)


def librosa_method(spectrum: Spectrum) -> float | None:
    """Baseline: ``librosa.feature.tempo`` on the same onset envelope (autocorrelation, prior at 120)."""
    import librosa

    return float(librosa.feature.tempo(onset_envelope=spectrum.onset_envelope, sr=SR, hop_length=HOP_LENGTH)[0])


def essentia_method() -> Callable[[np.ndarray], float | None] | None:
    try:
        import essentia
        import essentia.standard as es
    except ImportError:
        return None
    import soxr

    essentia.log.infoActive = False
    ex = es.RhythmExtractor2013(method="multifeature")

    def run(y: np.ndarray) -> float | None:
        bpm = ex(soxr.resample(y, SR, 44100).astype(np.float32))[0]
        return float(bpm) if bpm > 0 else None

    return run


def score(est: float | None, ref: float) -> tuple[bool, bool, bool]:
    """(acc1, acc2, within 0.5 BPM) of one estimate."""
    if not est:
        return False, False, False
    return (
        abs(est - ref) <= 0.04 * ref,
        any(abs(est - ref * r) <= 0.04 * ref * r for r in _OCTAVES),
        abs(est - ref) <= 0.5,
    )


def evaluate_tempo(
    specs: Sequence, *, title: str = "synth", essentia: bool = True, verbose: bool = False
) -> dict[str, dict[str, float]]:
    """Score cratedig, librosa (and Essentia) on ``specs`` (SongSpecs or items); prints and returns metrics.

    ``ms_per_track`` is CPU time. cratedig and librosa get the track's shared Spectrum with its
    ``log_mel`` already computed (it is shared with the timbre features); Essentia gets the audio.
    """
    items = synth_items(specs) if specs and not isinstance(specs[0], tuple) else list(specs)
    spectra = [compute_spectrum(y) for _, y, _ in items]
    for s in spectra:
        s.log_mel  # noqa: B018  (warm the shared view, as the pipeline does)
    methods: dict[str, tuple[Callable, bool]] = {
        "cratedig": (lambda s: tempo.estimate_tempo(s).bpm, True),
        "librosa": (librosa_method, True),
    }
    ess = essentia_method() if essentia else None
    if ess is not None:
        methods["essentia"] = (ess, False)
    out = {}
    for name, (fn, on_spectrum) in methods.items():
        hits, cpu = [], 0.0
        for (label, y, ref), spec in zip(items, spectra):
            t0 = time.process_time()
            est = fn(spec if on_spectrum else y)
            cpu += time.process_time() - t0
            hits.append(score(est, ref))
            if verbose and not hits[-1][2]:
                print(f"    {name:9s} {label:32s} ref={ref:7.2f} est={est}")
        h = np.array(hits, dtype=float)
        out[name] = dict(
            acc1=h[:, 0].mean(),
            acc2=h[:, 1].mean(),
            within_05=h[:, 2].mean(),
            ms_per_track=1000 * cpu / len(items),
            n=len(items),
        )
        print(
            f"{title:9s} {name:9s} n={len(items):4d} Acc1={h[:, 0].mean():.3f} Acc2={h[:, 1].mean():.3f} "
            f"+-0.5BPM={h[:, 2].mean():.3f} ms/track={out[name]['ms_per_track']:.1f}",
            flush=True,
        )
    return out


def time_3min(repeats: int = 5) -> dict[str, float]:
    """Median CPU ms of :func:`~tasks.features.tempo.estimate.estimate_tempo` on a 3-minute song."""
    from tasks.synth.songs import SongSpec, render_song

    y = render_song(
        SongSpec(bpm=126.5, tonic=3, duration_s=180.0, style="funk", tempo_drift=0.01, seed=5), stereo=False
    )
    warm, cold = [], []
    for _ in range(repeats):
        spec = compute_spectrum(y)
        t0 = time.process_time()
        tempo.estimate_tempo(spec)  # computes mel_power and log_mel on the way
        cold.append(time.process_time() - t0)
        t0 = time.process_time()
        tempo.estimate_tempo(spec)
        warm.append(time.process_time() - t0)
    return {"ms_warm": 1000 * float(np.median(warm)), "ms_with_log_mel": 1000 * float(np.median(cold))}


# ---------------------------------------------------------------- octave model fit


def octave_training_data(items: Iterable[Item]) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Per item: candidate BPMs (n,), their features (n, d) as ``estimate_tempo`` sees them, and the reference."""
    out = []
    for _, y, ref in items:
        spec = compute_spectrum(y)
        pulse, _, ratios, feats = tempo.octave_evidence(
            tempo.onset_bands(spec).astype(np.float64),
            frame_mean_square(spec),
            tempo.harmonic_change(spec),
            spec.frame_rate,
            tempo.BPM_RANGE,
        )
        out.append((ratios * 60 * pulse.freq, feats, ref))
    return out


def write_octave_weights(w: np.ndarray, *, checks: dict[str, float]) -> Path:
    """Write fitted weights ``w`` (the order of ``octave_weights()``) to the model's data file, with provenance."""
    import json
    import subprocess
    from datetime import date

    n_lv = len(tempo_octave.LEVELS)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    path = Path(tempo_octave.__file__).with_name(tempo_octave.WEIGHTS_FILE)
    old = json.loads(path.read_text())
    data = {
        "provenance": old["provenance"]
        | {
            "fitted_by": "python -m bench.tempo_eval --fit",
            "fitted_on": date.today().isoformat(),
            "fitted_in_commit": commit or "unknown",
            "check_accuracy": checks,
        },
        "W_PRIOR": np.round(w[:2], 3).tolist(),
        "W_LEVELS": np.round(w[2 : 2 + 5 * n_lv].reshape(-1, n_lv), 3).tolist(),
        "W_BY_TEXTURE": np.round(w[2 + 5 * n_lv : -4].reshape(3, -1), 3).tolist(),
        "W_PRIOR_BY_RISE": np.round(w[-4:-2], 3).tolist(),
        "W_HALF_BY_SMOOTHNESS": np.round(w[-2:], 3).tolist(),
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"weights written to {path}")
    return path


def fit_octave_weights(
    data: list[tuple[np.ndarray, np.ndarray, float]], *, lam: float = 0.3, sample_weight: Sequence[float] | None = None
) -> np.ndarray:
    """Conditional-logit weights (prior first, then levels) maximising the likelihood of the right candidate.

    L2 penalty ``lam`` on the level weights only. Items whose candidates miss the reference are skipped.
    """
    rows = []
    for i, (bpms, feats, ref) in enumerate(data):
        ok = np.flatnonzero(np.abs(bpms - ref) <= 0.04 * ref)
        if len(ok):
            rows.append((feats, int(ok[0]), 1.0 if sample_weight is None else sample_weight[i]))

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        val, grad = lam * np.sum(w[2:] ** 2), np.r_[0.0, 0.0, 2 * lam * w[2:]]
        for feats, t, sw in rows:
            s = feats @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            val -= sw * np.log(p[t] + 1e-300)
            grad -= sw * (feats[t] - p @ feats)
        return val, grad

    return scipy.optimize.minimize(nll, np.zeros(rows[0][0].shape[1]), jac=True, method="L-BFGS-B").x


def octave_accuracy(data: list[tuple[np.ndarray, np.ndarray, float]], w: np.ndarray) -> float:
    return float(np.mean([abs(b[int(np.argmax(f @ w))] - ref) <= 0.04 * ref for b, f, ref in data]))


def main() -> None:
    from tasks.synth.songs import ground_truth_set

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit", action="store_true", help="refit the octave model and print its weights")
    ap.add_argument("--verbose", action="store_true", help="list the tracks each method gets wrong")
    ap.add_argument(
        "--sets",
        default="synth,chorales,timing",
        help="comma-separated: synth, chorales, bachcheck, contcheck, reccheck, recipedev, timing",
    )
    ap.add_argument("--no-essentia", action="store_true", help="leave Essentia out (it takes most of the time)")
    args = ap.parse_args()
    sets = args.sets.split(",")
    if args.fit:
        songs = [it for seed in (1, 2, 3, 4) for it in synth_items(ground_truth_set(args.n, seed=seed))]
        drums = drum_items()
        bach = training_chorale_items("train") + training_chorale_items("train", "continuo")
        recipe = training_chorale_items("train", "recipe")
        train = octave_training_data(songs + click_items() + hymn_items() + bach + recipe + drums)
        n_other = len(train) - len(bach) - len(recipe) - len(drums)
        weights = (
            [1.0] * n_other + [BACH_WEIGHT] * len(bach) + [RECIPE_WEIGHT] * len(recipe) + [DRUM_WEIGHT] * len(drums)
        )
        w = fit_octave_weights(train, sample_weight=weights, lam=FIT_LAMBDA)
        # The rendered test chorales are left out here on purpose: the fit's printout is looked at while
        # choosing, the test set only by the plain benchmark run.
        checks = {
            "synth seed 0": synth_items(ground_truth_set(args.n, seed=0)),
            "synth seed 5": synth_items(ground_truth_set(args.n, seed=5)),
            "hymns seed 99": hymn_items(60, seed=99),
            "Bach check": training_chorale_items("check"),
            "Bach check continuo": training_chorale_items("check", "continuo"),
            "Bach check recipe": training_chorale_items("check", "recipe"),
            "drum loops (fit)": drums,
        }
        print(
            f"octave choice: train {octave_accuracy(train, w):.3f} (n={len(train)}, {len(bach)} Bach)"
            + "".join(
                f"  {k} {octave_accuracy(octave_training_data(v), w):.3f} (n={len(v)})" for k, v in checks.items() if v
            ),
            flush=True,
        )
        write_octave_weights(
            w, checks={k: round(octave_accuracy(octave_training_data(v), w), 3) for k, v in checks.items() if v}
        )
        return
    loaders: dict[str, Callable[[], Sequence]] = {
        "synth": lambda: ground_truth_set(args.n, seed=args.seed),
        "bachcheck": lambda: training_chorale_items("check"),
        "contcheck": lambda: training_chorale_items("check", "continuo"),
        "reccheck": lambda: training_chorale_items("check", "recipe"),
        "recipedev": recipe_dev_items,
        "chorales": chorale_items,
    }
    for title, load in loaders.items():
        items = load() if title in sets else []
        if items:  # a corpus set that is not built is skipped
            evaluate_tempo(items, title=title, essentia=not args.no_essentia, verbose=args.verbose)
    if "timing" in sets:
        print("3-min track:", {k: round(v, 1) for k, v in time_3min().items()}, "ms CPU")


if __name__ == "__main__":
    with recording("tempo_eval", "Tempo"):
        main()
