"""Render a TRAINING set of Bach chorales for the tempo octave fit, disjoint from the rendered test chorales.

    python3 bench/render_training_chorales.py [OUT] [N]     # default ~/.cache/cratedig-corpus/training, N=240
    python3 bench/render_training_chorales.py --continuo [OUT]   # the same works again: strings + piano bass
    python3 bench/render_training_chorales.py --recipe [OUT]     # the same works again by the test recipe
    python3 bench/render_training_chorales.py --recipe-dev [OUT]  # DEVELOPMENT set: the test recipe, unused works

Run it with the *system* ``python3``: it needs ``music21`` (the project venv does not have it) and
``soundfile``, plus the ``fluidsynth`` binary and ``/usr/share/sounds/sf2/FluidR3_GM.sf2``. It writes
``OUT/*.flac`` and ``OUT/training.csv`` (``file,bpm,split,source,programs,start_s``); nothing goes into the
repository. Deterministic (seed 2024). Takes a few minutes.

Why it is disjoint from the test set: the test chorales (``groundtruth/ground_truth.csv``, built by
``/work/shared/corpus/render_chorales.py``) are taken from the *end* of ``corpus.chorales.Iterator``; these
are taken from its *start*, and every piece whose BWV number appears in the test set's ``source`` column is
skipped (all of bwv248, for example, since several test pieces are movements of it), so no cantata or
chorale setting of the test set is heard here. Nothing about the test files other than that column is read.

What varies, so that the octave model learns chorales and not one rendering of them: the quarter-note
tempo (uniform 55-150 BPM, not the test set's nine values), the General MIDI program of each voice (one
ensemble for all four voices, or one instrument per voice, from strings, keyboards, organs, winds, brass,
voices, plucked and mallet sounds), each voice's velocity, the synth gain and reverb, and a 30-60 s
excerpt from a random place in the piece. The ``split`` column holds out every fifth piece as a check set.

``--continuo`` renders every work of ``OUT/training.csv`` once more, into ``OUT/continuo/`` (its own
``training.csv``, same ``split`` per work, tempo drawn afresh from 55-150 BPM, seed 2025), as strings over a
piano bass: violin, viola, cello and piano, every note at velocity 90, gain 0.7, fluidsynth's default reverb,
the whole piece. The random ensembles above almost never put struck notes under sustained ones (about 1 piece
in 17 gets a piano bass at all), yet a piano bass moving in 8ths under legato strings is where the octave
model doubled slow chorales. This was meant to be the test set's instrumentation, read from its recipe; the
recipe in fact plays every voice on a piano (see ``--recipe-dev``), which ``--recipe`` renders.

``--recipe-dev`` builds a held-out DEVELOPMENT set (default ``~/.cache/cratedig-corpus/recipe_dev``, its
``ground_truth.csv`` has ``file,bpm,key,source`` like the test set's): every chorale of the collection that is
neither a training source (``training/training.csv``) nor a test source, nor shares a BWV number with either
(45 works; one, bwv277, cannot be written as MIDI), rendered twice by the test script's own logic, copied:
``instrument.Violin()``, ``Viola()``, ``Violoncello()``, ``Piano()`` inserted at offset 0 of the first four parts,
music21's default velocity (90), ``fluidsynth -g 0.7 -r 44100``, the whole piece; tempo once from {63, 70, 76}
and once from the test set's nine values (another one), seed 31. Copying that logic copies its quirk:
where the parts keep their own (programless) instrument, as in the works checked, music21 writes every part
on MIDI channel 1 with two program changes each, and fluidsynth plays the last one, the piano: every voice
is a piano, not strings over a piano bass as ``--continuo`` assumed (checked on MIDI written here, not on
the test audio; a work whose parts carry no instrument keeps four channels and the strings). The key
column is empty where the score's parts disagree (the test script skipped such pieces; here they are kept).
``--recipe`` renders the works of ``OUT/training.csv`` once more by that same copied logic (every voice a
piano, one channel), into ``OUT/recipe/`` (``training.csv`` as ``--continuo``'s, tempo 55-150 BPM, seed 2026).
"""

