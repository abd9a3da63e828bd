"""Who gets no tempo: music without a pulse must (``ARHYTHMIC``), rhythmic music must not.

    python -m bench.arhythmic [DEVSET] [--seeds 30] [--first-seed 1000] [--jobs 2]

Negatives, synthesized here (``tasks.synth.voices``), each at 8, 20, 30, 60 and 120 s and ``--seeds`` seeds from
``--first-seed`` (the floors were set on seeds from 1000; seeds from 2000 are an unseen check, written to a section of
its own in ``bench/RESULTS.md``):
white and pink noise; static chord pads of sines (every scale tone over three octaves: partials a semitone
apart beat); pads that change chord at random times (every 0.7-4 s and every 3-12 s); organ drones with
vibrato; static equal-tempered organ drones (their fifths beat slowly and steadily); held organ chords with a
slow tremolo (0.8-2 Hz); a quiet line at Poisson times over such a drone; plucked, piano and FM notes at
Poisson times (free time). The three drone-and-tremolo kinds came from a red-team pass on a rejected legato
rule: held tones that swell at a steady rate pass for new notes on a beat. Each goes through
:func:`~tasks.features.tempo.estimate.tempo_from_envelopes` as the analysis runs it; a tempo is a false pulse,
and one that the same evidence without the pitch onsets would not get came from the legato rescue.

Positives: the development set's families (``make devset``), from ``DEVSET/results/cratedig-vN.jsonl`` as
``bench.devset_eval`` left them: the share of each family given no tempo.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root
from bench.results import recording
from tasks.constants import ANALYZER_VERSION, SR
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo.envelopes import frame_mean_square, harmonic_change, onset_bands, pitch_onsets
from tasks.features.tempo.estimate import tempo_from_envelopes
from tasks.synth.voices import (
    HARMONICS,
    chord_tone,
    midi_hz,
    notes_at,
    osc,
    pink_noise,
    poisson_times,
    tone,
    tremulant_chord,
)

KINDS = (
    "white",
    "pink",
    "pad",
    "drift",
    "slow drift",
    "drone",
    "et drone",
    "tremolo",
    "line+drone",
    "free pluck",
    "free piano",
    "free fm",
)
DURATIONS = (8.0, 20.0, 30.0, 60.0, 120.0)  # long ones too: a steady beating's DFT line sharpens with length


def _pads_changing(rng: np.random.Generator, n: int, dur: float, lo: float, hi: float) -> np.ndarray:
    y, t = np.zeros(n), 0.0
    while t < dur:
        d = rng.uniform(lo, hi)
        seg = chord_tone(int(rng.integers(12)), str(rng.choice(["major", "minor"])), duration_s=min(d, dur - t) + 0.1)
        i = int(t * SR)
        m = min(len(seg), n - i)
        y[i : i + m] += seg[:m]
        t += d
    return y


def _free_time(rng: np.random.Generator, n: int, dur: float, kind: str) -> np.ndarray:
    """Notes of ``kind`` at Poisson times, mean gap 0.15-0.8 s, random pitches."""
    return notes_at(poisson_times(rng, rng.uniform(0.15, 0.8), dur - 0.1), kind, n, rng)


def _et_drone(rng: np.random.Generator, n: int, root: int) -> np.ndarray:
    """A static organ drone: root, 5th, octave and 12th, equal-tempered, no vibrato. Its fifths beat slowly and
    steadily (3 x root - 2 x fifth: 0.22 Hz on C2), which lifts the pitch bands like a new note now and then."""
    return sum(osc(HARMONICS["organ"], midi_hz(root + p), n, SR, rng.random()) for p in (0, 7, 12, 19)) / 2


def _tremolo(rng: np.random.Generator, n: int, root: int) -> np.ndarray:
    """:func:`~tasks.synth.voices.tremulant_chord` swelling at 0.8-2 Hz, its voices at random phases."""
    rate = rng.uniform(0.8, 2.0)
    return tremulant_chord(root, rate, n, SR, rng.random(5))


def _line_over_drone(rng: np.random.Generator, n: int, dur: float, root: int) -> np.ndarray:
    """A quiet sine line moving by step at Poisson times (mean gap 0.5-1.2 s, soft 0.3-0.4 s swells) over
    :func:`_et_drone`: free time over a drone, as an alap over a harmonium or ambient music over a pad."""
    gap, level, att = rng.uniform(0.5, 1.2), rng.uniform(0.08, 0.14), rng.uniform(0.3, 0.4)
    y, t, p = _et_drone(rng, n, root), rng.exponential(gap), 67
    while t < dur - 0.1:
        nxt = t + rng.exponential(gap)
        p = int(np.clip(p + rng.choice([-2, -1, 1, 2]), 57, 81))
        i = int(t * SR)
        m = min(n - i, int((nxt - t + att) * SR))
        k = min(m // 2, int(att * SR))
        env = np.ones(m)
        env[:k], env[m - k :] = np.linspace(0.0, 1.0, k), np.linspace(1.0, 0.0, k)
        y[i : i + m] += level * np.sin(2 * np.pi * midi_hz(p) * np.arange(m) / SR) * env
        t = nxt
    return y


def negative(kind: str, seed: int, dur: float) -> np.ndarray:
    """One negative signal, mono float32 at ``SR``, peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(dur * SR)
    if kind == "white":
        y = rng.standard_normal(n)
    elif kind == "pink":
        y = pink_noise(rng, (n,))
    elif kind == "pad":
        y = chord_tone(seed % 12, "major" if seed % 24 < 12 else "minor", duration_s=dur).astype(np.float64)
    elif kind in ("drift", "slow drift"):
        y = _pads_changing(rng, n, dur, *((0.7, 4.0) if kind == "drift" else (3.0, 12.0)))
    elif kind == "drone":
        y = sum(tone("organ", midi_hz(p + seed % 12), n, SR, rng) for p in (36, 43, 48))
    elif kind == "et drone":
        y = _et_drone(rng, n, 36 + seed % 12)
    elif kind == "tremolo":
        y = _tremolo(rng, n, 48 + seed % 12)
    elif kind == "line+drone":
        y = _line_over_drone(rng, n, dur, 36 + seed % 12)
    else:
        y = _free_time(rng, n, dur, kind.split()[1])
    return (0.5 * y / (np.abs(y).max() + 1e-12)).astype(np.float32)


