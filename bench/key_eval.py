"""Key benchmark: cratedig vs a librosa baseline (and Essentia's KeyExtractor when importable).

    .venv/bin/python bench/key_eval.py                 # synthesized set + Bach chorales (if rendered)
    .venv/bin/python bench/key_eval.py --profiles      # compare every key profile (docstring table)

(about 10 minutes on one core, mostly rendering the synthetic songs and librosa's CQT).

Items are ``(label, y, key)``: mono float32 audio at ``SR`` and the reference key ('A minor', 'Bb major').
Sets:

- ``synth``: :func:`synth_items` here: all 24 keys x 4, random timbres (sine, saw, square, organ,
  inharmonic piano, FM bell), chord progressions + melody + bass, detuning up to +-45 cents, drums on
  half, noise (SNR 3..25 dB) on half.
- ``synth.py/0``, ``synth.py/1``: ``tasks.synth.songs.ground_truth_set(n=120, seed=0)`` and ``(n=240, seed=1)``
  (the project's shared generator: 7 timbres, 8 styles, all 24 keys).
- ``chorales``: rendered Bach chorales listed in ``$CRATEDIG_CORPUS/groundtruth/ground_truth.csv``
  (default ``~/.cache/cratedig-corpus``).

Essentia is optional: run with ``PYTHONPATH=<site-packages holding essentia>`` to include it.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bench.results import recording
from tasks.constants import HOP_LENGTH, SR
from tasks.features.key.estimate import PROFILES, _estimate, _Params, estimate_key, key_scores
from tasks.features.key.names import KEY_NAMES, mirex_score
from tasks.features.spectrum import compute_spectrum

Item = tuple[str, np.ndarray, str]

# ---------------------------------------------------------------- synthetic set

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_HARM_MINOR = (0, 2, 3, 5, 7, 8, 11)
# Progressions as scale degrees (0-based) of chord roots; triads built from the scale.
_PROG_MAJOR = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4))
_PROG_MINOR = ((0, 3, 4, 0), (0, 5, 2, 6), (0, 6, 5, 4), (0, 3, 6, 2), (0, 5, 3, 4), (0, 3, 4, 4))


def _tone(f0: float, dur: float, timbre: str, rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(dur * sr)
    t = np.arange(n) / sr
    if timbre == "sine":
        parts = [(1, 1.0)]
    elif timbre == "saw":
        parts = [(k, 1.0 / k) for k in range(1, 16)]
    elif timbre == "square":
        parts = [(k, 1.0 / k) for k in range(1, 16, 2)]
    elif timbre == "organ":
        parts = [(1, 1.0), (2, 0.7), (4, 0.5), (8, 0.3), (3, 0.3)]
    elif timbre == "piano":
        B = 4e-4  # string inharmonicity: partial k at k*sqrt(1+B k^2)
        parts = [(k * np.sqrt(1 + B * k * k), 0.9**k / k**0.5) for k in range(1, 12)]
    elif timbre == "bell":  # FM bell: inharmonic partials
        mod = np.sin(2 * np.pi * f0 * 1.4 * t) * 2.0 * np.exp(-t * 3)
        return (np.sin(2 * np.pi * f0 * t + mod) * np.exp(-t * 2.5)).astype(np.float32)
    else:
        raise ValueError(timbre)
    y = np.zeros(n)
    for k, a in parts:
        if f0 * k < sr / 2 - 500:
            y += a * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (dur - t) / 0.05).clip(0)
    if timbre in ("piano", "bell"):
        env *= np.exp(-t * 1.5)
    return (y * env).astype(np.float32)


def synth_song(
    tonic: int,
    mode: int,
    *,
    seed: int,
    duration_s: float = 24.0,
    sr: int = SR,
    timbres: tuple[str, str, str] | None = None,
    detune_cents: float = 0.0,
    snr_db: float | None = None,
    drums: bool = False,
) -> np.ndarray:
    """A chord progression with bass and melody in ``tonic`` (pitch class) and ``mode`` (0 major, 1 minor)."""
    rng = np.random.default_rng(seed)
    scale = _HARM_MINOR if mode else _MAJOR
    nat = (0, 2, 3, 5, 7, 8, 10) if mode else _MAJOR
    prog = (_PROG_MINOR if mode else _PROG_MAJOR)[rng.integers(6)]
    names = ("sine", "saw", "square", "organ", "piano", "bell")
    chord_t, bass_t, mel_t = timbres or tuple(rng.choice(names, 3))
    ref = 440.0 * 2 ** (detune_cents / 1200)
    hz = lambda midi: ref * 2 ** ((midi - 69) / 12)  # noqa: E731
    base = 48 + tonic  # C3..B3
    bar = 2.0
    y = np.zeros(int(duration_s * sr) + sr, dtype=np.float32)
    n_bars = int(duration_s / bar)
    for b in range(n_bars):
        deg = prog[b % len(prog)]
        # minor progressions use the natural minor except for the dominant (degree 4) and vii
        sc = scale if (mode and deg in (4,)) else nat
        triad = [sc[(deg + i) % 7] + 12 * ((deg + i) // 7) for i in (0, 2, 4)]
        i0 = int(b * bar * sr)
        for m in triad:
            tone = _tone(hz(base + m), bar, chord_t, rng, sr) * 0.25
            y[i0 : i0 + len(tone)] += tone
        bass = _tone(hz(base - 12 + triad[0]), bar, bass_t, rng, sr) * 0.35
        y[i0 : i0 + len(bass)] += bass
        for q in range(4):  # melody: chord tones and passing scale tones
            m = triad[rng.integers(3)] if rng.random() < 0.6 else sc[rng.integers(7)]
            tone = _tone(hz(base + 12 + m), bar / 4, mel_t, rng, sr) * 0.2
            j = i0 + int(q * bar / 4 * sr)
            y[j : j + len(tone)] += tone
    y = y[: int(duration_s * sr)]
    if drums:
        beat = int(0.5 * sr)
        t = np.arange(int(0.15 * sr)) / sr
        kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 25)
        hat = rng.standard_normal(int(0.05 * sr)) * np.exp(-np.arange(int(0.05 * sr)) / sr * 80) * 0.3
        for j in range(0, len(y) - len(kick), beat):
            y[j : j + len(kick)] += 0.8 * kick
            h = j + beat // 2
            y[h : h + len(hat)] += hat[: len(y) - h]
    if snr_db is not None:
        noise = rng.standard_normal(len(y))
        if rng.random() < 0.5:  # pink-ish: integrate white noise lightly
            noise = np.convolve(noise, np.exp(-np.arange(64) / 16), mode="same")
        noise *= np.sqrt(np.mean(y**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
        y = y + noise
    return (y / (np.abs(y).max() + 1e-9) * 0.9).astype(np.float32)


def synth_items(n_per_key: int = 4, *, seed: int = 0, duration_s: float = 24.0) -> list[Item]:
    """``24 * n_per_key`` songs: every key, random timbres, detune, drums and noise."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_per_key):
        for k, name in enumerate(KEY_NAMES):
            detune = float(rng.uniform(-45, 45))
            snr = None if i % 2 == 0 else float(rng.uniform(3, 25))
            y = synth_song(
                k % 12,
                k // 12,
                seed=int(rng.integers(1 << 30)),
                duration_s=duration_s,
                detune_cents=detune,
                snr_db=snr,
                drums=bool(rng.random() < 0.5),
            )
            items.append((f"synth{i}_{name.replace(' ', '_')}", y, name))
    return items