import csv
import os
import random
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable

warnings.filterwarnings("ignore")
import soundfile as sf  # noqa: E402
from music21 import corpus, instrument, tempo  # noqa: E402

SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
ROOT = os.environ.get("CRATEDIG_CORPUS", os.path.expanduser("~/.cache/cratedig-corpus"))
#: General MIDI programs (0-based) by family; an ensemble draws all four voices from one family or from all.
FAMILIES = {
    "keyboard": (0, 1, 4, 6, 7),  # grand, bright piano, e-piano, harpsichord, clavinet
    "organ": (16, 19, 20, 21),  # drawbar, church, reed organ, accordion
    "strings": (40, 41, 42, 43, 48, 49),  # violin, viola, cello, contrabass, string ensembles
    "winds": (68, 69, 70, 71, 73, 74),  # oboe, english horn, bassoon, clarinet, flute, recorder
    "brass": (56, 57, 58, 60, 61),  # trumpet, trombone, tuba, horn, brass section
    "voices": (52, 53, 54),  # choir aahs, voice oohs, synth voice
    "plucked": (24, 25, 46, 11, 12),  # nylon, steel guitar, harp, vibraphone, marimba
}
ALL = tuple(p for ps in FAMILIES.values() for p in ps)


def bwv_number(source: str) -> str | None:
    """``'bach/bwv248.42-4'`` -> ``'248'``: the work, whatever the movement or variant."""
    m = re.search(r"bwv(\d+)", source)
    return m.group(1) if m else None


def test_bwv_numbers(root: str) -> set[str]:
    with open(os.path.join(root, "groundtruth", "ground_truth.csv"), newline="") as fh:
        return {bwv_number(r["source"]) for r in csv.DictReader(fh)} - {None}


def programs(rng: random.Random) -> list[int]:
    """GM programs of the four voices (soprano first)."""
    mode = rng.random()
    if mode < 0.35:  # one sound for the whole choir
        return [rng.choice(ALL)] * 4
    if mode < 0.7:  # one family
        fam = FAMILIES[rng.choice(sorted(FAMILIES))]
        return [rng.choice(fam) for _ in range(4)]
    return [rng.choice(ALL) for _ in range(4)]


def _score(path: str, bpm: float, progs: list[int], part_velocity: Callable[[], Callable[[], int]]):
    """The chorale at ``path`` at ``bpm``, voice i on GM program ``progs[i]``; ``part_velocity()`` is called once
    per voice and gives that voice's note velocities."""
    s = corpus.parse(path)
    for mm in list(s.recurse().getElementsByClass(tempo.MetronomeMark)):
        mm.activeSite.remove(mm)
    s.parts[0].measure(1).insert(0, tempo.MetronomeMark(number=bpm))
    for part, prog in zip(s.parts, progs):
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        inst = instrument.Instrument()
        inst.midiProgram = prog
        part.insert(0, inst)
        velocity = part_velocity()
        for n in part.recurse().notes:
            n.volume.velocity = velocity()
    return s


