"""Key names and notations: the 24 key names, Camelot and Open Key codes, and the MIREX key score."""

from __future__ import annotations

import re

from tasks.errors import CratedigError

_PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KEY_NAMES: tuple[str, ...] = tuple(f"{p} major" for p in _PITCHES) + tuple(f"{p} minor" for p in _PITCHES)


class KeyNameError(CratedigError, ValueError):
    """A string that is not a key name ('C major', 'Bb minor', 'F# min')."""


def _parse_key(key: str) -> tuple[int, int]:
    """``'Bb minor'`` -> (pitch class 10, mode 1); accepts flats, sharps and 'maj'/'min'."""
    try:
        name, mode = key.strip().split()
    except ValueError:
        raise KeyNameError(f"not a key name: {key!r}") from None
    letter = "C D EF G A B".find(name[0].upper())
    acc = name[1:].replace("♯", "#").replace("♭", "b")
    if letter < 0 or acc not in ("", "#", "b", "##", "bb"):
        raise KeyNameError(f"not a key name: {key!r}")
    pc = (letter + acc.count("#") - acc.count("b")) % 12
    m = mode.lower()
    if m in ("major", "maj"):
        return pc, 0
    if m in ("minor", "min"):
        return pc, 1
    raise KeyNameError(f"not a key name: {key!r}")


def camelot(key: str) -> str:
    """Camelot wheel code: ``'C major'`` -> ``'8B'``, ``'A minor'`` -> ``'8A'``.

    Number = position on the circle of fifths (C major / A minor = 8); B = major, A = minor.
    """
    pc, mode = _parse_key(key)
    major_pc = (pc + 3 * mode) % 12  # relative major shares the number
    return f"{(7 * major_pc + 7) % 12 + 1}{'A' if mode else 'B'}"


def open_key(key: str) -> str:
    """Open Key code: ``'C major'`` -> ``'1d'``, ``'A minor'`` -> ``'1m'`` (d = major, m = minor)."""
    pc, mode = _parse_key(key)
    major_pc = (pc + 3 * mode) % 12
    return f"{(7 * major_pc) % 12 + 1}{'m' if mode else 'd'}"


#: Standard notation of each key (ID3v2.4 ``TKEY``: at most three characters, ``b``/``#`` half keys, ``m`` minor),
#: spelled as DJ software shows them; indexed like :data:`KEY_NAMES`.
STANDARD_KEYS: tuple[str, ...] = (
    *("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    *("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm"),
)
_SHORT_KEY = re.compile(r"^([A-Ga-g])([#b♯♭]{0,2})\s*(m|min|minor|maj|major|M)?$")


def key_index(key: str) -> int:
    """Position of a key name in :data:`KEY_NAMES`: 0-11 C..B major, 12-23 C..B minor (Traktor's numbering)."""
    pc, mode = _parse_key(key)
    return pc + 12 * mode


def standard_key(key: str) -> str:
    """Standard (ID3 ``TKEY``) notation: ``'A minor'`` -> ``'Am'``, ``'A# major'`` -> ``'Bb'``."""
    return STANDARD_KEYS[key_index(key)]


def key_name(text: str) -> str:
    """The key name (one of :data:`KEY_NAMES`) that ``text`` writes in any notation cratedig knows.

    Accepts key names (``'A minor'``, ``'Bb min'``), standard notation (``'Am'``, ``'F#'``, ``'Ebm'``), Camelot
    (``'8A'``) and Open Key (``'1m'``). Raises :class:`KeyNameError` for anything else.
    """
    s = text.strip()
    for name in KEY_NAMES:
        if s.upper() in (camelot(name), open_key(name).upper()):
            return name
    m = _SHORT_KEY.match(s)
    if m is not None:
        mode = "minor" if (m.group(3) or "").lower() in ("m", "min", "minor") and m.group(3) != "M" else "major"
        s = f"{m.group(1).upper()}{m.group(2)} {mode}"
    return KEY_NAMES[key_index(s)]


def mirex_score(estimated: str, reference: str, *, allow_descending_fifths: bool = False) -> float:
    """MIREX key score: 1 exact, 0.5 perfect fifth, 0.3 relative, 0.2 parallel, else 0.

    As ``mir_eval.key.weighted_score``: a fifth means the estimate is a perfect fifth *above* the
    reference in the same mode (``allow_descending_fifths=True`` also accepts a fifth below).
    Enharmonic spellings compare equal (``'Bb major' == 'A# major'``).
    """
    (pe, me), (pr, mr) = _parse_key(estimated), _parse_key(reference)
    if (pe, me) == (pr, mr):
        return 1.0
    if me == mr and ((pe - pr) % 12 == 7 or (allow_descending_fifths and (pe - pr) % 12 == 5)):
        return 0.5
    if me != mr and (pe - pr) % 12 == (3 if me == 0 else 9):
        return 0.3
    if me != mr and pe == pr:
        return 0.2
    return 0.0
