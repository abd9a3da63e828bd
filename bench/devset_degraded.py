"""Tempo and key on degraded renderings of the development set, with the peers on the same signals.

    python -m bench.devset_degraded [DEVSET] [--per-family 20] [--jobs 2] [--no-peers]

The dev set's renderings are clean: one soundfont, no room, no noise, the score's exact tempo and pitch. A
choice fitted on them may lean on that. Here a fixed sample of each family (``--per-family`` files, drawn with
a fixed seed) is also heard

- ``reverb``: half wet with the synthesizer's noise-tail reverb, RT60 1-4 s;
- ``noise``: pink noise at 20 dB SNR;
- ``pitch``: shifted by -4, -3, +3 or +4 semitones (the reference key shifted alike);
- ``stretch``: time-stretched by 0.8, 0.88, 1.12 or 1.25 (the reference tempo scaled alike);
- ``excerpt``: 15 s from a random point,

each drawn per file from a generator seeded by its name, so a rerun hears the same signals. Methods, each on
the same 22.05 kHz mono signal: ``cratedig`` (:func:`tasks.features.tempo.estimate.estimate_tempo` and
:func:`tasks.features.key.estimate.estimate_key` on the shared STFT, as the analysis runs them; the default
preferred range); Essentia's ``RhythmExtractor2013`` (degara) and ``KeyExtractor`` (bgate, edma) on the
signal resampled to 44.1 kHz (``bench`` extra; ``--no-peers`` skips them). The families are in-sample for
cratedig's fitted choices; what this measures is how far each method falls from its own clean score. The
table is written to ``bench/RESULTS.md`` (section ``devset_degraded``).
"""

from __future__ import annotations

import argparse
import csv
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root
from bench.results import recording
from bench.tempo_eval import score as tempo_score
from tasks.constants import ANALYZER_VERSION, BPM_RANGE, SR
from tasks.features.key.names import KEY_NAMES, key_index, mirex_score

DEGRADATIONS = ("clean", "reverb", "noise", "pitch", "stretch", "excerpt")
EXCERPT_S = 15.0
SAMPLE_SEED = 606
METHODS = ("cratedig", "ess-degara", "ess-bgate", "ess-edma")


