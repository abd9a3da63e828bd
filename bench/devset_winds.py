"""A check set of woodwind-quartet chorales, scored once per analyzer change, never used to choose settings.

    python -m bench.devset_winds build OUT     # with the dev set's venv (music21, fluidsynth): make winds-check
    python -m bench.devset_winds eval OUT      # cratedig, its previous key method and Essentia on the same files

Issue 19's independent check found cratedig's key weakest on Bach chorales played by oboe, clarinet, bassoon and
contrabass, and the dev set's woodwind chorales are its weakest ensemble too. This set renders chorales from the
second half of music21's list (the first half is held out) that the dev set does not use, as that quartet: each
chorale twice, with the contrabass at the bass part's written pitch and an octave lower (as a double bass
sounds), in the dev set's three soundfonts. Key from the score, tempo as in the dev set's ``chorales`` family.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import replace
from multiprocessing import Pool
from pathlib import Path

from bench.devset_build import FIELDS

#: Soprano to bass: oboe, clarinet, bassoon, contrabass (General MIDI programs).
QUARTET = (68, 71, 70, 43)
#: Chorales in the set at most (each rendered twice; the unused second-half chorales with a key run out at 34).
N_CHORALES = 40


def build_job(task: tuple[str, str]) -> list[dict]:
    """Both renderings of the chorale at ``path``, named after it; [] when it has no key or no usable meter."""
    from bench.devset_build import _ensemble, _job_rng, render_piece
    from bench.devset_midi import Note
    from bench.devset_scores import parse

    path, out = task
    piece = parse(path)
    if piece is None or piece.key is None or len(piece.parts) != 4:
        return []
    rows = []
    for bass in ("written", "octave-down"):
        rng = _job_rng("winds", f"{path}/{bass}")
        beat_bpm = round(rng.uniform(50.0, 130.0), rng.choice([0, 1, 2]))
        quarter_bpm = beat_bpm * piece.meter[1]
        notes, progs = _ensemble(piece, QUARTET, rng, 30.0 * quarter_bpm / 60.0)
        if bass == "octave-down":
            low = max(progs)  # the bass part's channel (channels follow the parts, bass last)
            notes = [
                Note(n.start, n.dur, n.pitch - 12, n.velocity, n.channel) if n.channel == low else n for n in notes
            ]
        name = f"winds_{Path(piece.source).name.replace('.', '-')}_{bass}"  # e.g. winds_bwv10-7_written
        rows.append(render_piece(name, bass, notes, progs, quarter_bpm, beat_bpm, piece, False, rng, out))
    return rows


def build(out: Path, devset: Path, jobs: int) -> None:
    from bench.devset_scores import second_half_chorales

    out.mkdir(parents=True, exist_ok=True)
    table = devset / "ground_truth.csv"
    used: set[str] = set()
    if table.exists():
        with open(table, newline="") as fh:
            used = {r["source"] for r in csv.DictReader(fh)}
    paths = [p for p in second_half_chorales() if p.split("corpus/")[-1] not in used]
    rows: list[dict] = []
    with Pool(jobs) as pool:
        for got in pool.imap(build_job, [(p, str(out)) for p in paths]):
            rows += got
            if len(rows) >= 2 * N_CHORALES:
                break
    rows = rows[: 2 * N_CHORALES]
    with open(out / "ground_truth.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["file"]))
    print(len(rows), "files in", out)


def keys_of(path: str) -> dict[str, str | None]:
    """The key of the file by cratedig, by the harmonics of versions 15 and 16, and by Essentia."""
    import essentia.standard as es

    from bench.devset_eval import essentia_on
    from tasks.audio.decode import decode_audio
    from tasks.features.key.estimate import _estimate, _Params
    from tasks.features.spectrum import compute_spectrum

    spectrum = compute_spectrum(decode_audio(path).y)
    out = {
        "cratedig": _estimate(spectrum, _Params()).key,
        "cratedig v15": _estimate(spectrum, replace(_Params(), harmonics="geometric")).key,
        "cratedig v16": _estimate(spectrum, replace(_Params(), harmonics="smooth")).key,
    }
    found = essentia_on(es.MonoLoader(filename=path, sampleRate=44100)(), rhythm=())
    out.update({name: r["key"] for name, r in found.items()})
    return out


def evaluate(out: Path, jobs: int) -> None:
    from bench.results import recording
    from tasks.features.key.names import mirex_score

    with open(out / "ground_truth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with Pool(jobs) as pool:
        found = pool.map(keys_of, [str(out / r["file"]) for r in rows])
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r, keys in zip(rows, found):
        for method, k in keys.items():
            s = mirex_score(k, r["key"]) if k else 0.0
            scores[(r["family"], method)].append(s)
            scores[("pooled", method)].append(s)
    with recording("devset_winds", "Check set: woodwind-quartet chorales (never used to choose settings)"):
        print(
            f"{len(rows)} files, {len(rows) // 2} chorales for oboe, clarinet, bassoon and contrabass, the contrabass "
            "at the written pitch and an octave lower; MIREX / exact key ('cratedig v15', 'v16': their "
            "harmonics settings):"
        )
        methods = sorted({m for _, m in scores}, key=lambda m: (not m.startswith("cratedig"), m))
        for cond in ("written", "octave-down", "pooled"):
            cells = []
            for m in methods:
                s = scores[(cond, m)]
                cells.append(f"{m} {sum(s) / len(s):.3f} / {sum(x == 1.0 for x in s) / len(s):.3f}")
            print(f"{cond:12s} " + "; ".join(cells))


def main() -> None:
    from bench.corpus import corpus_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("build", "eval"))
    ap.add_argument("out", type=Path, nargs="?", default=corpus_root() / "winds-check")
    ap.add_argument("--devset", type=Path, default=corpus_root() / "devset")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if args.what == "build":
        build(args.out, args.devset, args.jobs)
    else:
        evaluate(args.out, args.jobs)


if __name__ == "__main__":
    main()