def synth_module_items(n: int = 120, *, seed: int = 0) -> list[Item] | None:
    """Items from ``tasks.synth.songs.ground_truth_set`` when that module exists, else None."""
    try:
        from tasks.synth import songs as synth
    except ImportError:
        return None
    out = []
    for i, s in enumerate(synth.ground_truth_set(n=n, seed=seed)):
        y = synth.render_song(s, stereo=False)
        out.append((f"synth.py{i:03d}_{s.timbre}_{s.style}", y, s.key))
    return out


def pad_items() -> list[Item]:
    """``tasks.synth.voices.chord_tone`` pads (tonic triad loud, natural-scale tones soft) in all 24 keys, 3 s."""
    from tasks.synth.voices import chord_tone

    return [
        (f"pad_{k.replace(' ', '_')}", chord_tone(i % 12, k.split()[1], duration_s=3.0), k)
        for i, k in enumerate(KEY_NAMES)
    ]


def chorale_items(root: str | os.PathLike | None = None) -> list[Item]:
    """Rendered Bach chorales with the key from the score (empty list when not built)."""
    from bench.corpus import chorale_rows
    from tasks.audio.decode import decode_audio

    return [(Path(r["file"]).name, decode_audio(r["file"]).y, r["key"]) for r in chorale_rows(root)]


# ---------------------------------------------------------------- methods


def cratedig_method(y: np.ndarray) -> str | None:
    return estimate_key(compute_spectrum(y)).key


def librosa_method(y: np.ndarray) -> str | None:
    """Naive baseline: mean ``chroma_cqt`` correlated with Krumhansl-Kessler profiles."""
    import librosa

    chroma = librosa.feature.chroma_cqt(y=y, sr=SR, hop_length=HOP_LENGTH).mean(axis=1)
    return KEY_NAMES[int(np.argmax(key_scores(chroma, profile="krumhansl")))]