def _synthesize(s, out: str, options: list[str]) -> bool:
    """Write ``s`` as MIDI and render it with fluidsynth (``options``: gain, rate, settings) into ``out``
    (``.wav`` or ``.flac``); False, and no ``out``, when either step fails."""
    with tempfile.TemporaryDirectory() as tmp:
        mid = os.path.join(tmp, "x.mid")
        try:
            s.write("midi", fp=mid)
        except Exception:
            return False
        kind = os.path.splitext(out)[1].lstrip(".")
        try:  # a few MIDI files make fluidsynth run on and on (bwv299: 5.8 GB in 4 minutes)
            subprocess.run(
                ["fluidsynth", "-ni", "-q", *options, "-T", kind, "-F", out, SF2, mid],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            if os.path.exists(out):
                os.remove(out)
            return False
    return True


def render(path: str, bpm: float, progs: list[int], rng: random.Random, wav: str) -> bool:
    def part_velocity() -> Callable[[], int]:
        vel = rng.randint(55, 115)
        return lambda: max(1, min(127, vel + rng.randint(-6, 6)))

    s = _score(path, bpm, progs + [progs[-1]] * 8, part_velocity)
    reverb = "1" if rng.random() < 0.7 else "0"
    return _synthesize(
        s, wav, ["-g", f"{rng.uniform(0.4, 0.9):.2f}", "-r", "44100", "-o", f"synth.reverb.active={reverb}"]
    )


CONTINUO = [40, 41, 42, 0]  # violin, viola, cello (soprano, alto, tenor), acoustic grand piano (bass)


def render_continuo(path: str, bpm: float, wav: str) -> bool:
    """The whole piece: strings over a piano bass, every note at velocity 90, gain 0.7, default reverb."""
    return _synthesize(_score(path, bpm, CONTINUO, lambda: lambda: 90), wav, ["-g", "0.7", "-r", "44100"])


def main_continuo(out: str, recipe: bool = False) -> None:
    """Render the works of ``out/training.csv`` again, strings over a piano bass, into ``out/continuo/``
    (``recipe``: by the test script's recipe, :func:`render_test_recipe`, into ``out/recipe/``, seed 2026)."""
    with open(os.path.join(out, "training.csv"), newline="") as fh:
        works = list(csv.DictReader(fh))
    dest = os.path.join(out, "recipe" if recipe else "continuo")
    os.makedirs(dest, exist_ok=True)
    rng = random.Random(2026 if recipe else 2025)
    rows = []
    for w in works:
        bpm = round(rng.uniform(55.0, 150.0), 2)
        name = w["file"].replace("train_", "recipe_" if recipe else "continuo_")
        wav = os.path.join(dest, name.replace(".flac", ".wav"))
        if recipe:
            if (
                not os.path.exists(os.path.join(dest, name))
                and render_test_recipe(w["source"], bpm, os.path.join(dest, name)) is None
            ):
                continue
        elif not os.path.exists(os.path.join(dest, name)):  # rendered by an earlier, interrupted run
            if not render_continuo(w["source"], bpm, wav):
                continue
            y, sr = sf.read(wav, dtype="float32")
            os.remove(wav)
            sf.write(os.path.join(dest, name), y, sr, subtype="PCM_16")
        rows.append(
            dict(
                file=name,
                bpm=bpm,
                split=w["split"],
                source=w["source"],
                programs="test recipe" if recipe else " ".join(map(str, CONTINUO)),
                start_s=0.0,
            )
        )
        with open(os.path.join(dest, "training.csv"), "w", newline="") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    print(len(rows), "chorales rendered into", dest)


TEST_TEMPI = (63, 70, 76, 84, 92, 104, 116, 126, 138)  # the test script's quarter-note tempi


def recipe_dev_sources(root: str) -> list[str]:
    """Chorales of the collection used by neither the training renders nor the test set, by source or BWV number."""
    with open(os.path.join(root, "training", "training.csv"), newline="") as fh:
        train = {r["source"] for r in csv.DictReader(fh)}
    with open(os.path.join(root, "groundtruth", "ground_truth.csv"), newline="") as fh:
        test = {r["source"] for r in csv.DictReader(fh)}  # the source column only
    numbers = {bwv_number(s) for s in train | test} - {None}
    sources = [str(p).split("corpus/")[-1] for p in corpus.chorales.Iterator(returnType="filename")]
    return [s for s in sources if s not in train | test and bwv_number(s) not in numbers]


def render_test_recipe(source: str, bpm: int, flac: str) -> str | None:
    """The test script's rendering (``/work/shared/corpus/render_chorales.py``), copied; returns the key or None."""
    from music21 import key

    s = corpus.parse(source)
    keys = {(k.tonic.name, k.mode) for k in s.recurse().getElementsByClass(key.Key)}
    for mm in list(s.recurse().getElementsByClass(tempo.MetronomeMark)):
        mm.activeSite.remove(mm)
    s.parts[0].measure(1).insert(0, tempo.MetronomeMark(number=bpm))
    voices = [instrument.Violin(), instrument.Viola(), instrument.Violoncello(), instrument.Piano()]
    for part, inst in zip(s.parts, voices):
        part.insert(0, inst)
    if not _synthesize(s, flac, ["-g", "0.7", "-r", "44100"]):
        return None
    ((tonic, mode),) = keys if len(keys) == 1 else ((None, None),)
    return f"{tonic.replace('-', 'b')} {mode}" if tonic else ""


def main_recipe_dev(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    rng = random.Random(31)
    rows = []
    for source in recipe_dev_sources(ROOT):
        slow = rng.choice(TEST_TEMPI[:3])
        for take, bpm in (("a", slow), ("b", rng.choice([t for t in TEST_TEMPI if t != slow]))):
            name = f"recipedev_{len(rows):03d}_" + os.path.basename(source).replace(".", "_") + f"_{take}.flac"
            k = render_test_recipe(source, bpm, os.path.join(out, name))
            if k is not None:
                rows.append(dict(file=name, bpm=bpm, key=k, source=source))
        with open(os.path.join(out, "ground_truth.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["file", "bpm", "key", "source"])
            w.writeheader()
            w.writerows(rows)
    print(len(rows), "recipe-dev chorales rendered into", out)


def main() -> None:
    if "--recipe-dev" in sys.argv:
        args = [a for a in sys.argv[1:] if a != "--recipe-dev"]
        main_recipe_dev(args[0] if args else os.path.join(ROOT, "recipe_dev"))
        return
    if "--continuo" in sys.argv or "--recipe" in sys.argv:
        args = [a for a in sys.argv[1:] if a not in ("--continuo", "--recipe")]
        main_continuo(args[0] if args else os.path.join(ROOT, "training"), recipe="--recipe" in sys.argv)
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "training")
    n_wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 240
    os.makedirs(out, exist_ok=True)
    held_out = test_bwv_numbers(ROOT)
    rng = random.Random(2024)
    rows = []
    for path in corpus.chorales.Iterator(returnType="filename"):  # from the start of the collection
        if len(rows) >= n_wanted:
            break
        source = str(path).split("corpus/")[-1]
        if bwv_number(source) in held_out:
            continue
        bpm = round(rng.uniform(55.0, 150.0), 2)
        progs = programs(rng)
        name = f"train_{len(rows):03d}_" + os.path.basename(source).replace(".", "_")
        wav = os.path.join(out, name + ".wav")
        if not render(path, bpm, progs, rng, wav):
            continue
        y, sr = sf.read(wav, dtype="float32")
        os.remove(wav)
        length = rng.uniform(30.0, 60.0)
        n_keep = min(len(y), int(length * sr))
        start = 0 if rng.random() < 0.3 else rng.randint(0, len(y) - n_keep)
        sf.write(os.path.join(out, name + ".flac"), y[start : start + n_keep], sr, subtype="PCM_16")
        rows.append(
            dict(
                file=name + ".flac",
                bpm=bpm,
                split="check" if len(rows) % 5 == 4 else "train",
                source=source,
                programs=" ".join(map(str, progs)),
                start_s=round(start / sr, 3),
            )
        )
        with open(os.path.join(out, "training.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(
        len(rows), "training chorales rendered into", out, "(test BWV numbers skipped:", sorted(held_out, key=int), ")"
    )


if __name__ == "__main__":
    main()