def in_a_room(y: np.ndarray, rt60_s: float, rng: np.random.Generator, wet: float = 0.5) -> np.ndarray:
    """``y`` in a room: ``wet`` of it the synthesizer's noise-tail reverb (:func:`tasks.synth.voices.reverb`,
    one side), level kept."""
    from tasks.synth.voices import reverb

    w = reverb(np.asarray(y, dtype=np.float32), SR, rng, rt60=rt60_s)[0].astype(np.float64)
    w *= np.sqrt(np.mean(y * y) / (np.mean(w * w) + 1e-20))
    out = (1.0 - wet) * y + wet * w
    return (0.9 * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def pink_noise_at(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``y`` plus pink noise ``snr_db`` below its mean power."""
    from tasks.synth.voices import pink_noise

    n = pink_noise(rng, (len(y),)).astype(np.float64)
    n *= np.sqrt(np.mean(y * y) / np.mean(n * n)) * 10 ** (-snr_db / 20)
    return (y + n).astype(np.float32)


def transpose(key: str, semitones: int) -> str:
    """``key`` moved by ``semitones`` (a name of :data:`KEY_NAMES`)."""
    i = key_index(key)
    return KEY_NAMES[12 * (i // 12) + (i % 12 + semitones) % 12]


def degrade(kind: str, y: np.ndarray, bpm: float, key: str, name: str) -> tuple[np.ndarray, float, str] | None:
    """The signal of degradation ``kind`` of one file and its reference tempo and key (None: too short)."""
    import librosa

    rng = np.random.default_rng([zlib.crc32(name.encode()), DEGRADATIONS.index(kind)])
    if kind == "clean":
        return y, bpm, key
    if kind == "reverb":
        return in_a_room(y, float(rng.uniform(1.0, 4.0)), rng), bpm, key
    if kind == "noise":
        return pink_noise_at(y, 20.0, rng), bpm, key
    if kind == "pitch":
        steps = int(rng.choice([-4, -3, 3, 4]))
        return librosa.effects.pitch_shift(y, sr=SR, n_steps=steps), bpm, transpose(key, steps) if key else key
    if kind == "stretch":
        rate = float(rng.choice([0.8, 0.88, 1.12, 1.25]))
        return librosa.effects.time_stretch(y, rate=rate), bpm * rate, key
    n = int(EXCERPT_S * SR)
    if len(y) <= n + SR:
        return None
    start = int(rng.uniform(0, len(y) - n))
    return y[start : start + n], bpm, key


def _cratedig(y: np.ndarray) -> tuple[float | None, str | None]:
    from tasks.features.key.estimate import estimate_key
    from tasks.features.spectrum import compute_spectrum
    from tasks.features.tempo.estimate import estimate_tempo

    spec = compute_spectrum(np.ascontiguousarray(y, dtype=np.float32))
    return estimate_tempo(spec).bpm, estimate_key(spec).key


def _essentia(y: np.ndarray) -> dict[str, tuple[float | None, str | None]]:
    import soxr

    from bench.devset_eval import essentia_on

    y44 = soxr.resample(np.asarray(y, dtype=np.float32), SR, 44100)
    return {
        m: (r["bpm"], r["key"]) for m, r in essentia_on(y44, rhythm=("ess-degara",), profiles=("bgate", "edma")).items()
    }


def run_file(job: tuple[str, float, str, bool]) -> list[dict]:
    """Every degradation of one file: its references and each method's tempo and key."""
    from tasks.audio.decode import decode_audio

    path, bpm, key, peers = job
    y = decode_audio(path).y
    rows = []
    for kind in DEGRADATIONS:
        d = degrade(kind, y, bpm, key, Path(path).name)
        if d is None:
            continue
        sig, ref_bpm, ref_key = d
        est = {"cratedig": _cratedig(sig)} | (_essentia(sig) if peers else {})
        rows.append({"kind": kind, "bpm": ref_bpm, "key": ref_key, "est": est})
    return rows


def sample(rows: list[dict], per_family: int) -> list[dict]:
    """``per_family`` rows of each family, drawn with a fixed seed, in file order."""
    rng = np.random.default_rng(SAMPLE_SEED)
    out = []
    for fam in sorted({r["family"] for r in rows}):
        mine = [r for r in rows if r["family"] == fam]
        pick = sorted(rng.choice(len(mine), min(per_family, len(mine)), replace=False))
        out += [mine[i] for i in pick]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--per-family", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true", help="cratedig only (no Essentia)")
    args = ap.parse_args()
    with open(args.devset / "ground_truth.csv", newline="") as fh:
        files = sample(list(csv.DictReader(fh)), args.per_family)
    jobs = [(str(args.devset / r["file"]), float(r["bpm"]), r["key"], not args.no_peers) for r in files]
    with Pool(args.jobs) as pool:
        results = pool.map(run_file, jobs, chunksize=1)
    methods = METHODS[:1] if args.no_peers else METHODS
    with recording("devset_degraded", "Development set, degraded: tempo and key with the peers on the same signals"):
        print(
            f"{len(files)} dev files ({args.per_family} per family, seed {SAMPLE_SEED}); analyzer version "
            f"{ANALYZER_VERSION}; cratedig at its default range; tempo Acc1 / Acc2, key MIREX on files with a key"
        )
        print(
            f"'out': references outside the default range {BPM_RANGE[0]:g}-{BPM_RANGE[1]:g}, which no tempo "
            "reported there matches at Acc1 (a promise)"
        )
        print(f"{'signal':9s} {'n':>4s} {'out':>4s} " + " ".join(f"{m + ' tempo':>20s}" for m in methods[:2]), end="")
        print(" " + " ".join(f"{m + ' key':>14s}" for m in (methods[0], *methods[2:])))
        for kind in DEGRADATIONS:
            got = [r for rs in results for r in rs if r["kind"] == kind]
            cells = []
            for m in methods[:2]:
                sc = np.array([tempo_score(r["est"][m][0], r["bpm"])[:2] for r in got])
                cells.append(f"{sc[:, 0].mean():9.3f} / {sc[:, 1].mean():.3f}")
            keyed = [r for r in got if r["key"]]
            for m in (methods[0], *methods[2:]):
                ks = [r["est"][m][1] for r in keyed]
                cells.append(f"{np.mean([mirex_score(k, r['key']) if k else 0.0 for k, r in zip(ks, keyed)]):14.3f}")
            out = sum(not BPM_RANGE[0] <= r["bpm"] <= BPM_RANGE[1] for r in got)
            print(
                f"{kind:9s} {len(got):4d} {out:4d} "
                + " ".join(f"{c:>20s}" for c in cells[:2])
                + " "
                + " ".join(cells[2:])
            )


if __name__ == "__main__":
    main()