def _run(task: tuple[str, int, float]) -> tuple[str, float, bool, bool]:
    """Whether the analysis gives the negative a tempo, and whether it is the pitch onsets' (legato) pulse."""
    kind, seed, dur = task
    spec = compute_spectrum(negative(kind, seed, dur))
    env = (onset_bands(spec), frame_mean_square(spec), harmonic_change(spec))
    with_pitch = tempo_from_envelopes(*env, frame_rate=spec.frame_rate, pitch=pitch_onsets(spec)).bpm is not None
    without = tempo_from_envelopes(*env, frame_rate=spec.frame_rate).bpm is not None
    return kind, dur, with_pitch, with_pitch and not without


def devset_none(devset: Path) -> dict[str, tuple[int, int]]:
    """Per family of the dev set: files given no tempo and files, from the stored results of this version."""
    store = devset / "results" / f"cratedig-v{ANALYZER_VERSION}.jsonl"
    table = devset / "ground_truth.csv"
    if not (store.exists() and table.exists()):
        return {}
    res = {rec["file"]: rec["result"]["cratedig"] for rec in map(json.loads, store.read_text().splitlines())}
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with open(table, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["file"] in res:
                out[r["family"]][0] += res[r["file"]]["bpm"] is None
                out[r["family"]][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    tasks = [(k, args.first_seed + s, d) for k in KINDS for s in range(args.seeds) for d in DURATIONS]
    with Pool(args.jobs) as pool:
        runs = pool.map(_run, tasks, chunksize=4)
    # The default seeds set the floors; any other seeds are a check kept in a section of their own.
    default = (args.first_seed, args.seeds) == (ap.get_default("first_seed"), ap.get_default("seeds"))
    title = "Who gets no tempo: negatives and the dev set's families"
    with recording(
        "arhythmic",
        title if default else f"{title} (negatives of unseen seeds)",
        section=None if default else "arhythmic-unseen",
    ):
        print(
            f"analyzer version {ANALYZER_VERSION}; negatives: {args.seeds} seeds from {args.first_seed} x "
            f"{len(DURATIONS)} durations each"
        )
        print(f"{'negative':12s} " + " ".join(f"{f'{d:g} s':>6s}" for d in DURATIONS) + "  given a tempo")
        for k in KINDS:
            cells = [sum(t for kk, dd, t, _ in runs if kk == k and dd == d) for d in DURATIONS]
            print(f"{k:12s} " + " ".join(f"{c:3d}/{args.seeds:<2d}" for c in cells))
        total, legato = sum(r[2] for r in runs), sum(r[3] for r in runs)
        print(f"{'all':12s} {total}/{len(runs)} given a tempo, {legato} of them by the pitch onsets (legato rescue)")
        fams = devset_none(args.devset)
        if fams:
            print("\ndev set family   no tempo (should be 0: every family is rhythmic)")
            for fam, (none, n) in fams.items():
                print(f"{fam:16s} {none:3d}/{n}")
            print(f"{'pooled':16s} {sum(v[0] for v in fams.values()):3d}/{sum(v[1] for v in fams.values())}")


if __name__ == "__main__":
    main()
