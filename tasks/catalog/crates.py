"""Crates: smart ones are a saved WHERE clause over ``effective_tracks``, re-evaluated at each use; static ones
a saved list of tracks (a mix, a ``similar`` result).

A smart crate's clause is user SQL by design. It is checked when saved and again before each use: one
boolean expression over the view's columns, balanced parentheses, no statement separator, no comment, and
it must run (read only, inside a transaction that is rolled back) against the view. It is then only ever
placed inside ``WHERE status = $status AND (<clause>)``, where balanced parentheses cannot close.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import polars as pl

from tasks.catalog.store import now
from tasks.errors import CratedigError
from tasks.transactions import transaction
from tasks.vocabulary import CrateKind, TrackStatus

#: Columns a crate lists, in order (all from ``effective_tracks``).
CRATE_COLUMNS = (
    'track_id, path, title, artist, album, genre, format, duration_s, bpm, "key", key_camelot, key_open, '
    "beat_offset_s, beats_per_bar, loudness_lufs, replaygain_db, true_peak_dbtp, corrected"
)
_MAX_NAME = 200
#: Functions a clause may not call (a crate is evaluated at every use, by list and show and export too), and why.
_SIDE_EFFECTS = {
    "nextval": "changes the catalog",
    "setval": "changes the catalog",
    "sleep_ms": "waits",
    "write_log": "writes to the log",
}


class CrateError(CratedigError):
    """A crate that cannot be saved or used (bad name, bad clause, unknown crate)."""


def check_name(name: str) -> str:
    """A crate name, stripped: 1-200 printable characters."""
    s = name.strip()
    if not s or len(s) > _MAX_NAME or not s.isprintable():
        raise CrateError(f"bad crate name {name!r}: 1-{_MAX_NAME} printable characters")
    return s


def _code_spans(clause: str) -> list[str]:
    """The parts of ``clause`` that are SQL code: string literals and quoted identifiers left out.

    Raises :class:`CrateError` for a comment (it could hide the rest of the wrapping query).
    """
    try:
        tokens = duckdb.tokenize(clause)
        raw = clause.encode("utf-8")
    except Exception as exc:  # the tokenizer refuses an unterminated string; a lone surrogate is no UTF-8
        raise CrateError(f"cannot read the clause: {exc}") from None
    spans = []
    # The tokenizer's offsets count UTF-8 bytes: cut as characters, each non-ASCII one shifted the pieces, and a
    # ')' taken for part of a string literal let a clause close the wrapping query's parenthesis.
    ends = [start for start, _ in tokens[1:]] + [len(raw)]
    for (start, kind), end in zip(tokens, ends):
        text = raw[start:end].decode("utf-8")
        if kind == duckdb.token_type.comment:
            raise CrateError("comments are not allowed in a crate's clause")
        if kind == duckdb.token_type.string_const or (
            kind == duckdb.token_type.identifier and text.lstrip().startswith('"')
        ):
            continue
        if text.strip().lower() in _SIDE_EFFECTS:
            why = _SIDE_EFFECTS[text.strip().lower()]
            raise CrateError(f"{text.strip()}() {why}; not allowed in a crate's clause")
        spans.append(text)
    return spans


def _nodes(tree: Any) -> Iterator[dict]:
    """Every object in a parsed statement (DuckDB's ``json_serialize_sql``), depth first."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _refuse_subqueries(con: duckdb.DuckDBPyConnection, clause: str) -> None:
    """Raise :class:`CrateError` when the clause holds a subquery or calls one of ``_SIDE_EFFECTS``, as DuckDB's
    own parser reads it: a crate is a
    condition on each track's own columns, and a subquery could read any table or file
    (``EXISTS (FROM read_csv('/etc/passwd'))``), which ``sql`` refuses too. Keywords alone cannot tell
    (``IS DISTINCT FROM``, ``extract(year FROM ...)`` hold no query; ``SHOW`` and ``PIVOT_LONGER`` start one)."""
    parsed = json.loads(
        con.execute("SELECT json_serialize_sql(?)", [f"SELECT ({clause}) AS ok FROM effective_tracks"]).fetchone()[0]
    )
    if parsed.get("error") or len(parsed.get("statements", [])) != 1:
        raise CrateError("bad clause: not one condition DuckDB can read")
    # The wrapping query must still be itself: one expression over effective_tracks and nothing else (a clause
    # that closed its parenthesis could add a UNION, a table function, a LIMIT).
    top = parsed["statements"][0].get("node", {})
    source = top.get("from_table") or {}
    wrapped = (source.get("type"), source.get("table_name"), source.get("schema_name") or "")
    if (
        top.get("type") != "SELECT_NODE"
        or wrapped != ("BASE_TABLE", "effective_tracks", "")
        or len(top.get("select_list", [])) != 1
        or any(top.get(k) for k in ("modifiers", "where_clause", "group_expressions", "having", "sample", "qualify"))
        or (top.get("cte_map") or {}).get("map")
    ):
        raise CrateError("bad clause: not one condition on the track's columns (e.g. bpm BETWEEN 122 AND 128)")
    for node in _nodes(parsed["statements"]):
        if "SUBQUERY" in str(node.get("class", "")):
            raise CrateError(
                "a subquery is not allowed in a crate's clause: give a condition on the track's columns "
                "(e.g. bpm BETWEEN 122 AND 128)"
            )
        # As the parser names it: a quoted ("setval") or qualified (main.nextval) call passes the token check.
        name = str(node.get("function_name", "")).lower() if node.get("class") == "FUNCTION" else ""
        if name in _SIDE_EFFECTS:
            raise CrateError(f"{name}() {_SIDE_EFFECTS[name]}; not allowed in a crate's clause")


def check_clause(con: duckdb.DuckDBPyConnection, clause: str) -> str:
    """Check a smart crate's clause; return it stripped, or raise :class:`CrateError` with a one-line reason.

    The clause must be one boolean expression over ``effective_tracks`` (e.g.
    ``bpm BETWEEN 122 AND 128 AND key_camelot IN ('8A', '9A')``) that DuckDB can evaluate.
    """
    from tasks.similarity.sql import ensure_sql_macros

    s = clause.strip()
    if not s:
        raise CrateError("empty clause")
    ensure_sql_macros(con)  # this cratedig's rules (cratedig_camelot_compatible ...), not a catalog's older ones
    depth = 0
    for span in _code_spans(s):
        if ";" in span:
            raise CrateError("';' is not allowed in a crate's clause: give one expression")
        for ch in span:
            depth += (ch == "(") - (ch == ")")
            if depth < 0:
                raise CrateError("unbalanced parentheses in the clause")
    if depth != 0:
        raise CrateError("unbalanced parentheses in the clause")
    _refuse_subqueries(con, s)
    con.execute("BEGIN")  # anything the clause might touch is rolled back
    try:
        kind = con.execute(f"DESCRIBE SELECT ({s}) AS ok FROM effective_tracks").fetchall()[0][1]
        if kind not in ("BOOLEAN", '"NULL"', "NULL"):
            raise CrateError(f"the clause is a {kind}, not a condition (true or false for each track)")
        con.execute(f"SELECT count(*) FROM effective_tracks WHERE ({s})").fetchall()
    except duckdb.Error as exc:
        why = " ".join(str(exc).split()).split(" LINE 1:")[0]  # one line, without DuckDB's echo of the query
        raise CrateError(f"bad clause: {why}"[:300]) from None
    finally:
        con.execute("ROLLBACK")
    return s


def save_smart_crate(con: duckdb.DuckDBPyConnection, name: str, clause: str, *, replace: bool = False) -> str:
    """Check and save a smart crate; returns the clause stored. An existing name needs ``replace``."""
    name = check_name(name)
    clause = check_clause(con, clause)
    _store(con, name, CrateKind.SMART, clause, [], replace=replace)
    return clause


def save_static_crate(con: duckdb.DuckDBPyConnection, name: str, track_ids: list[int], *, replace: bool = False) -> int:
    """Save ``track_ids`` in order as a static crate; returns how many."""
    name = check_name(name)
    _store(con, name, CrateKind.STATIC, None, [int(t) for t in track_ids], replace=replace)
    return len(track_ids)


def _store(
    con: duckdb.DuckDBPyConnection, name: str, kind: str, clause: str | None, ids: list[int], *, replace: bool
) -> None:
    with transaction(con):
        exists = con.execute("SELECT count(*) FROM crates WHERE name = ?", [name]).fetchall()[0][0]
        if exists and not replace:
            raise CrateError(f"crate {name!r} exists (remove it first, or replace it)")
        con.execute("DELETE FROM crate_tracks WHERE name = ?", [name])
        con.execute("DELETE FROM crates WHERE name = ?", [name])
        con.execute(
            "INSERT INTO crates (name, kind, where_sql, created_at) VALUES (?, ?, ?, ?)", [name, kind, clause, now()]
        )
        if ids:
            con.executemany(
                "INSERT INTO crate_tracks (name, position, track_id) VALUES (?, ?, ?)",
                [(name, i + 1, t) for i, t in enumerate(ids)],
            )


def remove_crate(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Delete a crate (its tracks stay in the catalog). Raises :class:`CrateError` when there is none."""
    name = name.strip()
    with transaction(con):
        if not con.execute("SELECT count(*) FROM crates WHERE name = ?", [name]).fetchall()[0][0]:
            raise CrateError(f"no crate named {name!r}")
        con.execute("DELETE FROM crate_tracks WHERE name = ?", [name])
        con.execute("DELETE FROM crates WHERE name = ?", [name])


def crate_tracks(con: duckdb.DuckDBPyConnection, name: str) -> pl.DataFrame:
    """The analysed tracks of a crate now, with their effective values (:data:`CRATE_COLUMNS`).

    A smart crate is evaluated now (checked again first); a static one keeps its saved order and drops
    tracks that are no longer analysed.
    """
    name = name.strip()
    row = con.execute("SELECT kind, where_sql FROM crates WHERE name = ?", [name]).fetchall()
    if not row:
        raise CrateError(f"no crate named {name!r}")
    kind, clause = row[0]
    if kind == CrateKind.SMART:
        clause = check_clause(con, clause)
        return con.sql(
            f"SELECT {CRATE_COLUMNS} FROM effective_tracks WHERE status = $status AND ({clause}) "
            "ORDER BY artist NULLS LAST, title NULLS LAST, path",
            params={"status": TrackStatus.ANALYZED},
        ).pl()
    return con.sql(
        f"""SELECT {", ".join("e." + c.strip() for c in CRATE_COLUMNS.split(","))}
            FROM crate_tracks ct JOIN effective_tracks e USING (track_id)
            WHERE ct.name = $name AND e.status = $status ORDER BY ct.position""",
        params={"name": name, "status": TrackStatus.ANALYZED},
    ).pl()


def list_crates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every crate: ``name, kind, where_sql, created_at`` and ``tracks`` (how many it holds now)."""
    crates = con.sql("SELECT name, kind, where_sql, created_at FROM crates ORDER BY name").pl()
    counts = []
    for name in crates["name"]:
        try:
            counts.append(crate_tracks(con, name).height)
        except CrateError:
            counts.append(None)  # a clause that no longer runs (a column gone): shown, not fatal
    return crates.with_columns(pl.Series("tracks", counts, dtype=pl.Int64))
