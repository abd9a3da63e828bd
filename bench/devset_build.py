"""Build the development set: music this project did not write, rendered with known tempo and key.

    make devset                      # into ~/.cache/cratedig-corpus/devset (own venv with music21, fluidsynth)
    python -m bench.devset_build OUT [--seconds 30] [--jobs 2] [--only FAMILY ...]

Families (``family`` column of ``OUT/ground_truth.csv``; the synthesizer's family is added by
:mod:`bench.devset_synth`):

- ``chorales``: Bach chorales from the second half of music21's list, as wind, brass, organ, choir, string
  or mixed quartets (minor chorales often end on a major chord);
- ``folk_solo``, ``folk_accomp``, ``folk_band``: ABC tunes (reels, jigs, hornpipes, marches, waltzes; 2/4 3/4
  4/4 2/2 6/8 9/8 12/8; major, minor and modal) from the second half of the corpus's ABC files, played alone,
  over a fitted-chord accompaniment (oom-pah, block, arpeggio, pad), or with bass and drum kit;
- ``quartets``: Haydn, Mozart and Beethoven movements as string, piano, wind or brass quartets;
- ``madrigals``: Monteverdi; ``palestrina``: mass movements (both modal: tempo only);
- ``band``: generated songs (common progressions, a generated tune, bass, comping, drum kit in rock, disco,
  half-time or funk patterns; 4/4, 3/4, 6/8, 12/8).

Each file is the first ``--seconds`` of a piece (tunes repeat to fill them) at one constant tempo, humanised
(:mod:`bench.devset_midi`), in one of three General MIDI soundfonts. ``bpm`` is the tempo of the meter's beat
(the dotted quarter in 6/8 9/8 12/8, the half note in 2/2 3/2 4/2, else the denominator's note); ``key`` is the
score's (modes as the major or minor key of their third: Dorian is minor, Mixolydian major; the ``mode``
column keeps the mode), empty when the score states none. Existing files are kept (the build resumes).
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from multiprocessing import Pool
from pathlib import Path

from bench.devset_midi import DRUM_CHANNEL, SOUNDFONTS, Note, clip, render, write_midi
from bench.devset_parts import MODES, bass_bar, comp_bar, drum_bar, fit_chord, melody_bars, meter_of, triad
from bench.devset_scores import Piece, beat_range, corpus_paths, looped, parse, second_half_abc, second_half_chorales

FIELDS = ["file", "family", "bpm", "key", "mode", "meter", "drums", "soundfont", "programs", "source"]
#: Files per family (a family short of candidates gets fewer).
CAPS = {
    "chorales": 80,
    "folk_solo": 50,
    "folk_accomp": 70,
    "folk_band": 70,
    "quartets": 60,
    "madrigals": 49,
    "palestrina": 50,
    "band": 80,
}
ENSEMBLES = {  # General MIDI programs, top voice first
    "winds": (73, 68, 71, 70),
    "brass": (56, 60, 57, 58),
    "organ": (19, 19, 19, 19),
    "choir": (52, 52, 52, 52),
    "strings": (40, 41, 42, 43),
    "piano": (0, 0, 0, 0),
    "recorders": (74, 74, 74, 71),
}
FOLK_LEAD = (40, 73, 78, 21, 22, 105, 0, 71, 74, 68, 24)
COMP = (0, 24, 25, 21, 46, 4, 19)
FOLK_BEAT_BPM = {  # beats per minute by meter: dance tempi around what players take
    "2/2": (55, 110),
    "4/4": (70, 140),
    "2/4": (60, 130),
    "3/4": (80, 190),
    "3/2": (50, 90),
    "4/2": (45, 80),
    "6/8": (60, 130),
    "9/8": (60, 120),
    "12/8": (50, 110),
}
PROGRESSIONS = {
    "major": ([0, 4, 5, 3], [0, 3, 4, 3], [5, 3, 0, 4], [1, 4, 0, 0], [0, 5, 3, 4]),
    "minor": ([0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 4], [0, 3, 6, 2], [0, 0, 3, 4]),
}


def _job_rng(family: str, ident: str) -> random.Random:
    return random.Random(f"devset/{family}/{ident}")


def _ensemble(piece: Piece, programs: tuple[int, ...], rng: random.Random, quarters: float) -> tuple[list, dict]:
    """The piece's parts (first ``quarters``) on channels 0.. with ``programs`` cycled (skipping the drum
    channel); velocities vary by part."""
    notes, progs = [], {}
    for i, part in enumerate(piece.parts[:8]):
        ch = i if i < DRUM_CHANNEL else i + 1
        progs[ch] = programs[i % len(programs)]
        vel = rng.randint(60, 95)
        notes += [Note(n.start, n.dur, n.pitch, vel, ch) for n in clip(part, quarters)]
    return notes, progs


def _accompany(
    melody: list[Note], piece: Piece, rng: random.Random, quarters: float, band: bool
) -> tuple[list[Note], dict[int, int]]:
    """Chords fitted bar by bar (half bar in 4-beat and compound-duple meters) under ``melody``; with
    ``band``, a bass line and a drum kit too. The pickup gets nothing."""
    bar, beat = piece.meter
    style = rng.choice(["oompah", "block", "arpeggio", "pad"] if not band else ["oompah", "block", "arpeggio"])
    harmonic = rng.random() < 0.5
    span = bar / 2 if round(bar / beat) in (2, 4) and bar >= 2.0 else bar
    span_meter = (span, beat)
    drums = rng.choice(["rock", "rock", "halftime", "disco", "funk"])
    out, t = [], piece.pickup
    while t < quarters - 1e-6:
        degree = fit_chord(melody, t, t + span, piece.tonic, piece.mode, rng, harmonic)
        pcs = triad(piece.tonic, piece.mode, degree, harmonic)
        out += comp_bar(pcs, t, span_meter, style, 1, 2 if band else None)
        if band:
            out += bass_bar(pcs, t, span_meter, 2)
        t += span
    if band:
        t = piece.pickup
        while t < quarters - 1e-6:
            out += drum_bar(t, piece.meter, drums)
            t += bar
    progs = {1: rng.choice(COMP)}
    if band:
        progs[2] = rng.choice((32, 33, 34, 38))
    return clip(out, quarters), progs


def build_score_job(task: tuple[str, str, int, float, str]) -> dict | None:
    """Parse, arrange and render one work; the ground-truth row, or None when the work is unusable."""
    family, path, index, seconds, out = task
    name = f"{family}_{index:03d}"
    rng = _job_rng(family, path)
    piece = parse(path)
    if piece is None or (family in ("chorales",) or family.startswith("folk")) and piece.key is None:
        return None
    if family.startswith("folk") and len(piece.parts) != 1:
        return None
    if family in ("madrigals", "palestrina"):  # modal: a key signature's major or minor is no reference
        piece.key = piece.mode = None
    if family.startswith("folk"):
        lo, hi = FOLK_BEAT_BPM[piece.meter_name]
    elif family == "chorales":
        lo, hi = 50.0, 130.0
    elif family in ("madrigals", "palestrina"):
        lo, hi = (45.0, 80.0) if piece.meter[1] == 2.0 else (60.0, 120.0)
    else:
        lo, hi = beat_range(piece)
    beat_bpm = round(rng.uniform(lo, hi), rng.choice([0, 1, 2]))
    quarter_bpm = beat_bpm * piece.meter[1]
    quarters = seconds * quarter_bpm / 60.0
    drums = family == "folk_band"
    if family.startswith("folk"):
        lead = rng.choice(FOLK_LEAD)
        melody = [Note(n.start, n.dur, n.pitch, 88, 0) for n in looped(piece.parts[0], piece.meter[0], quarters)]
        notes, progs = clip(melody, quarters), {0: lead}
        if family != "folk_solo":
            acc, acc_progs = _accompany(melody, piece, rng, quarters, band=drums)
            notes += acc
            progs.update(acc_progs)
    else:
        pool = ["winds", "brass", "organ", "choir", "strings", "piano"]
        if family in ("madrigals", "palestrina"):
            pool = ["choir", "strings", "recorders", "organ", "brass"]
        elif family == "quartets":
            pool = ["strings", "strings", "piano", "winds", "brass"]
        ensemble = rng.choice(pool + ["mixed"])
        programs = ENSEMBLES.get(ensemble) or tuple(
            rng.choice((73, 68, 71, 70, 56, 60, 57, 40, 42, 0, 19)) for _ in range(4)
        )
        notes, progs = _ensemble(piece, programs, rng, quarters)
    return render_piece(name, family, notes, progs, quarter_bpm, beat_bpm, piece, drums, rng, out)


def build_band_job(task: tuple[str, str, int, float, str]) -> dict:
    """One generated song of the ``band`` family."""
    family, _, index, seconds, out = task
    rng = _job_rng(family, str(index))
    meter_name = rng.choice(["4/4"] * 7 + ["3/4", "6/8", "12/8"])
    meter = meter_of(*(int(x) for x in meter_name.split("/")))
    lo, hi = {"4/4": (70, 190), "3/4": (80, 180)}.get(meter_name, (50, 110))
    beat_bpm = round(rng.uniform(lo, hi), rng.choice([0, 1, 2]))
    quarter_bpm = beat_bpm * meter[1]
    quarters = seconds * quarter_bpm / 60.0
    mode = "minor" if rng.random() < 0.45 else "major"
    tonic = rng.randrange(12)
    prog = rng.choice(PROGRESSIONS[mode])
    degrees = [prog[i % len(prog)] for i in range(math.ceil(quarters / meter[0]))]
    notes = melody_bars(tonic, mode, degrees, meter, rng, 0)
    comp_style, drums = (
        rng.choice(["block", "arpeggio", "pad", "oompah"]),
        rng.choice(["rock", "halftime", "disco", "funk"]),
    )
    for i, degree in enumerate(degrees):
        pcs = triad(tonic, mode, degree, harmonic_minor=True)
        notes += comp_bar(pcs, i * meter[0], meter, comp_style, 1, 2)
        notes += bass_bar(pcs, i * meter[0], meter, 2) + drum_bar(i * meter[0], meter, drums)
    progs = {
        0: rng.choice((80, 81, 65, 56, 73, 11, 26)),
        1: rng.choice((0, 4, 29, 30, 25, 16, 89, 48)),
        2: rng.choice((33, 34, 38, 39)),
    }
    key = f"{('C', 'Db', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B')[tonic]} {mode}"
    assert mode in MODES
    return _render(
        f"band_{index:03d}",
        family,
        clip(notes, quarters),
        progs,
        quarter_bpm,
        beat_bpm,
        key,
        mode,
        meter_name,
        True,
        f"generated/{drums}/{comp_style}",
        rng,
        out,
    )


def render_piece(name, family, notes, progs, quarter_bpm, beat_bpm, piece, drums, rng, out) -> dict:
    """:func:`_render` with the key, mode, metre and source of a score's ``piece``."""
    tags = (piece.key, piece.mode, piece.meter_name, drums, piece.source)
    return _render(name, family, notes, progs, quarter_bpm, beat_bpm, *tags, rng, out)


