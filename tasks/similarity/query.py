"""Which track a user means: a track id, a path, or a title/artist substring, never guessed between several."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from tasks.audio.identity import path_to_text
from tasks.errors import CratedigError

#: An ambiguous query lists at most this many candidates (the first ones by track_id).
MAX_CANDIDATES: int = 100
#: ``id:7`` always means the track id 7; a bare ``7`` also matches titles, artists and file names.
ID_PREFIX: str = "id:"


class SimilarityError(CratedigError):
    """A similarity query cannot be answered."""


class TrackNotFoundError(SimilarityError):
    """No catalog track matches the query."""


class AmbiguousQueryError(SimilarityError):
    """Several tracks match; ``candidates`` (track_id, path, title, artist) lists them. ``lines``: the message line
    by line (what matched, then one candidate a line), so a caller can show each on its own line and escape what
    a name holds, line breaks included."""

    def __init__(self, text: str, candidates: pl.DataFrame, *, hint: str = "a track id or path") -> None:
        n = f"more than {MAX_CANDIDATES}" if candidates.height > MAX_CANDIDATES else str(candidates.height)
        self.lines = [f"{n} tracks match {text!r}; use {hint}:"] + [
            f"  {r['track_id']}: {r['artist'] or '?'} - {r['title'] or '?'}  ({r['path']})"
            for r in candidates.head(20).iter_rows(named=True)
        ]
        if candidates.height > 20:
            self.lines.append(f"  ... ({n} in all)")
        super().__init__("\n".join(self.lines))
        self.candidates = candidates


def _undecodable(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate: a byte of a file name that was not UTF-8 (``os.fsdecode``)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _working_folder() -> str | None:
    """The working folder as the shell names it (``$PWD``, through a link to a folder the user went into, when it
    is the same folder), else as the system does; None when it was deleted."""
    try:
        here = os.getcwd()
    except FileNotFoundError:
        return None
    pwd = os.environ.get("PWD", "")
    try:
        return pwd if os.path.isabs(pwd) and os.path.samefile(pwd, here) else here
    except OSError:
        return here


def _absolute(text: str) -> list[str]:
    """``text`` as an absolute path, ``~`` expanded and ``.`` and empty parts dropped, the links after its last
    ``..`` left as they are (the catalog holds a file under the link's path that the walk took). The part up to
    that ``..`` is resolved, since through a link to a folder ``lnk/..`` is not the folder that holds ``lnk``."""
    path = os.path.expanduser(text)
    cwd = _working_folder()
    if cwd is None and not os.path.isabs(path):
        return []
    parts = [p for p in os.path.join(cwd or "/", path).split("/") if p not in ("", ".")]
    if ".." not in parts:
        return ["/" + "/".join(parts)]
    last = len(parts) - 1 - parts[::-1].index("..")
    head = os.path.realpath("/" + "/".join(parts[: last + 1]))
    return [os.path.join(head, *parts[last + 1 :])]


def _resolved(text: str) -> list[str]:
    """``text`` with every link resolved; none when it cannot be (a relative path in a deleted working folder)."""
    try:
        return [str(Path(text).expanduser().resolve())]
    except OSError:
        return []


def resolve_query(con: duckdb.DuckDBPyConnection, text: str | int | Path) -> list[int]:
    """Track ids a user's query names: a track id, a path, or a title/artist substring.

    Tries in order: a track id (an int, or ``'id:7'``; a bare ``'7'`` is one too unless a title, artist or file
    name also contains it, which is ambiguous); an exact path (also after resolving a relative one); a title or
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
    if isinstance(text, (int, np.integer)) or s.lower().startswith(ID_PREFIX) and s[len(ID_PREFIX) :].isdigit():
        track_id = int(s[len(ID_PREFIX) :] if s.lower().startswith(ID_PREFIX) else s)
        if con.execute("SELECT 1 FROM tracks WHERE track_id = ?", [track_id]).fetchall():
            return [track_id]
        raise TrackNotFoundError(f"no track with id {track_id}")
    # Stored paths are texts (tasks.audio.identity.path_to_text); names with a backslash or bytes that are not
    # UTF-8 differ from what the user typed, which is tried too. A name's undecodable bytes reach Python as lone
    # surrogates, which DuckDB cannot take: only their stored (escaped) form is sent, and searched for below.
    # In this order: as typed, made absolute, then with its links resolved (a link's own track, when the catalog
    # has one, before the track of the file it points to).
    typed = [s, *_absolute(s), *_resolved(s)]
    paths = [p for p in dict.fromkeys(x for t in typed for x in (t, path_to_text(t))) if not _undecodable(p)]
    s = path_to_text(s) if _undecodable(s) else s
    ids = [
        r[0]
        for r in con.execute(
            "SELECT track_id FROM tracks t JOIN unnest(?::VARCHAR[]) WITH ORDINALITY AS q(path, rank) USING (path) "
            "ORDER BY q.rank, t.status <> 'analyzed', t.track_id",
            [paths],
        ).fetchall()
    ]
    if ids:
        return ids[:1]
    # A bare number is a track id unless any title, artist or file name contains it: all of those are candidates.
    found = _text_matches(con, s.lower(), cols, every=s.isdigit())
    if s.isdigit():
        by_id = con.sql(f"SELECT {cols} FROM tracks WHERE track_id = ?", params=[int(s)]).pl()
        if by_id.height and not found.filter(pl.col("track_id") != int(s)).height:
            return [int(s)]
        if by_id.height:
            hint = f"{ID_PREFIX}{s} for track id {s}, or more of a title, or a path"
            raise AmbiguousQueryError(s, pl.concat([by_id, found.filter(pl.col("track_id") != int(s))]), hint=hint)
    if found.height == 1:
        return [int(found["track_id"][0])]
    if found.height > 1:
        raise AmbiguousQueryError(s, found)
    # Say so when only tracks the analysis did not keep match: "no track" would send the user looking elsewhere.
    others = con.execute(
        "SELECT track_id, status, reason FROM tracks t WHERE t.status <> 'analyzed' AND (contains(lower(t.title), ?1) "
        "OR contains(lower(t.artist), ?1) OR contains(lower(regexp_extract(t.path, '[^/]*$')), ?1)) "
        "ORDER BY track_id LIMIT 3",
        [s.lower()],
    ).fetchall()
    if others:
        raise TrackNotFoundError(f"no analysed track matches {s!r}: {describe_unanalysed(others)}")
    raise TrackNotFoundError(f"no analysed track matches {s!r} (track id, path, title or artist)")


def _text_matches(con: duckdb.DuckDBPyConnection, low: str, cols: str, *, every: bool = False) -> pl.DataFrame:
    """Analysed tracks whose title/artist equals, else contains, else whose file name contains ``low`` (with
    ``every``, all three kinds of match together, by track id)."""
    both = "lower(coalesce(t.artist, '') || ' - ' || coalesce(t.title, ''))"
    name = "regexp_extract(t.path, '[^/]*$')"  # (a stored name escapes its backslashes and odd bytes: \\, \\xNN)
    if every:
        name = f"regexp_replace({name}, '\\.[^.]*$', '')"
    tiers = []
    for cond in (
        f"lower(t.title) = ?1 OR {both} = ?1",
        f"contains(lower(t.title), ?1) OR contains(lower(t.artist), ?1) OR contains({both}, ?1)",
        # The file name; for a bare number without its extension (the 3 of .mp3 names no track).
        f"contains(lower({name}), ?1)",
    ):
        found = con.sql(
            f"SELECT {cols} FROM tracks t WHERE t.status = 'analyzed' AND ({cond}) "
            f"ORDER BY track_id LIMIT {MAX_CANDIDATES + 1}",
            params=[low],
        ).pl()
        if found.height and not every:
            return found
        tiers.append(found)
    if not every:
        return tiers[-1]
    return pl.concat(tiers).unique("track_id", keep="first").sort("track_id").head(MAX_CANDIDATES + 1)


def describe_unanalysed(rows: list[tuple[int, str, str | None]]) -> str:
    """Why tracks ``(track_id, status, reason)`` have no analysis, and where to look: a missing file's folder
    (``rejects`` lists no such track), or ``cratedig rejects`` for a file the analysis refused."""
    parts = [
        f"track {i}'s file is missing (moved or deleted; `cratedig analyze` on its new folder finds a moved one)"
        if status == "missing"
        else f"track {i} is {status} ({reason}); `cratedig rejects` says why"
        for i, status, reason in rows
    ]
    return ", ".join(parts)
