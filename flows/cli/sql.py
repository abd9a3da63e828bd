"""``cratedig sql "QUERY"``: read-only SQL on the catalog, with the similarity macros, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import decimal
import json
import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from flows import interrupt
from flows.cli.app import CatalogOpt, JsonOpt, app, out
from flows.cli.errors import UsageError
from flows.cli.text import literal, visible


def json_value(value: Any) -> Any:
    """``value`` as JSON can hold it: NaN and infinities as null (JSON has no such numbers), a DECIMAL as a
    number, a BLOB as its hex digits; lists and structs item by item. Other types go through ``str``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


@app.command()
def sql(
    query: str = typer.Argument(..., help='SQL, e.g. "SELECT key_camelot, count(*) FROM features GROUP BY ALL".'),
    catalog: Path = CatalogOpt,
    as_json: bool = JsonOpt,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV on stdout."),
) -> None:
    """Run read-only SQL on the catalog (similar_tracks() and the other macros included); a table on a terminal.

    It reads the last published state of the catalog and never waits for a run. It touches nothing outside the
    catalog: no file is read or written (COPY, read_csv ...) and no extension installed or loaded.
    """
    import duckdb

    from tasks.catalog.writer import open_reader
    from tasks.similarity.sql import ensure_sql_macros

    if as_json and as_csv:
        raise UsageError("--json and --csv are exclusive")
    con = open_reader(catalog)
    try:
        ensure_sql_macros(con)
        # Read-only on the catalog is not enough: COPY ... TO writes files and INSTALL downloads. Once off, a query
        # cannot turn it back on.
        con.execute("SET enable_external_access = false")
        try:
            statements = con.extract_statements(query)
            if not statements:  # "" or only comments: DuckDB would answer nothing, exit 0
                raise UsageError("no SQL statement in QUERY")
            if len(statements) > 1:  # DuckDB would run them all and show the last one's rows only
                raise UsageError(f"one statement at a time: QUERY holds {len(statements)}")
            with interrupt.stop_signals_interrupt(con) as stopped:
                try:
                    # Once (EXPLAIN ANALYZE ran twice when con.sql came first); rows come from the cursor a chunk at a
                    # time: any size, little memory.
                    con.execute(query)
                    if con.description is None:  # a statement without rows
                        return
                    columns = [d[0] for d in con.description]
                    if as_json or as_csv:
                        _stream(con, columns, as_json)
                        return
                    rows = con.fetchall()
                except Exception as exc:
                    # Interrupted by a stop signal: the watcher's, or DuckDB's own check of a Ctrl-C, which can come
                    # first (then the watcher has not yet seen it): exit 130 either way.
                    if stopped or _interrupted(exc):
                        raise KeyboardInterrupt from None
                    raise
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {' '.join(str(exc).split())}") from None
    finally:
        con.close()
    table = Table(caption=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*(literal("NULL" if v is None else v) for v in r))
    out.print(table)


#: Rows fetched at once for --json and --csv.
_CHUNK = 10_000


def _interrupted(exc: BaseException) -> bool:
    import duckdb

    return isinstance(exc, duckdb.InterruptException) or str(exc) == "Query interrupted"


def csv_value(value: Any) -> Any:
    """``value`` as a CSV cell: lists and structs as JSON text (as :func:`json_value`), a BLOB as its hex digits;
    None as an empty cell; the rest as the csv module writes it."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(json_value(value), default=str, allow_nan=False)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return value


def _stream(con: Any, columns: list[str], as_json: bool) -> None:
    """The cursor's rows on stdout as a JSON array or as CSV, :data:`_CHUNK` rows at a time."""
    if as_json:
        sys.stdout.write("[")
        sep = ""
        while rows := con.fetchmany(_CHUNK):
            for r in rows:
                sys.stdout.write(sep + json.dumps(dict(zip(columns, map(json_value, r))), default=str, allow_nan=False))
                sep = ", "
        sys.stdout.write("]\n")
        return
    # On a terminal, a tag's escape sequences must not restyle or retitle it: control characters are shown as
    # \xNN, as in the table. Redirected, CSV is data and keeps the text as stored.
    shown = visible if sys.stdout.isatty() else (lambda text: text)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([shown(c) for c in columns])
    while rows := con.fetchmany(_CHUNK):
        writer.writerows([shown(c) if isinstance(c := csv_value(v), str) else c for v in r] for r in rows)
