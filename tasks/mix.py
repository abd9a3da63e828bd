"""What can I play next? Mixing rules (tempo, Camelot wheel), which track a user means, sets and playlists.

:func:`camelot_compatible` and :func:`tempo_compatible` are the rules every filter uses;
:data:`RULE_MACROS_SQL` states the same rules in SQL (installed in every catalog, next to the
``similar_tracks`` table macro of :mod:`tasks.similarity`). :func:`resolve_query` turns a path, a
track id or a title/artist substring into a track (never guessing between several);
:func:`build_mix` chains nearest neighbours that obey the rules; :func:`write_m3u` saves a set.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import duckdb
import numpy as np
import polars as pl

from tasks.errors import CratedigError

_CAMELOT = re.compile(r"^\s*(1[0-2]|[1-9])\s*([AB])\s*$", re.IGNORECASE)
#: An ambiguous query lists at most this many candidates (the first ones by track_id).
MAX_CANDIDATES: int = 100


class SimilarityError(CratedigError):
    """A similarity query cannot be answered."""


class TrackNotFoundError(SimilarityError):
    """No catalog track matches the query."""


class AmbiguousQueryError(SimilarityError):
    """Several tracks match; ``candidates`` (track_id, path, title, artist) lists them."""

    def __init__(self, text: str, candidates: pl.DataFrame) -> None:
        lines = [f"  {r['track_id']}: {r['artist'] or '?'} - {r['title'] or '?'}  ({r['path']})"
                 for r in candidates.head(20).iter_rows(named=True)]
        n = f"more than {MAX_CANDIDATES}" if candidates.height > MAX_CANDIDATES else str(candidates.height)
        more = f"\n  ... ({n} in all)" if candidates.height > 20 else ""
        super().__init__(f"{n} tracks match {text!r}; use a track id or path:\n" + "\n".join(lines) + more)
        self.candidates = candidates


def parse_camelot(code: str | None) -> tuple[int, str] | None:
    """``'8A'`` -> ``(8, 'A')``; a key name (``'A minor'``) is converted first; ``None`` if unknown."""
    if not code:
        return None
    m = _CAMELOT.match(code)
    if m is None:
        from tasks.key_names import camelot
        try:
            m = _CAMELOT.match(camelot(code))
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


#: The same rules as SQL macros, installed in every catalog by :func:`tasks.similarity.install_sql_macros`:
#: ``cratedig_camelot_compatible(a, b)`` on Camelot codes, ``cratedig_tempo_compatible(a, b, pct)``
#: (same expression as :func:`tempo_mask`, so both agree at the boundary), and on the 0..24 codes of
#: :func:`camelot_code`: ``cratedig_camelot_code(c)``, ``cratedig_camelot_code_compatible(a, b)``.
RULE_MACROS_SQL = """
CREATE OR REPLACE MACRO cratedig_camelot_number(c) AS TRY_CAST(regexp_extract(c, '^\\s*(\\d+)', 1) AS INTEGER);
CREATE OR REPLACE MACRO cratedig_camelot_compatible(a, b) AS
    coalesce(CASE WHEN upper(regexp_extract(a, '([ABab])\\s*$', 1)) = '' THEN false
                  WHEN upper(regexp_extract(a, '([ABab])\\s*$', 1)) = upper(regexp_extract(b, '([ABab])\\s*$', 1))
                  THEN (cratedig_camelot_number(a) - cratedig_camelot_number(b) + 12) % 12 IN (0, 1, 11)
                  ELSE cratedig_camelot_number(a) = cratedig_camelot_number(b)
                       AND regexp_extract(b, '([ABab])\\s*$', 1) <> '' END, false);
