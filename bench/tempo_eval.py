"""Tempo benchmark: cratedig vs librosa's ``feature.tempo`` (and Essentia's RhythmExtractor2013 when importable).

    .venv/bin/python bench/tempo_eval.py              # synth ground_truth_set(120, seed=0), chorales, 3-min timing
    .venv/bin/python bench/tempo_eval.py --fit        # refit the octave model of tasks/tempo_octave.py (prints weights)
    .venv/bin/python bench/tempo_eval.py --sets chorales --no-essentia   # one set, cratedig and librosa only

Run with ``OPENBLAS_NUM_THREADS=1``: the times are CPU times, and idle BLAS threads spinning on a busy
machine can multiply them several times.

Metrics: ``acc1`` (within 4 % of the reference), ``acc2`` (within 4 % of 1, 2, 1/2, 3 or 1/3 times it),
``within_0.5`` (within +-0.5 BPM) and CPU ms per track. Items are ``(label, y, bpm)``: mono float32 audio at
``SR`` and the reference tempo. Sets:

- ``synth``: ``tasks.synth.ground_truth_set`` (60-190 BPM, 8 styles, swing, drift, noise), 30 s songs.
- ``chorales``: rendered Bach chorales in ``$CRATEDIG_CORPUS/groundtruth/ground_truth.csv`` (quarter-note
  BPM; default ``~/.cache/cratedig-corpus``), when built. Never used for fitting.

The octave model is fitted on ``ground_truth_set(seed=1..4)`` plus :func:`click_items`, :func:`hymn_items`
(seed 13; seed 99 is its check) and :func:`drum_items`, so seed 0 (the reported benchmark) and the rendered
chorales are held out.

Essentia is optional: run with ``PYTHONPATH=<site-packages holding essentia>`` to include it (it gets
44.1 kHz audio, as it expects; its time includes its own onset analysis).
"""
from __future__ import annotations

import argparse
import os

# One BLAS thread, as in the analysis workers (tasks/workers.py): CPU times then measure the work, not idle
# BLAS threads spinning on a busy machine (they inflated them 3-4x here). Set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import tempo, tempo_octave  # noqa: E402
from tasks.constants import HOP_LENGTH, SR  # noqa: E402
from tasks.spectrum import Spectrum, compute_spectrum  # noqa: E402

Item = tuple[str, np.ndarray, float]
#: Weight of a bare drum-machine item in the octave fit: enough to stop loud hats from doubling a beat,
#: small enough not to cost the songs, metronomes and chorales much (see the table in tasks/tempo.py).
DRUM_WEIGHT = 0.2
_OCTAVES = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


# ---------------------------------------------------------------- sets

def synth_items(specs: Iterable) -> list[Item]:
    """Render ``tasks.synth.SongSpec`` s to mono items."""
    from tasks.synth import render_song

    return [(f"{s.style}_{s.bpm}_{s.seed}", render_song(s, stereo=False), float(s.bpm)) for s in specs]


def click_items(n: int = 48, *, seed: int = 7) -> list[Item]:
    """Metronomes at 55-195 BPM, 15-40 s, a quarter of them in white noise (SNR 5-20 dB).

    A click track has one right answer whatever ``bpm_range`` says; they keep the octave model from
    halving or doubling a plain pulse.
    """
    from tasks.synth import click_track

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bpm = round(float(np.exp(rng.uniform(np.log(55.0), np.log(195.0)))), 2)
        y = click_track(bpm, duration_s=float(rng.uniform(15, 40)), offset_s=float(rng.uniform(0, 0.5)))
        if i % 4 == 2:
            snr = rng.uniform(5, 20)
            y = y + rng.standard_normal(len(y)).astype(np.float32) * np.sqrt(np.mean(y * y)) * 10 ** (-snr / 20)
        out.append((f"click_{bpm}", y.astype(np.float32), bpm))
    return out


