"""``cratedig set`` (manual corrections) and ``cratedig crate ...`` (smart and static crates)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from flows.cli.app import CatalogOpt, JsonOpt, app, console, out
from flows.cli.support import catalog_connection, emit_rows, fail, output_path, resolve_one
from flows.cli.text import counted, literal

crate_app = typer.Typer(no_args_is_help=True, help="Smart crates (saved queries) and static crates (saved lists).")
app.add_typer(crate_app, name="crate")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "unknown"


@app.command("set")
def set_(
    query: str = typer.Argument(..., help="Track: path, track id, or title/artist substring."),
    bpm: Optional[float] = typer.Option(None, "--bpm", help="Tempo, BPM (30-300)."),
    key: Optional[str] = typer.Option(None, "--key", help="Key: 'A minor', 'Am', '8A' or '1m'."),
    beat_offset: Optional[float] = typer.Option(None, "--beat-offset", help="First downbeat, s."),
    beats_per_bar: Optional[int] = typer.Option(None, "--beats-per-bar", help="Beats in a bar (1-16)."),
    clear: bool = typer.Option(False, "--clear", help="Drop every correction of the track."),
    catalog: Path = CatalogOpt,
) -> None:
    """Correct a track's BPM, key, first downbeat or meter; kept over every re-analysis (--clear drops them)."""
    from tasks.catalog.corrections import (
        Correction,
        CorrectionError,
        NotAnalysedError,
        clear_corrections,
        set_correction,
    )
    from tasks.durable import stop_signals_deferred
    from tasks.similarity.index import apply_corrections, index_signature

    given = [v is not None for v in (bpm, key, beat_offset, beats_per_bar)]
    if clear and any(given):
        fail("--clear takes no values", 2)
    # A Ctrl-C (or SIGTERM) between the correction and the index would publish one without the other.
    with catalog_connection(catalog) as con, stop_signals_deferred():
        track_id = resolve_one(con, query)
        path = con.execute("SELECT path FROM tracks WHERE track_id = ?", [track_id]).fetchall()[0][0]
        index_before = index_signature(con)
        if clear:
            fields = clear_corrections(con, track_id, by=_user())
            apply_corrections(con, [track_id], signature_before=index_before)
            console.print(literal(f"cleared {', '.join(fields) or 'nothing'} on {track_id}: {path}"))
            return
        try:
            changed = set_correction(con, track_id, Correction(bpm, key, beat_offset, beats_per_bar), by=_user())
        except CorrectionError as exc:
            fail(str(exc), 1 if isinstance(exc, NotAnalysedError) else 2)
        apply_corrections(con, [track_id], signature_before=index_before)  # similar/mix filter on them
    table = Table(title=literal(f"track {track_id}: {path}"))
    for col in ("field", "was", "now"):
        table.add_column(col)
    for field, (old, new) in changed.items():
        table.add_row(field, literal("-" if old is None else str(old)), literal(str(new)))
    out.print(table)


@crate_app.command("add")
def crate_add(
    name: str = typer.Argument(..., help="Crate name."),
    wheres: List[str] = typer.Option(..., "--where", help="SQL condition over effective_tracks' columns (once)."),
    replace: bool = typer.Option(False, "--replace", help="Replace a crate of the same name."),
    catalog: Path = CatalogOpt,
) -> None:
    """Save a smart crate: a condition re-evaluated at each use, e.g. "bpm BETWEEN 122 AND 128"."""
    from tasks.catalog.crates import CrateError, crate_tracks, save_smart_crate

    if len(wheres) > 1:  # typer would keep only the last one
        fail(f"--where given {len(wheres)} times: join the conditions with AND in one --where", 2)
    where = wheres[0]
    with catalog_connection(catalog) as con:
        try:
            save_smart_crate(con, name, where, replace=replace)
            n = crate_tracks(con, name.strip()).height
        except CrateError as exc:
            fail(str(exc), 2)
    console.print(literal(f"crate {name.strip()!r}: {counted(n, 'track')} now"))


@crate_app.command("list")
def crate_list(catalog: Path = CatalogOpt, as_json: bool = JsonOpt) -> None:
    """Every crate, its kind, its condition and how many tracks it holds now."""
    from tasks.catalog.crates import list_crates

    with catalog_connection(catalog, read_only=True) as con:
        crates = list_crates(con)
    if as_json:
        typer.echo(json.dumps(crates.to_dicts(), default=str))
        return
    table = Table(title="crates")
    for col in ("name", "kind", "tracks", "where"):
        table.add_column(col, justify="right" if col == "tracks" else "left")
    for r in crates.iter_rows(named=True):
        n = "?" if r["tracks"] is None else str(r["tracks"])
        table.add_row(literal(r["name"]), r["kind"], n, literal(r["where_sql"] or ""))
    out.print(table)


@crate_app.command("show")
def crate_show(
    name: str = typer.Argument(..., help="Crate name."),
    as_json: bool = JsonOpt,
    m3u: Optional[Path] = typer.Option(
        None, "--m3u", parser=output_path, help="Write the crate as an M3U playlist (- for stdout)."
    ),
    catalog: Path = CatalogOpt,
) -> None:
    """The crate's tracks now, with their effective BPM and key."""
    from tasks.catalog.crates import CrateError, crate_tracks

    if as_json and m3u is not None:  # as mix and similar refuse it
        fail("--json and --m3u are exclusive: JSON on stdout, or a playlist", 2)
    with catalog_connection(catalog, read_only=True) as con:
        try:
            rows = crate_tracks(con, name)
        except CrateError as exc:
            fail(str(exc))
    if as_json:
        emit_rows(rows, as_json=True, m3u=None)
        return
    if emit_rows(rows, as_json=False, m3u=m3u):  # a playlist written: no table (it may be on stdout, as similar's)
        return
    table = Table(title=literal(f"crate {name} ({rows.height} tracks)"))
    for col in ("track", "file", "title", "artist", "bpm", "key", "camelot", "fix"):
        table.add_column(col, justify="right" if col in ("track", "bpm") else "left")
    for r in rows.iter_rows(named=True):
        table.add_row(
            str(r["track_id"]),
            literal(Path(r["path"]).name),
            literal(r["title"] or "-"),
            literal(r["artist"] or "-"),
            "-" if r["bpm"] is None else f"{r['bpm']:.2f}",
            r["key"] or "-",
            r["key_camelot"] or "-",
            "*" if r["corrected"] else "",
        )
    out.print(table)


@crate_app.command("rm")
def crate_rm(name: str = typer.Argument(..., help="Crate name."), catalog: Path = CatalogOpt) -> None:
    """Delete a crate (its tracks stay in the catalog)."""
    from tasks.catalog.crates import CrateError, remove_crate

    with catalog_connection(catalog) as con:
        try:
            remove_crate(con, name)
        except CrateError as exc:
            fail(str(exc))
    console.print(literal(f"removed crate {name!r}"))
