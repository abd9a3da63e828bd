"""Tempo benchmark: cratedig vs librosa's ``feature.tempo`` (and Essentia's RhythmExtractor2013 when importable).

    .venv/bin/python bench/tempo_eval.py              # synth ground_truth_set(120, seed=0), chorales, 3-min timing
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

The octave model is fitted by ``bench/devset_octave.py`` (on material issue 19 permits: synth seeds 1-4,
metronomes, synthesized chorales, drum loops and the dev set); seed 0, the training chorales and the rendered
test chorales play no part in it. The training chorales come from the start of music21's chorale list, which
issue 19 holds out: use them to look, not to choose.

Essentia is optional: run with ``PYTHONPATH=<site-packages holding essentia>`` to include it (it gets
44.1 kHz audio, as it expects; its time includes its own onset analysis).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np

from bench.results import recording
from bench.tempo_sets import chorale_items, recipe_dev_items, synth_items, training_chorale_items
from tasks.constants import HOP_LENGTH, SR
from tasks.features.spectrum import Spectrum, compute_spectrum
from tasks.features.tempo import estimate as tempo

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


def main() -> None:
    from tasks.synth.songs import ground_truth_set

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="list the tracks each method gets wrong")
    ap.add_argument(
        "--sets",
        default="synth,chorales,timing",
        help="comma-separated: synth, chorales, bachcheck, contcheck, reccheck, recipedev, timing",
    )
    ap.add_argument("--no-essentia", action="store_true", help="leave Essentia out (it takes most of the time)")
    args = ap.parse_args()
    sets = args.sets.split(",")
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
