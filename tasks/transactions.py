"""One DuckDB transaction as a ``with`` block: committed whole, or rolled back whole; and the catalog's clock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN`` on entry, ``COMMIT`` on a normal exit, ``ROLLBACK`` when the block raises.

    A failed ``ROLLBACK`` (DuckDB has already aborted the transaction, e.g. after a full disk) never
    replaces the error that caused it: the block's own exception is the one raised.
    """
    con.execute("BEGIN")
    try:
        yield con
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the transaction is gone already; the original error says why
        raise
    con.execute("COMMIT")


def now() -> datetime:
    """UTC now, naive (DuckDB ``TIMESTAMP``)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
