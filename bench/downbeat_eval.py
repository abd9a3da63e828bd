"""Downbeat benchmark: cratedig's meter and first downbeat against known bars.

    .venv/bin/python bench/downbeat_eval.py                     # synth seed 0 + the training chorales
    .venv/bin/python bench/downbeat_eval.py --synth-seeds 1,2 --sets synth

Sets:
- ``synth``: ``tasks.synth.songs.ground_truth_set(n, seed)`` rendered at ``--sr`` (44.1 kHz stereo by default, as
  ``bench/accuracy.py`` writes them) and down-mixed; bars from the songs' specs. Seeds 1-2 chose the weights of
  ``tasks/features/tempo/beats.py``; seed 0 is held out.
- ``chorales``: the rendered TRAINING chorales (``bench/render_training_chorales.py``, both renderings), by
  split; bars from their scores, written by ``python3 bench/chorale_bars.py`` (system Python, music21). The
  ``train`` splits chose the weights too; the ``check`` splits are held out. The test chorales are not used:
  their scores' bars are not read.

A track's bar is right when ``beats_per_bar`` equals the score's and ``beat_offset_s`` is within 70 ms of a
downbeat. Printed: the share of all tracks, of those whose tempo is within 4 %, and of those whose beats also
fall within 70 ms of the score's (the downbeat alone: where the beat grid is off, no bar can be right). A guess
among the beats of a 4/4 bar gets 0.25.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.corpus import corpus_root, training_rows
from bench.results import recording
from tasks.audio.decode import decode_audio
from tasks.audio.resample import to_mono
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo.estimate import estimate_tempo

#: (label, mono audio at SR, true BPM, beats per bar, downbeat times in s)
Item = tuple[str, np.ndarray, float, int, np.ndarray]
TOLERANCE_S = 0.07


def bar_right(
    est_bpm: float | None,
    beats_per_bar: int | None,
    beat_offset_s: float | None,
    bpm: float,
    meter: int,
    downs: np.ndarray,
) -> bool:
    """Whether an estimate's bar is right: tempo within 4 %, the meter, and the first downbeat within
    ``TOLERANCE_S`` of one of ``downs`` (s)."""
    return (
        est_bpm is not None
        and abs(est_bpm / bpm - 1.0) <= 0.04
        and beats_per_bar == meter
        and bool(np.min(np.abs(downs - beat_offset_s)) < TOLERANCE_S)
    )


def synth_items(seed: int, n: int, sr: int) -> list[Item]:
    from tasks.synth.songs import downbeat_times, ground_truth_set, render_song

    return [
        (
            f"{spec.style}_{spec.bpm}_{spec.timbre}",
            to_mono(render_song(spec, sr=sr), sr),
            spec.bpm,
            spec.meter,
            downbeat_times(spec),
        )
        for spec in ground_truth_set(n, seed=seed)
    ]


def chorale_items(split: str, rendering: str, root: Path) -> list[Item]:
    bars_path = root / "training" / "bars.json"
    if not bars_path.exists():
        return []
    bars = json.loads(bars_path.read_text())
    items = []
    for r in training_rows(split, rendering, root):
        sig = bars.get(r["source"], {}).get("sig")
        if sig not in ("4/4", "3/4"):  # 3/2 counts half notes: not a quarter-note meter
            continue
        bpm = float(r["bpm"])
        downs = np.array(bars[r["source"]]["downs"]) * 60.0 / bpm - float(r["start_s"])
        items.append((Path(r["file"]).name, decode_audio(r["file"]).y, bpm, int(sig[0]), downs))
    return items


def score(items: list[Item]) -> tuple[float, float, float, int]:
    """Shares of bars right: of all, of tempo right, of tempo and beat phase right; and the item count."""
    right, tempo_ok, beats_ok = [], [], []
    for _, y, bpm, meter, downs in items:
        est = estimate_tempo(compute_spectrum(y))
        period = 60.0 / bpm
        ok_tempo = est.bpm is not None and abs(est.bpm / bpm - 1.0) <= 0.04
        hit = bar_right(est.bpm, est.beats_per_bar, est.beat_offset_s, bpm, meter, downs)
        right.append(hit)
        if ok_tempo:
            tempo_ok.append(hit)
            lag = (est.beat_offset_s - downs[0]) / period
            if abs(lag - round(lag)) * period < TOLERANCE_S:
                beats_ok.append(hit)
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return mean(right), mean(tempo_ok), mean(beats_ok), len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="synth,chorales")
    ap.add_argument("--synth-seeds", default="0")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--sr", type=int, default=44100, help="rate the synth songs are rendered at, Hz")
    ap.add_argument("--corpus", type=Path, default=None)
    args = ap.parse_args()
    sets: dict[str, object] = {}
    if "synth" in args.sets:
        for seed in args.synth_seeds.split(","):
            sets[f"synth seed {seed}"] = lambda s=int(seed): synth_items(s, args.n, args.sr)
    if "chorales" in args.sets:
        root = corpus_root(args.corpus)
        for rendering in ("varied", "continuo"):
            for split in ("train", "check"):
                sets[f"chorales {rendering} {split}"] = lambda r=rendering, s=split: chorale_items(s, r, root)
    print(f"{'set':28s} {'all':>6s} {'tempo ok':>9s} {'beats ok':>9s} {'n':>5s}")
    for name, load in sets.items():
        items = load()
        if not items:
            print(f"{name:28s} (not available: see the module docstring)")
            continue
        every, of_tempo, of_beats, n = score(items)
        print(f"{name:28s} {every:6.3f} {of_tempo:9.3f} {of_beats:9.3f} {n:5d}", flush=True)


if __name__ == "__main__":
    with recording("downbeat_eval", "Meter and first downbeat"):
        main()
