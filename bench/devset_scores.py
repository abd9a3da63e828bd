"""Scores of the music21 corpus as notes for :mod:`bench.devset_midi`: which works the dev set may use, their
meter, key and notes.

Held out (an independent evaluation uses them; never read here): the first half of
``corpus.chorales.Iterator`` and the first half of the corpus's ABC files sorted by path. The dev set takes
chorales and ABC tunes from the second halves only. Runs in the dev set's own venv (music21 is not a
dependency of cratedig).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from bench.devset_midi import Note
from bench.devset_parts import MODE_AS_KEY, meter_of

warnings.filterwarnings("ignore")

#: Meters whose beat is unambiguous enough to be a reference (3/8, 5/4 and 7/8 are left out).
METERS = {"2/4", "3/4", "4/4", "2/2", "3/2", "4/2", "6/8", "9/8", "12/8"}


@dataclass
class Piece:
    """A parsed work: ``parts`` of notes (channels set later), ``meter`` ``(bar, beat)`` in quarters,
    ``pickup`` (quarters before the first bar line), ``key`` ('A minor' style, None when the score does
    not state a mode), ``mode`` (the score's, e.g. 'dorian'), ``length`` in quarters, ``tempo_text``."""

    source: str
    parts: list[list[Note]]
    meter: tuple[float, float]
    meter_name: str
    pickup: float
    key: str | None
    mode: str | None
    tonic: int | None
    length: float
    tempo_text: str


def second_half_chorales() -> list[str]:
    """Chorale paths from the middle of ``corpus.chorales.Iterator`` to its end."""
    from music21 import corpus

    paths = [str(p) for p in corpus.chorales.Iterator(returnType="filename")]
    return paths[len(paths) // 2 :]


def corpus_paths(prefix: str, ext: str) -> list[str]:
    """Core corpus paths under ``prefix`` (e.g. ``'haydn/'``) ending with ``ext``, sorted."""
    from music21 import corpus

    return sorted(str(p) for p in corpus.getCorePaths() if f"corpus/{prefix}" in str(p) and str(p).endswith(ext))


def second_half_abc() -> list[str]:
    """ABC files of the corpus sorted by path, from the middle on."""
    from music21 import corpus

    paths = sorted(str(p) for p in corpus.getCorePaths() if str(p).endswith(".abc"))
    return paths[len(paths) // 2 :]


def _key_name(tonic: str, mode: str) -> str:
    return f"{tonic.replace('-', 'b')} {MODE_AS_KEY[mode]}"


def parse(path: str, max_quarters: float = 400.0) -> Piece | None:
    """The piece at ``path`` (its first score when the file holds several), or None when it has no usable
    meter, changes meter in its first ``max_quarters``, or has no notes."""
    from music21 import corpus, key, meter, stream, tempo

    try:
        s = corpus.parse(path)
    except Exception:
        return None
    if isinstance(s, stream.Opus):
        s = s.scores[0] if s.scores else None
    if s is None or not s.parts:
        return None
    sigs = [ts for ts in s.parts[0].recurse().getElementsByClass(meter.TimeSignature) if ts.offset < max_quarters]
    names = {ts.ratioString for ts in sigs}
    if len(names) != 1 or next(iter(names)) not in METERS:
        return None
    name = next(iter(names))
    num, den = (int(x) for x in name.split("/"))
    bar, beat = meter_of(num, den)
    measures = list(s.parts[0].getElementsByClass(stream.Measure))
    pickup = 0.0
    if measures and measures[0].duration.quarterLength < bar - 1e-6 and measures[0].paddingLeft > 0:
        pickup = float(measures[0].duration.quarterLength)
    parts = []
    for part in s.parts:
        notes = []
        for n in part.stripTies().flatten().notes:
            dur = float(n.duration.quarterLength)
            if dur <= 0 or float(n.offset) >= max_quarters:
                continue
            for p in n.pitches:
                notes.append(Note(float(n.offset), dur, int(p.midi), 80, 0))
        if notes:
            parts.append(notes)
    if not parts:
        return None
    keys = [k for k in s.recurse().getElementsByClass(key.Key) if k.offset < max_quarters]
    found = {(k.tonic.name, k.mode) for k in keys}
    k_name = mode = tonic = None
    if len(found) == 1:
        t_name, mode = next(iter(found))
        if mode in MODE_AS_KEY:
            k_name, tonic = _key_name(t_name, mode), keys[0].tonic.pitchClass
        else:
            mode = None
    texts = [str(getattr(t, "text", "") or "") for t in s.recurse().getElementsByClass(tempo.TempoIndication)]
    length = max(n.start + n.dur for p in parts for n in p)
    return Piece(
        path.split("corpus/")[-1], parts, (bar, beat), name, pickup, k_name, mode, tonic, length, " ".join(texts)
    )


def looped(notes: list[Note], bar: float, quarters: float) -> list[Note]:
    """``notes`` repeated (shifted by whole bars, so the bar grid holds) until ``quarters``."""
    end = max(n.start + n.dur for n in notes)
    period = math.ceil(end / bar - 1e-6) * bar
    out, k = [], 0
    while k * period < quarters:
        out += [Note(n.start + k * period, n.dur, n.pitch, n.velocity, n.channel) for n in notes]
        k += 1
    return [n for n in out if n.start < quarters]


def beat_range(piece: Piece) -> tuple[float, float]:
    """A plausible beat tempo range, beats per minute, from the score's tempo words (slow, fast or neither)."""
    text = piece.tempo_text.lower()
    if any(w in text for w in ("adagio", "largo", "lento", "grave", "andante", "larghetto")):
        return 45.0, 85.0
    if any(w in text for w in ("allegro", "presto", "vivace")):
        return 100.0, 170.0
    return 60.0, 130.0
