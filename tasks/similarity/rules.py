"""Mixing rules: tempo windows (half/double time allowed) and the Camelot wheel, in Python and as SQL macros.

:func:`camelot_compatible` and :func:`tempo_compatible` are the rules every filter uses;
:data:`RULE_MACROS_SQL` states the same rules in SQL (installed in every catalog, next to the
``similar_tracks`` table macro of :mod:`tasks.similarity.index`).
"""

from __future__ import annotations

import re

import numpy as np

from tasks.features.key.names import camelot, key_name

_CAMELOT = re.compile(r"^\s*(1[0-2]|[1-9])\s*([AB])\s*$", re.IGNORECASE)


def parse_camelot(code: str | None) -> tuple[int, str] | None:
    """``'8A'`` -> ``(8, 'A')``; a key in another notation (``'A minor'``, ``'Am'``, Open Key ``'1m'``: what
    :func:`~tasks.features.key.names.key_name` reads, which is what tags and ``cratedig set`` hold) is converted
    first; ``None`` if unknown."""
    if not code:
        return None
    m = _CAMELOT.match(code)
    if m is None:
        try:
            m = _CAMELOT.match(camelot(key_name(code)))
        except ValueError:
            return None
    return int(m.group(1)), m.group(2).upper()


def camelot_compatible(a: str | None, b: str | None) -> bool:
    """True when ``b`` mixes harmonically after ``a`` on the Camelot wheel.

    Compatible: the same key, one step round the wheel (a fifth up or down, same letter), or the
    relative major/minor (same number, other letter). Camelot codes or key names; unknown -> False.
    """
    pa_, pb = parse_camelot(a), parse_camelot(b)
    if pa_ is None or pb is None:
        return False
    (na, la), (nb, lb) = pa_, pb
    return (na - nb) % 12 in (0, 1, 11) if la == lb else na == nb


def tempo_compatible(bpm_a: float | None, bpm_b: float | None, window_pct: float) -> bool:
    """True when ``bpm_b`` is within ``window_pct`` % of ``bpm_a``, half ``bpm_a`` or double ``bpm_a``.

    ``bpm_a`` (the seed, BPM) is the reference: the window is ``window_pct`` % of ``r * bpm_a`` for
    ``r`` in (1, 2, 0.5), since a DJ can beat-match a track played at half or double time.
    """
    if bpm_a is None or bpm_b is None or not (np.isfinite(bpm_a) and np.isfinite(bpm_b)):
        return False
    return bool(tempo_mask(float(bpm_a), np.array([bpm_b], dtype=np.float64), window_pct)[0])


def tempo_mask(bpm_a: float, bpm: np.ndarray, window_pct: float) -> np.ndarray:
    """:func:`tempo_compatible` of one reference tempo against an array of tempi (NaN -> False)."""
    # Same expression, in the same order, as the SQL macro cratedig_tempo_compatible: SQL and
    # Python must agree on the boundary.
    ok = np.zeros(bpm.shape, dtype=bool)
    for r in (1.0, 2.0, 0.5):
        ok |= np.abs(bpm - bpm_a * r) <= bpm_a * r * window_pct / 100.0
    return ok


def _camelot_table() -> np.ndarray:
    """(25, 25) bool: compatibility of Camelot codes 0..23 ((n-1)*2 + (B)), index 24 = unknown."""
    codes = [f"{n}{letter}" for n in range(1, 13) for letter in "AB"]
    table = np.zeros((25, 25), dtype=bool)
    for i, a in enumerate(codes):
        for j, b in enumerate(codes):
            table[i, j] = camelot_compatible(a, b)
    return table


#: Compatibility of Camelot codes (:func:`camelot_code`), shape (25, 25); code 24 (unknown) matches nothing.
COMPAT_TABLE: np.ndarray = _camelot_table()


def camelot_code(code: str | None) -> int:
    """Camelot code as 0..23 (``(number - 1) * 2 + (letter == 'B')``), 24 when unknown."""
    p = parse_camelot(code)
    return 24 if p is None else (p[0] - 1) * 2 + (p[1] == "B")


def _key_name_codes_sql() -> str:
    """A DuckDB ``MAP`` literal from every key name :func:`parse_camelot` reads (``'A minor'``, ``'Bb min'``,
    ``'C♯ maj'``: the letter upper-cased, the mode lower-cased, one space) to its 0..23 code."""
    pairs = {}
    for letter in "CDEFGAB":
        for acc in ("", "#", "b", "##", "bb", "♯", "♭", "♯♯", "♭♭"):
            for mode in ("major", "maj", "minor", "min"):
                pairs[f"{letter}{acc} {mode}"] = camelot_code(f"{letter}{acc} {mode}")
    return "MAP {" + ", ".join(f"'{k}': {v}" for k, v in pairs.items()) + "}"


#: Standard notation (``'Am'``, ``'F#'``, ``'Bbmin'``) as :func:`~tasks.features.key.names.key_name` reads it, on text
#: whose white space is one space: ``M`` is major, ``m``, ``min`` and ``minor`` minor, no mode major.
_SHORT_KEY_RE2 = "([A-Ga-g])([#b♯♭]{0,2}) ?(m|min|minor|maj|major|M)?"

