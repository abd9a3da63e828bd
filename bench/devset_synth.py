"""The ``synth`` family of the dev set: cratedig's own synthesized songs (``tasks.synth.songs``), seed 9.

    python -m bench.devset_synth OUT [--n 60]

Seeds 1-4 fitted the octave model and seed 0 is ``bench/accuracy.py``'s set; seed 9 is neither. Our own
music, so it is one family among many, never the measure. Appends its rows to ``OUT/ground_truth.csv``
(replacing earlier ``synth`` rows); existing files are kept.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from bench.devset_build import FIELDS
from tasks.audio.sndfile import sf
from tasks.synth.songs import ground_truth_set, render_song

SEED = 9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "ground_truth.csv"
    rows = [r for r in csv.DictReader(open(table)) if r["family"] != "synth"] if table.exists() else []
    for i, spec in enumerate(ground_truth_set(args.n, seed=SEED)):
        path = args.out / f"synth_{i:03d}.flac"
        if not path.exists():
            sf.write(path, render_song(spec, sr=44100).T, 44100)
        rows.append(
            dict(
                file=path.name,
                family="synth",
                bpm=spec.bpm,
                key=spec.key,
                mode=spec.mode,
                meter=f"{spec.meter}/4",
                drums="",
                soundfont="",
                programs=spec.timbre,
                source=f"synth/{spec.style}",
            )
        )
    with open(table, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["file"]))
    print(args.n, "synth files in", table)


if __name__ == "__main__":
    main()
