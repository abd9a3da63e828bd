"""The Parquet export of the catalog, atomic as a set: every table written into a new folder, then one link
swapped, so a reader never sees ``tracks.parquet`` and ``features.parquet`` of two different runs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import duckdb

from tasks.catalog.store import now
from tasks.errors import OutputNotWritableError
from tasks.sqltext import sql_literal

#: Name, inside the Parquet folder, of the link to the newest complete export (see :func:`export_parquet`).
PARQUET_CURRENT: str = "current"
#: Folder, inside the Parquet folder, holding one sub-folder per export.
PARQUET_EXPORTS: str = "exports"
PARQUET_TABLES: tuple[str, ...] = ("tracks", "features", "effective_tracks")
#: File, in each export's folder, naming the catalog content it holds (see :func:`content_digest`).
PARQUET_MANIFEST: str = "manifest.json"


def _copy_table(con: duckdb.DuckDBPyConnection, table: str, target: Path) -> None:
    # COPY's target cannot be a bound parameter: it is quoted as a DuckDB string literal instead.
    con.execute(f"COPY (SELECT * FROM {table} ORDER BY track_id) TO {sql_literal(target)} (FORMAT parquet)")


def _swap_link(link: Path, target: str) -> None:
    """Point the symlink ``link`` at ``target`` in one ``rename`` (replacing a file or an older link)."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def has_export(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a complete export (every table's link leads to a file)."""
    return all((Path(out_dir) / f"{table}.parquet").is_file() for table in PARQUET_TABLES)


def check_export_folder(out_dir: str | Path) -> None:
    """Raise :class:`~tasks.errors.OutputNotWritableError` when ``out_dir`` cannot take an export: a file where
    it or a folder above it should be, or a folder it cannot write. Leaves nothing behind (asked before a run,
    which would otherwise fail only at its end)."""
    out = Path(out_dir).absolute()
    there = out
    while not os.path.lexists(there) and there != there.parent:
        there = there.parent
    if not there.is_dir():
        raise OutputNotWritableError(f"cannot write the Parquet export to {out}: {there} is not a folder")
    exports = out / PARQUET_EXPORTS
    if os.path.lexists(exports) and not exports.is_dir():
        raise OutputNotWritableError(f"cannot write the Parquet export to {out}: {exports} is not a folder")
    longest = os.pathconf(there, "PC_NAME_MAX")
    for part in [*out.relative_to(there).parts, PARQUET_EXPORTS]:
        if len(os.fsencode(part)) > longest:
            raise OutputNotWritableError(
                f"cannot write the Parquet export to {out}: a name is longer than {longest} bytes"
            )
    try:  # a probe, not os.access: root passes that for folders it still cannot write (/sys, chattr +i)
        fd, probe = tempfile.mkstemp(prefix=".cratedig-", suffix=".probe", dir=there)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputNotWritableError(
            f"cannot write the Parquet export to {out}: {there} is read-only ({exc.strerror})"
        ) from None


def content_digest(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of what an export holds: each exported table's row count and the XOR of its rows' hashes.

    Rows are unique by ``track_id``, so equal rows never cancel out. It reads every row once, as the export does,
    but writes nothing: a small part of an export's cost. DuckDB's ``hash`` may change between its versions,
    which costs one needless export after an upgrade.
    """
    parts = []
    for table in PARQUET_TABLES:
        # the table name is one of PARQUET_TABLES, never user text
        (n, digest) = con.execute(f"SELECT count(*), coalesce(bit_xor(hash(t)), 0) FROM {table} AS t").fetchall()[0]
        parts.append(f"{table}:{n}:{digest}")
    return ";".join(parts)


def export_is_current(con: duckdb.DuckDBPyConnection, out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a complete export of exactly what ``con``'s catalog holds now.

    False after a run stored analyses but was stopped before its export, after corrections made since, and
    for an export written by a cratedig that kept no manifest.
    """
    if not has_export(out_dir):
        return False
    try:
        manifest = json.loads((Path(out_dir) / PARQUET_CURRENT / PARQUET_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("content") == content_digest(con)


def export_parquet(con: duckdb.DuckDBPyConnection, out_dir: str | Path) -> list[Path]:
    """Export ``tracks``, ``features`` and ``effective_tracks`` (the view: corrections over analysis) to
    Parquet in ``out_dir``, atomically as a set.

    The files are written into a new folder ``exports/<id>/``; only then does one ``rename`` point the
    link ``current`` at it. ``<table>.parquet`` in ``out_dir`` are fixed links to ``current/<table>.parquet``,
    so they always name files of one complete export: a failure (a full disk) or a kill at any point
    leaves the previous export in place, whole. A reader that opens several files and must not straddle
    a later export resolves ``current`` once (``os.path.realpath``) and reads them from there. The
    previous export is kept for readers still reading it; older ones are removed.

    Returns the paths readers open: ``out_dir/tracks.parquet``, ``features.parquet``, ``effective_tracks.parquet``.
    """
    out_dir = Path(out_dir).absolute()  # COPY reads a leading "~" as the home folder; Python's checks do not
    exports = out_dir / PARQUET_EXPORTS
    exports.mkdir(parents=True, exist_ok=True)
    name = f"{now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    folder = exports / name
    folder.mkdir()
    try:
        for table in PARQUET_TABLES:
            _copy_table(con, table, folder / f"{table}.parquet")
        manifest = {"content": content_digest(con), "exported_at": now().isoformat()}
        (folder / PARQUET_MANIFEST).write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    current = out_dir / PARQUET_CURRENT
    previous = os.readlink(current) if current.is_symlink() else None
    _swap_link(current, f"{PARQUET_EXPORTS}/{name}")
    written = []
    for table in PARQUET_TABLES:
        link = out_dir / f"{table}.parquet"
        target = f"{PARQUET_CURRENT}/{table}.parquet"
        if not (link.is_symlink() and os.readlink(link) == target):
            _swap_link(link, target)  # once: a catalog exported by an older cratedig had plain files here
        written.append(link)
    keep = {name, Path(previous).name if previous else None}
    for old in exports.iterdir():
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return written