def essentia_method(profile: str = "bgate") -> Callable[[np.ndarray], str | None] | None:
    try:
        import essentia
        import essentia.standard as es
    except ImportError:
        return None
    essentia.log.infoActive = False
    ex = es.KeyExtractor(sampleRate=SR, profileType=profile)

    def run(y: np.ndarray) -> str | None:
        k, scale, _ = ex(np.ascontiguousarray(y, dtype=np.float32))
        return f"{k} {scale}"

    return run


def evaluate_key(
    items: Iterable[Item], methods: dict[str, Callable] | None = None, *, title: str = ""
) -> dict[str, dict[str, float]]:
    """Score each method on ``items``; prints and returns MIREX score, exact rate and ms per track.

    ``ms_per_track`` is CPU time; for cratedig it excludes the shared STFT (computed once per track
    for every feature) and the per-3-minute figure is reported by :func:`time_3min`.
    """
    items = list(items)
    if methods is None:
        methods = {"cratedig": None, "librosa": librosa_method}
        ess = essentia_method()
        if ess is not None:
            methods["essentia"] = ess
    specs = None
    out = {}
    for name, fn in methods.items():
        scores, exact, cpu = [], [], 0.0
        if fn is None:  # cratedig: time the key step on a precomputed Spectrum
            specs = specs or [compute_spectrum(y) for _, y, _ in items]
        for j, (_, y, ref) in enumerate(items):
            t0 = time.process_time()
            est = estimate_key(specs[j]).key if fn is None else fn(y)
            cpu += time.process_time() - t0
            s = mirex_score(est, ref) if est else 0.0
            scores.append(s)
            exact.append(s == 1.0)
        sec = sum(len(y) for _, y, _ in items) / SR
        out[name] = dict(
            mirex=float(np.mean(scores)),
            exact=float(np.mean(exact)),
            ms_per_track=1000 * cpu / len(items),
            ms_per_3min=1000 * cpu / sec * 180,
        )
        print(
            f"{title:10s} {name:10s} n={len(items):4d} MIREX={out[name]['mirex']:.3f} "
            f"exact={out[name]['exact']:.3f} ms/track={out[name]['ms_per_track']:.1f} "
            f"ms/3min={out[name]['ms_per_3min']:.1f}",
            flush=True,
        )
    return out


def profile_table(sets: dict[str, list[Item]], params: _Params = _Params()) -> None:
    """MIREX score per key profile on each set (same chroma), for the module docstring."""
    specs = {k: [compute_spectrum(y) for _, y, _ in v] for k, v in sets.items()}
    print("profile     " + "  ".join(f"{k:>18s}" for k in sets))
    for prof in PROFILES:
        p = _Params(**{**params.__dict__, "profile": prof})
        row = []
        for k, v in sets.items():
            sc = [mirex_score(_estimate(s, p).key or "C major", ref) for s, (_, _, ref) in zip(specs[k], v)]
            ex = np.mean([x == 1 for x in sc])
            row.append(f"{np.mean(sc):.3f} ({ex:.2f} exact)")
        print(f"{prof:11s} " + "  ".join(f"{r:>18s}" for r in row), flush=True)


def time_3min(repeats: int = 5) -> float:
    """CPU ms of :func:`estimate_key` on the Spectrum of a 3-minute synthesized song (median)."""
    y = synth_song(9, 1, seed=1, duration_s=180.0, snr_db=20.0, drums=True)
    spec = compute_spectrum(y)
    ts = []
    for _ in range(repeats):
        t0 = time.process_time()
        estimate_key(spec)
        ts.append(time.process_time() - t0)
    return 1000 * float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiles", action="store_true", help="compare key profiles only")
    ap.add_argument("--n-per-key", type=int, default=4)
    ap.add_argument("--corpus", default=None)
    args = ap.parse_args()
    sets = {"synth": synth_items(args.n_per_key)}
    for n, seed in ((120, 0), (240, 1)):
        mod = synth_module_items(n, seed=seed)
        if mod:
            sets[f"synth.py/{seed}"] = mod
    ch = chorale_items(args.corpus)
    if ch:
        sets["chorales"] = ch
    if args.profiles:
        profile_table({**sets, "pads": pad_items()})
        return
    for name, items in sets.items():
        evaluate_key(items, title=name)
    print(f"cratedig estimate_key on a 3-minute Spectrum: {time_3min():.1f} ms CPU")


if __name__ == "__main__":
    with recording("key_eval", "Key"):
        main()