_KICKS = ("x...x...x...x...", "x.......x.......", "x.......x.x.....", "x..x....x.......", "x.....x...x.....")
_HATS = ("x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "..x...x...x...x.", "x.x.x.x.x.x.x.x.")


def drum_items(n: int = 60, *, seed: int = 11, duration_s: float = 20.0) -> list[Item]:
    """Bare drum-machine beats at 60-190 BPM: a kick pattern, snare on 2 and 4, hats 0-24 dB below the kick.

    Random kit, hat pattern (8ths, 16ths below 130 BPM, off-beats), swing and noise. The beat is where
    kick and snare alternate, however loud the hats: these keep the octave model from following them.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bpm = round(float(np.exp(rng.uniform(np.log(60.0), np.log(190.0)))), 2)
        t = np.arange(int(0.4 * SR)) / SR
        kick = np.sin(2 * np.pi * np.cumsum(rng.uniform(45, 60) + rng.uniform(60, 120) * np.exp(-t * 30)) / SR)
        kick *= np.exp(-t * rng.uniform(5, 10))
        snare = (rng.uniform(0.4, 0.8) * rng.standard_normal(len(t))
                 + rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * rng.uniform(160, 240) * t))
        snare *= np.exp(-t * rng.uniform(12, 25))
        hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * rng.uniform(40, 90))
        hat *= 10 ** (-rng.uniform(0, 24) / 20) / np.abs(hat).max()
        choices = _HATS if bpm < 130 else (_HATS[0], _HATS[2])  # no 16th hats at fast tempi
        hats = choices[rng.integers(len(choices))]
        kicks = _KICKS[rng.integers(len(_KICKS))]
        swing = float(rng.choice([0.0, 0.0, rng.uniform(0.1, 0.33)]))
        step = 60.0 / bpm / 4
        y = np.zeros(int((duration_s + 1) * SR))
        for k in range(int(duration_s / step)):
            s = k % 16
            when = (k + (swing * 2 if s % 4 == 2 else 0.0)) * step
            j = int(round(when * SR))
            for pat, smp in ((kicks, kick), ("....x.......x...", snare), (hats, hat)):
                if pat[s] == "x":
                    y[j : j + len(smp)] += smp
        y = y[: int(duration_s * SR)]
        if rng.random() < 0.3:
            y += rng.standard_normal(len(y)) * np.sqrt(np.mean(y * y)) * 10 ** (-rng.uniform(5, 20) / 20)
        out.append((f"drums_{bpm}", (0.5 * y / np.abs(y).max()).astype(np.float32), bpm))
    return out


_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 11)}  # harmonic minor: a leading tone
_NEXT = {0: (3, 4, 5, 1), 1: (4, 6), 2: (5, 3), 3: (4, 0, 1), 4: (0, 5, 3), 5: (1, 3, 4), 6: (0,)}  # degree moves
_RANGES = ((40, 57), (50, 64), (57, 71), (62, 79))  # bass, tenor, alto, soprano (MIDI)
_HYMN_TIMBRES = ("organ", "saw", "square", "sine", "piano-ish", "fm", "pluck")


def _hymn_score(rng: np.random.Generator, n_beats: int) -> list[tuple[int, int, float, float]]:
    """Notes ``(voice, midi, start, length)`` in beats of a four-part chorale: a chord on (nearly) every beat,
    held two beats now and then and at phrase ends, 8th-note passing and neighbour tones in each voice now and
    then (from rarely to on most beats), and in some pieces a voice that repeats its note in 8ths."""
    scale = _SCALES[rng.choice(list(_SCALES))]
    tonic = int(rng.integers(12))
    pcs = [(tonic + s) % 12 for s in scale]
    p_pass, p_hold = rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.3)
    repeat_voice = int(rng.integers(4)) if rng.random() < 0.3 else -1
    phrase = int(rng.choice([4, 6, 8]))
    chords, beat, deg = [], 0, 0
    while beat < n_beats:
        length = 2 if (beat % phrase == phrase - 2 or rng.random() < p_hold) else 1
        chords.append((beat, length, deg))
        beat += length
        deg = int(rng.choice(_NEXT[deg]))
    notes, prev = [], [48, 55, 64, 72]
    for ci, (start, length, deg) in enumerate(chords):
        tones = {pcs[deg], pcs[(deg + 2) % 7], pcs[(deg + 4) % 7]}
        cur = []
        for v, (lo, hi) in enumerate(_RANGES):
            want = {pcs[deg]} if v == 0 else tones
            cands = [m for m in range(lo, hi + 1) if m % 12 in want]
            cur.append(min(cands, key=lambda m: (abs(m - prev[v]), rng.random())))
        nxt_start = chords[ci + 1][0] if ci + 1 < len(chords) else start + length
        for v, m in enumerate(cur):
            if v == repeat_voice:
                notes += [(v, m, start + 0.5 * k, 0.5) for k in range(2 * length)]
                continue
            # A passing (or neighbour) tone on the last 8th of the chord, a step away in the scale.
            if rng.random() < p_pass and nxt_start < n_beats:
                step = [x for x in range(m - 2, m + 3) if x != m and x % 12 in pcs]
                notes += [(v, m, start, length - 0.5), (v, int(rng.choice(step)), start + length - 0.5, 0.5)]
            else:
                notes.append((v, m, start, float(length)))
        prev = cur
    return notes


def hymn_items(n: int = 320, *, seed: int = 13, duration_s: float = 30.0) -> list[Item]:
    """Four-part chorales at 50-150 BPM, no percussion: the beat is the chord change, the notes move in 8ths.

    Random timbre per voice (sustained with a 10-120 ms attack, or struck and decaying), loudness and timing
    jitter, room reverb and noise now and then. They teach the octave model the harmonic rhythm of music
    with no drums, which neither the songs nor the drum loops show.
    """
    from tasks.synth_voices import midi_hz, reverb, tone

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        bpm = round(float(np.exp(rng.uniform(np.log(50.0), np.log(150.0)))), 2)
        beat = 60.0 / bpm
        timbres = rng.choice(_HYMN_TIMBRES, 4) if rng.random() < 0.5 else [rng.choice(_HYMN_TIMBRES)] * 4
        attack = rng.uniform(0.01, 0.12)
        jitter = rng.choice([0.0, rng.uniform(0.003, 0.02)])
        n_samples = int(duration_s * SR)
        y = np.zeros(n_samples + SR)
        for v, m, start, length in _hymn_score(rng, int(duration_s / beat) + 1):
            t0 = int(round((start * beat + rng.normal(0, jitter) + 0.05) * SR))
            if t0 < 0 or t0 >= n_samples:
                continue
            k = min(int((length * beat + 0.03) * SR), len(y) - t0)
            kind = str(timbres[v])
            note = tone(kind, midi_hz(m), k, SR, rng)
            env = np.minimum(1.0, np.arange(k) / max(1.0, attack * SR)) if kind in ("organ", "saw", "square", "sine") \
                else np.ones(k)
            rel = min(k, int(0.03 * SR))
            env[k - rel :] *= np.linspace(1.0, 0.0, rel)
            y[t0 : t0 + k] += note * env * 10 ** (rng.normal(0, 2.0) / 20) * (1.3 if v in (0, 3) else 1.0)
        y = y[:n_samples]
        if rng.random() < 0.5:
            y = y + rng.uniform(0.1, 0.5) * reverb(y.astype(np.float32), SR, rng, rt60=rng.uniform(0.8, 2.5))[0]
        if rng.random() < 0.2:
            y = y + rng.standard_normal(len(y)) * np.sqrt(np.mean(y * y)) * 10 ** (-rng.uniform(10, 30) / 20)
        out.append((f"hymn_{bpm}", (0.5 * y / np.abs(y).max()).astype(np.float32), bpm))
    return out


def chorale_items(root: str | os.PathLike | None = None) -> list[Item]:
    """Rendered Bach chorales with the quarter-note BPM of the score (empty list when not built)."""
    from bench.corpus import chorale_rows
    from tasks.decode import decode_audio

    return [(Path(r["file"]).name, decode_audio(r["file"]).y, float(r["bpm"])) for r in chorale_rows(root)
            if r.get("bpm")]


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
    return (abs(est - ref) <= 0.04 * ref, any(abs(est - ref * r) <= 0.04 * ref * r for r in _OCTAVES),
            abs(est - ref) <= 0.5)


def evaluate_tempo(specs: Sequence, *, title: str = "synth", essentia: bool = True,
                   verbose: bool = False) -> dict[str, dict[str, float]]:
    """Score cratedig, librosa (and Essentia) on ``specs`` (SongSpecs or items); prints and returns metrics.

    ``ms_per_track`` is CPU time. cratedig and librosa get the track's shared Spectrum with its
    ``log_mel`` already computed (it is shared with the timbre features); Essentia gets the audio.
    """
    items = synth_items(specs) if specs and not isinstance(specs[0], tuple) else list(specs)
    spectra = [compute_spectrum(y) for _, y, _ in items]
    for s in spectra:
        s.log_mel  # noqa: B018  (warm the shared view, as the pipeline does)
    methods: dict[str, tuple[Callable, bool]] = {
        "cratedig": (lambda s: tempo.estimate_tempo(s).bpm, True), "librosa": (librosa_method, True)}
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
        out[name] = dict(acc1=h[:, 0].mean(), acc2=h[:, 1].mean(), within_05=h[:, 2].mean(),
                         ms_per_track=1000 * cpu / len(items), n=len(items))
        print(f"{title:9s} {name:9s} n={len(items):4d} Acc1={h[:, 0].mean():.3f} Acc2={h[:, 1].mean():.3f} "
              f"+-0.5BPM={h[:, 2].mean():.3f} ms/track={out[name]['ms_per_track']:.1f}", flush=True)
    return out


def time_3min(repeats: int = 5) -> dict[str, float]:
    """Median CPU ms of :func:`tasks.tempo.estimate_tempo` on a 3-minute song, with and without ``log_mel``."""
    from tasks.synth import SongSpec, render_song

    y = render_song(SongSpec(bpm=126.5, tonic=3, duration_s=180.0, style="funk", tempo_drift=0.01, seed=5),
                    stereo=False)
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
    """Per item: candidate BPMs (n,), their features (n, d) as :func:`tasks.tempo.estimate_tempo` sees them, ref."""
    out = []
    for _, y, ref in items:
        spec = compute_spectrum(y)
        bands = tempo.onset_bands(spec).astype(np.float64)
        o = bands[0] - bands[0].mean()
        pulse = tempo.track_pulse(o, spec.frame_rate, tempo._strongest_pulse(o, spec.frame_rate) / 60.0)
        amp = tempo_octave.Amplitudes(np.vstack([bands, tempo.harmonic_change(spec)]), pulse.phase)
        ratios, feats = tempo_octave.octave_features(amp, 60 * pulse.freq, tempo.BPM_RANGE)
        out.append((ratios * 60 * pulse.freq, feats, ref))
    return out


def fit_octave_weights(data: list[tuple[np.ndarray, np.ndarray, float]], *, lam: float = 0.3,
                       sample_weight: Sequence[float] | None = None) -> np.ndarray:
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
    from tasks.synth import ground_truth_set

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fit", action="store_true", help="refit the octave model and print its weights")
    ap.add_argument("--verbose", action="store_true", help="list the tracks each method gets wrong")
    ap.add_argument("--sets", default="synth,chorales,timing", help="comma-separated: synth, chorales, timing")
    ap.add_argument("--no-essentia", action="store_true", help="leave Essentia out (it takes most of the time)")
    args = ap.parse_args()
    sets = args.sets.split(",")
    if args.fit:
        songs = [it for seed in (1, 2, 3, 4) for it in synth_items(ground_truth_set(args.n, seed=seed))]
        drums = drum_items()
        train = octave_training_data(songs + click_items() + hymn_items() + drums)
        test = octave_training_data(synth_items(ground_truth_set(args.n, seed=0)))
        hymns = octave_training_data(hymn_items(60, seed=99))
        chor = octave_training_data(chorale_items())
        w = fit_octave_weights(train, sample_weight=[1.0] * (len(train) - len(drums)) + [DRUM_WEIGHT] * len(drums))
        print(f"octave choice: train {octave_accuracy(train, w):.3f}  synth seed 0 {octave_accuracy(test, w):.3f}"
              f"  hymns seed 99 {octave_accuracy(hymns, w):.3f}"
              + (f"  chorales {octave_accuracy(chor, w):.3f}" if chor else ""))
        np.set_printoptions(precision=3, suppress=True)
        print("W_PRIOR =", repr(w[:2]))
        print("W_LEVELS =", repr(w[2:].reshape(-1, len(tempo_octave.LEVELS))))
        return
    ess = not args.no_essentia
    if "synth" in sets:
        evaluate_tempo(ground_truth_set(args.n, seed=args.seed), title="synth", essentia=ess, verbose=args.verbose)
    chor = chorale_items() if "chorales" in sets else []
    if chor:
        evaluate_tempo(chor, title="chorales", essentia=ess, verbose=args.verbose)
    if "timing" in sets:
        print("3-min track:", {k: round(v, 1) for k, v in time_3min().items()}, "ms CPU")


if __name__ == "__main__":
    main()