CREATE OR REPLACE MACRO cratedig_camelot_code_compatible(a, b) AS
    coalesce(a < 24 AND b < 24 AND CASE WHEN a % 2 = b % 2 THEN (a // 2 - b // 2 + 12) % 12 IN (0, 1, 11)
                                        ELSE a // 2 = b // 2 END, false);
CREATE OR REPLACE MACRO cratedig_tempo_compatible(a, b, pct) AS
    coalesce(abs(b - a * 1.0) <= a * 1.0 * pct / 100.0 OR abs(b - a * 2.0) <= a * 2.0 * pct / 100.0
             OR abs(b - a * 0.5) <= a * 0.5 * pct / 100.0, false);
CREATE OR REPLACE MACRO cratedig_camelot_code(c) AS
    coalesce(CASE WHEN cratedig_camelot_number(c) BETWEEN 1 AND 12 AND regexp_extract(c, '([ABab])\\s*$', 1) <> ''
                  THEN (cratedig_camelot_number(c) - 1) * 2 + (upper(regexp_extract(c, '([ABab])\\s*$', 1)) = 'B')::INT
             END, 24);
"""


# ---------------------------------------------------------------- which track, which set

def resolve_query(con: duckdb.DuckDBPyConnection, text: str | int | Path) -> list[int]:
    """Track ids a user's query names: a track id, a path, or a title/artist substring.

    Tries in order: a track id; an exact path (also after resolving a relative one); a title or
    ``'artist - title'`` equal to ``text`` (case-insensitive); a substring of title, artist,
    ``'artist - title'`` or, failing those, of the file name. Returns one id.

    Raises
    ------
    TrackNotFoundError
        Nothing matches.
    AmbiguousQueryError
        Several tracks match; its ``candidates`` and message list them (never guessed).
    """
    cols = "track_id, path, title, artist"
    s = str(text).strip()
    if not s:
        raise TrackNotFoundError("empty query: give a track id, a path, or part of a title or artist")
    if isinstance(text, (int, np.integer)) or s.isdigit():
        rows = con.execute("SELECT track_id FROM tracks WHERE track_id = ?", [int(s)]).fetchall()
        if rows:
            return [int(rows[0][0])]
    paths = list(dict.fromkeys([s, str(Path(s).expanduser().resolve())] if s else []))
    ids = [r[0] for r in con.execute("SELECT track_id FROM tracks WHERE path IN (SELECT unnest(?::VARCHAR[])) "
                                     "ORDER BY status <> 'analyzed', track_id", [paths]).fetchall()]
    if ids:
        return ids[:1]
    low = s.lower()
    both = "lower(coalesce(t.artist, '') || ' - ' || coalesce(t.title, ''))"
    for cond in (f"lower(t.title) = ?1 OR {both} = ?1",
                 f"contains(lower(t.title), ?1) OR contains(lower(t.artist), ?1) OR contains({both}, ?1)",
                 "contains(lower(regexp_extract(t.path, '[^/\\\\]*$')), ?1)"):
        found = con.sql(f"SELECT {cols} FROM tracks t WHERE t.status = 'analyzed' AND ({cond}) "
                        f"ORDER BY track_id LIMIT {MAX_CANDIDATES + 1}", params=[low]).pl()
        if found.height == 1:
            return [int(found["track_id"][0])]
        if found.height > 1:
            raise AmbiguousQueryError(s, found)
    raise TrackNotFoundError(f"no analysed track matches {s!r} (track id, path, title or artist)")



def build_mix(con: duckdb.DuckDBPyConnection, seed: Any, length: int = 20, *, bpm_window: float | None = 6.0,
              harmonic: bool = True, metric: str = "cosine") -> pl.DataFrame:
    """A set of up to ``length`` tracks starting at ``seed``, each the nearest unplayed neighbour of the
    one before that is tempo- and key-compatible with it.

    Greedy, one exact search per step. No track is played twice, nor a duplicate of one played
    (same fingerprint or title/artist). Stops early when no compatible track is left.

    Parameters
    ----------
    seed : str or int
        A path, track id or title/artist substring (:func:`tasks.similarity.resolve_query`).
    bpm_window : float or None
        Tempo window in percent (half/double time allowed); ``None`` = any tempo.
    harmonic : bool
        Require Camelot compatibility between consecutive tracks.

    Returns
    -------
    polars.DataFrame
        ``position`` (1..), ``track_id, path, title, artist, bpm, key, key_camelot, duration_s`` and
        ``distance`` to the previous track (0 for the seed).
    """
    from tasks.similarity import similar_tracks

    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    current = resolve_query(con, seed)[0]
    played, steps = [current], [0.0]
    while len(played) < length:
        nxt = similar_tracks(con, current, 1, metric=metric, bpm_window=bpm_window, harmonic=harmonic,
                             exclude=played)
        if nxt.height == 0:
            break
        current = int(nxt["track_id"][0])
        played.append(current)
        steps.append(float(nxt["distance"][0]))
    order = pl.DataFrame({"position": range(1, len(played) + 1), "track_id": played, "distance": steps},
                         schema={"position": pl.Int64, "track_id": pl.Int64, "distance": pl.Float64})
    meta = con.sql("""SELECT t.track_id, t.path, t.title, t.artist, f.bpm, f."key", f.key_camelot, t.duration_s
                      FROM tracks t JOIN features f USING (track_id)
                      WHERE t.track_id IN (SELECT unnest(?::BIGINT[]))""", params=[played]).pl()
    return order.join(meta, on="track_id", how="left").sort("position").select(
        "position", "track_id", "path", "title", "artist", "bpm", "key", "key_camelot", "duration_s", "distance")


def write_m3u(rows: pl.DataFrame | Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write an extended M3U playlist (UTF-8) of ``rows`` in order; returns the path written.

    Each row needs ``path``; ``duration_s``, ``title`` and ``artist`` fill ``#EXTINF`` when present.
    Catalog paths with escaped undecodable bytes are written back as the original bytes.
    """
    from tasks.scan import text_to_path

    items = rows.to_dicts() if isinstance(rows, pl.DataFrame) else [dict(r) for r in rows]
    lines = ["#EXTM3U"]
    for r in items:
        dur = r.get("duration_s")
        secs = int(round(dur)) if dur is not None and np.isfinite(dur) else -1
        title, artist = r.get("title"), r.get("artist")
        label = f"{artist} - {title}" if title and artist else (title or Path(r["path"]).stem)
        lines += [f"#EXTINF:{secs},{label}".replace("\n", " "), text_to_path(r["path"])]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    return path