def _render(name, family, notes, progs, quarter_bpm, beat_bpm, key, mode, meter_name, drums, source, rng, out) -> dict:
    soundfont = rng.choice(sorted(SOUNDFONTS))
    flac = Path(out) / f"{name}.flac"
    if not flac.exists():
        mid = flac.with_suffix(".mid")
        write_midi(mid, notes, progs, quarter_bpm, rng)
        render(mid, flac, soundfont, gain=rng.uniform(0.35, 0.7))
        mid.unlink()
    return dict(
        file=flac.name,
        family=family,
        bpm=beat_bpm,
        key=key or "",
        mode=mode or "",
        meter=meter_name,
        drums=int(drums),
        soundfont=soundfont,
        programs=" ".join(map(str, progs.values())),
        source=source,
    )


def candidates(family: str) -> list[str]:
    """Works a family draws from, in order."""
    if family == "chorales":
        return second_half_chorales()
    if family.startswith("folk"):
        slot = ["folk_solo", "folk_accomp", "folk_band"].index(family)
        return second_half_abc()[slot::3]
    if family == "quartets":
        return [p for c in ("haydn/", "mozart/", "beethoven/") for e in (".mxl", ".krn") for p in corpus_paths(c, e)]
    if family == "madrigals":
        return corpus_paths("monteverdi/", ".mxl")
    if family == "palestrina":
        return corpus_paths("palestrina/", ".krn")[::20]
    return [str(i) for i in range(CAPS[family])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=list(CAPS))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "ground_truth.csv"
    rows = [r for r in csv.DictReader(open(table))] if table.exists() else []
    rows = [r for r in rows if r["family"] not in args.only]
    with Pool(args.jobs) as pool:
        for family in args.only:
            job = build_band_job if family == "band" else build_score_job
            tasks = [(family, p, i, args.seconds, str(args.out)) for i, p in enumerate(candidates(family))]
            got: list[dict] = []
            while tasks and len(got) < CAPS[family]:  # in batches: render no more than the cap needs
                batch, tasks = tasks[: CAPS[family] - len(got) + 4], tasks[CAPS[family] - len(got) + 4 :]
                got += [row for row in pool.imap(job, batch) if row is not None]
            got = got[: CAPS[family]]
            rows += got
            print(f"{family}: {len(got)} files", flush=True)
    with open(table, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["file"]))
    print(len(rows), "files in", table)


if __name__ == "__main__":
    main()
