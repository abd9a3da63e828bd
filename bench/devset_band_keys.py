"""Band keys by chord loop: where cratedig and Essentia's bgate part ways on the dev set's generated songs.

    python -m bench.devset_band_keys [DEVSET]      # after bench.devset_eval has written results/*.jsonl

The ``band`` family's songs loop one of :data:`bench.devset_build.PROGRESSIONS`; the CSV keeps no record of
which, so it is replayed from each song's seeded generator (the same calls, in the same order, as
:func:`bench.devset_build.build_band_job`, checked against the CSV's tempo). The major loop vi-IV-I-V and the
minor loop i-VI-III-VII hold the same notes (the four triads of both loops are the same four triads), so only
the label tells them apart. Scores are MIREX, on the files both were run on (Essentia on one file in two).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from bench.corpus import corpus_root
from bench.devset_build import PROGRESSIONS, _job_rng
from bench.results import recording
from tasks.constants import ANALYZER_VERSION
from tasks.features.key.names import mirex_score

# (the generator plays V major in minor: ``harmonic_minor``)
_DEGREE = {"major": ("I", "ii", "iii", "IV", "V", "vi", "vii"), "minor": ("i", "ii", "III", "iv", "V", "VI", "VII")}


def band_loop(index: int, bpm: float) -> tuple[str, tuple[int, ...]]:
    """(mode, chord degrees) of band song ``index``, replayed from its generator; ``bpm`` checks the replay."""
    rng = _job_rng("band", str(index))
    meter_name = rng.choice(["4/4"] * 7 + ["3/4", "6/8", "12/8"])
    lo, hi = {"4/4": (70, 190), "3/4": (80, 180)}.get(meter_name, (50, 110))
    beat_bpm = round(rng.uniform(lo, hi), rng.choice([0, 1, 2]))
    if not math.isclose(beat_bpm, bpm):
        raise SystemExit(f"band_{index:03d}: the replay gives {beat_bpm} BPM, the CSV {bpm}: the generator changed")
    mode = "minor" if rng.random() < 0.45 else "major"
    rng.randrange(12)  # the tonic
    return mode, tuple(rng.choice(PROGRESSIONS[mode]))


def _keys(path: Path, method: str) -> dict[str, str | None]:
    keys = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        keys[rec["file"]] = rec["result"].get(method, {}).get("key")
    return keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("devset", type=Path, nargs="?", default=corpus_root() / "devset")
    args = ap.parse_args()
    truth = [r for r in csv.DictReader((args.devset / "ground_truth.csv").open()) if r["family"] == "band"]
    ours = _keys(args.devset / "results" / f"cratedig-v{ANALYZER_VERSION}.jsonl", "cratedig")
    bgate = _keys(args.devset / "results" / "essentia.jsonl", "ess-bgate")
    loops: dict[tuple[str, tuple[int, ...]], list[tuple[float, float]]] = defaultdict(list)
    for row in truth:
        index = int(row["file"].removeprefix("band_").removesuffix(".flac"))
        if bgate.get(row["file"]) and ours.get(row["file"]):
            scores = (mirex_score(ours[row["file"]], row["key"]), mirex_score(bgate[row["file"]], row["key"]))
            loops[band_loop(index, float(row["bpm"]))].append(scores)
    with recording("devset_band_keys", "Band keys by chord loop (cratedig against Essentia's bgate)"):
        print(f"analyzer version {ANALYZER_VERSION}; MIREX on the band files both were run on")
        print(f"{'mode':6s} {'loop':14s} {'n':>3s} {'cratedig':>9s} {'bgate':>6s}")
        for (mode, degrees), scores in sorted(loops.items()):
            names = "-".join(_DEGREE[mode][d] for d in degrees)
            ours_mean, bgate_mean = (sum(s[i] for s in scores) / len(scores) for i in (0, 1))
            print(f"{mode:6s} {names:14s} {len(scores):3d} {ours_mean:9.3f} {bgate_mean:6.3f}")
        every = [s for scores in loops.values() for s in scores]
        n = len(every)
        print(f"{'all':21s} {n:3d} {sum(s[0] for s in every) / n:9.3f} {sum(s[1] for s in every) / n:6.3f}")


if __name__ == "__main__":
    main()