#: What Python's ``\\s`` and ``str.split()`` take for white space (``str.isspace``), as an RE2 class: RE2's ``\\s``
#: is ASCII only, so a no-break space or a vertical tab in a key name read differently in SQL.
_PY_SPACE = "[" + "".join(f"\\x{{{c:04x}}}" for c in range(0x3001) if chr(c).isspace()) + "]"

#: The same rules as SQL macros, installed in every catalog by :func:`tasks.similarity.index.install_sql_macros`:
#: ``cratedig_camelot_compatible(a, b)`` on keys in any notation, ``cratedig_tempo_compatible(a, b, pct)``
#: (same expression as :func:`tempo_mask`, in doubles whatever the arguments' type (a literal is an exact DECIMAL),
#: so both agree at the boundary; not finite -> false; DuckDB orders NaN above every number, so a NaN bound is
#: refused explicitly, as NumPy's comparison does), and on the
#: 0..24 codes of :func:`camelot_code`: ``cratedig_camelot_code(c)``, ``cratedig_camelot_code_compatible(a, b)``.
#: A code reads as :func:`parse_camelot` reads it (1-12 and A or B, any case and spaces; Open Key, 1-12 and d or m;
#: standard notation, ``'Am'``; a key name through the table of every spelling it takes, with ``♯``/``♭`` read as
#: ``#``/``b`` and the mode in ASCII letters, as Python's ``lower()`` makes no ASCII word of another), so SQL and
#: Python agree on every input (``tests/similarity``).
RULE_MACROS_SQL = f"""
CREATE OR REPLACE MACRO cratedig_spaces(c) AS trim(regexp_replace(c, '{_PY_SPACE}+', ' ', 'g'));
CREATE OR REPLACE MACRO cratedig_key_words(c) AS string_split(cratedig_spaces(c), ' ');
CREATE OR REPLACE MACRO cratedig_camelot_code(c) AS
    coalesce(CASE WHEN regexp_full_match(cratedig_spaces(c), '(?i)(1[0-2]|[1-9]) ?[AB]')
                  THEN (CAST(regexp_extract(c, '(1[0-2]|[1-9])', 1) AS INTEGER) - 1) * 2
                       + (upper(regexp_extract(cratedig_spaces(c), '([ABab])$', 1)) = 'B')::INT
                  WHEN regexp_full_match(cratedig_spaces(c), '(?i)(1[0-2]|[1-9])[DM]')
                  THEN ((CAST(regexp_extract(c, '(1[0-2]|[1-9])', 1) AS INTEGER) + 6) % 12) * 2
                       + (upper(right(cratedig_spaces(c), 1)) = 'D')::INT
                  WHEN regexp_full_match(cratedig_spaces(c), '{_SHORT_KEY_RE2}')
                  THEN {_key_name_codes_sql()}[upper(left(cratedig_spaces(c), 1))
                       || replace(replace(regexp_extract(cratedig_spaces(c), '^[A-Ga-g]([#b♯♭]{{0,2}})', 1), '♯', '#'),
                                  '♭', 'b')
                       || CASE WHEN regexp_extract(cratedig_spaces(c), '(m|min|minor|maj|major|M)$', 1)
                                    IN ('m', 'min', 'minor') THEN ' minor' ELSE ' major' END]
                  WHEN len(cratedig_key_words(c)) = 2 AND regexp_full_match(cratedig_key_words(c)[2], '[A-Za-z]+')
                  THEN {_key_name_codes_sql()}[upper(left(cratedig_key_words(c)[1], 1))
                       || replace(replace(substr(cratedig_key_words(c)[1], 2), '♯', '#'), '♭', 'b')
                       || ' ' || lower(cratedig_key_words(c)[2])]
             END, 24);
CREATE OR REPLACE MACRO cratedig_camelot_code_compatible(a, b) AS
    coalesce(a < 24 AND b < 24 AND CASE WHEN a % 2 = b % 2 THEN (a // 2 - b // 2 + 12) % 12 IN (0, 1, 11)
                                        ELSE a // 2 = b // 2 END, false);
CREATE OR REPLACE MACRO cratedig_camelot_compatible(a, b) AS
    cratedig_camelot_code_compatible(cratedig_camelot_code(a), cratedig_camelot_code(b));
CREATE OR REPLACE MACRO cratedig_within(d, t) AS d <= t AND NOT isnan(t);
CREATE OR REPLACE MACRO cratedig_tempo_doubles(a, b, pct) AS
    coalesce(isfinite(a) AND isfinite(b)
             AND (cratedig_within(abs(b - a * 1.0), a * 1.0 * pct / 100.0)
                  OR cratedig_within(abs(b - a * 2.0), a * 2.0 * pct / 100.0)
                  OR cratedig_within(abs(b - a * 0.5), a * 0.5 * pct / 100.0)), false);
CREATE OR REPLACE MACRO cratedig_tempo_compatible(a, b, pct) AS
    cratedig_tempo_doubles(CAST(a AS DOUBLE), CAST(b AS DOUBLE), CAST(pct AS DOUBLE));
"""
