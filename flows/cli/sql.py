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
from flows.cli.text import literal


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
            if not con.extract_statements(query):  # "" or only comments: DuckDB would answer nothing, exit 0
                raise UsageError("no SQL statement in QUERY")
            with interrupt.stop_signals_interrupt(con) as stopped:
                try:
                    rel = con.sql(query)
                    if rel is None:  # a statement without rows (SET, PRAGMA ...)
                        return
                    columns, rows = rel.columns, rel.fetchall()
                except Exception:
                    if stopped:  # the query was interrupted ("Query interrupted"): a Ctrl-C, exit 130
                        raise KeyboardInterrupt from None
                    raise
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {' '.join(str(exc).split())}") from None
    finally:
        con.close()
    if as_json:
        typer.echo(json.dumps([dict(zip(columns, map(json_value, r))) for r in rows], default=str, allow_nan=False))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(caption=f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*(literal("NULL" if v is None else v) for v in r))
        out.print(table)
