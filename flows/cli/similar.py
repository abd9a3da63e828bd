"""``cratedig similar`` and ``cratedig mix``: similarity from the command line.

Queries are answered by :mod:`tasks.similarity.index`
over a read-only catalog connection (waiting for the lock like every other command).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.table import Table

from flows.cli.app import CatalogOpt, app, console, out
from flows.cli.support import emit_rows, fail, fail_lines, finite_nonnegative, output_path
from flows.cli.text import literal


class Metric(str, Enum):
    cosine = "cosine"
    euclidean = "euclidean"


def _open(catalog: Path) -> Any:
    from tasks.catalog.writer import open_reader

    return open_reader(catalog)


def _run(catalog: Path, query: Callable[[Any], Any]) -> Any:
    """Run ``query(con)``; user errors become a message and an exit code (2 = ambiguous query, 1 = other).

    A catalog of an older schema (made before the curation view or the similarity macros) is opened writable
    once, which migrates it and builds its index. One whose first run is under way, or was stopped, is searched
    as it is (:func:`tasks.similarity.index.load_index`): a reader never waits for a run's lock.
    """
    import duckdb

    from tasks.catalog.writer import CatalogWriter
    from tasks.similarity.index import refresh_similarity_index
    from tasks.similarity.query import AmbiguousQueryError, SimilarityError

    con = _open(catalog)
    try:
        try:
            return query(con)
        except duckdb.CatalogException:
            con.close()
            with CatalogWriter(catalog, holder={"command": "similar (building the index)"}) as writer:
                refresh_similarity_index(writer.con)
            con = _open(catalog)
            return query(con)
    except AmbiguousQueryError as exc:
        fail_lines(exc.lines, 2)
    except SimilarityError as exc:
        fail(str(exc))
    finally:
        con.close()


def describe_seeds(con: Any, queries: list[str]) -> str:
    """The tracks the queries resolved to, as a header names them: ``Demo 07 - cratedig demo (demo_07.flac, id 7)``."""
    from tasks.similarity.query import resolve_query

    names = []
    for q in queries:
        track_id = resolve_query(con, q)[0]
        title, artist, path = con.execute(
            "SELECT title, artist, path FROM tracks WHERE track_id = ?", [track_id]
        ).fetchall()[0]
        who = " - ".join(x for x in (title, artist) if x) or Path(path).name
        names.append(f"{who} ({Path(path).name}, id {track_id})")
    return " + ".join(names)


def seeds_without_tempo(con: Any, queries: list[str]) -> list[str]:
    """The file names of the tracks the queries resolved to that have no tempo (``ARHYTHMIC`` and the like)."""
    from tasks.similarity.query import resolve_query

    ids = [resolve_query(con, q)[0] for q in queries]
    rows = con.execute("SELECT path FROM effective_tracks WHERE list_contains(?, track_id) AND bpm IS NULL", [ids])
    return [Path(p).name for (p,) in rows.fetchall()]


def _fmt_bpm(v: float | None) -> str:
    return f"{v:.2f}" if v is not None else "-"


SaveCrateOpt = typer.Option(None, "--save-crate", help="Also save the tracks, in order, as a static crate NAME.")


def _save_crate(catalog: Path, name: Optional[str], ids: list[int]) -> None:
    """Save ``ids`` in order as the static crate ``name`` (replacing one of that name)."""
    if name is None:
        return

    from flows.cli.support import catalog_connection, fail
    from tasks.catalog.crates import CrateError, save_static_crate

    with catalog_connection(catalog) as con:
        try:
            n = save_static_crate(con, name, ids, replace=True)
        except CrateError as exc:
            fail(str(exc), 2)
    console.print(literal(f"saved crate {name.strip()!r} ({n} tracks)"))


def _emit(rows: Any, *, title: str, as_json: bool, m3u: Optional[Path], position: bool = False) -> None:
    if emit_rows(rows, as_json=as_json, m3u=m3u):
        return
    table = Table(title=literal(title))
    cols = (["#"] if position else []) + ["track", "title", "artist", "bpm", "key", "camelot", "distance"]
    for col in cols:
        table.add_column(col, justify="right" if col in ("#", "bpm", "distance") else "left")
    for r in rows.iter_rows(named=True):
        table.add_row(
            *([str(r["position"])] if position else []),
            literal(Path(r["path"]).name),
            literal(r["title"] or "-"),
            literal(r["artist"] or "-"),
            _fmt_bpm(r["bpm"]),
            literal(r["key"] or "-"),
            literal(r["key_camelot"] or "-"),
            f"{r['distance']:.4f}",
        )
    out.print(table)


MetricOpt = typer.Option(Metric.cosine, "--metric", help="Distance.")
JsonRowsOpt = typer.Option(False, "--json", help="Print JSON rows on stdout.")
M3uOpt = typer.Option(None, "--m3u", parser=output_path, help="Write the tracks as an M3U playlist (- for stdout).")


def _one_output(as_json: bool, m3u: Path | None) -> None:
    if as_json and m3u is not None:
        fail("--json and --m3u are exclusive: JSON on stdout, or a playlist", 2)


@app.command()
def similar(
    query: List[str] = typer.Argument(..., help="Path, track id, or title/artist substring; several = centroid."),
    k: int = typer.Option(10, "-k", "--k", min=1, help="How many tracks."),
    bpm_window: Optional[float] = typer.Option(
        None,
        "--bpm-window",
        callback=finite_nonnegative,
        help="Only tempi within this many % of the seed's (half/double too).",
    ),
    harmonic: bool = typer.Option(False, "--harmonic", help="Only Camelot-compatible keys."),
    metric: Metric = MetricOpt,
    keep_duplicates: bool = typer.Option(
        False, "--keep-duplicates", help="Keep copies of the seed (same fingerprint or title/artist)."
    ),
    as_json: bool = JsonRowsOpt,
    m3u: Optional[Path] = M3uOpt,
    save_crate: Optional[str] = SaveCrateOpt,
    catalog: Path = CatalogOpt,
) -> None:
    """Tracks that sound like QUERY, nearest first."""
    from tasks.similarity.search import similar_tracks

    _one_output(as_json, m3u)
    seeds: Any = query if len(query) > 1 else query[0]
    rows, names, no_tempo = _run(
        catalog,
        lambda con: (
            similar_tracks(
                con,
                seeds,
                k,
                metric=metric.value,
                bpm_window=bpm_window,
                harmonic=harmonic,
                exclude_duplicates=not keep_duplicates,
            ),
            describe_seeds(con, query),
            seeds_without_tempo(con, query) if bpm_window is not None else [],
        ),
    )
    if not rows.height and not as_json and no_tempo:
        console.print(
            literal(f"{', '.join(no_tempo)}: no tempo, so --bpm-window matches no track (drop --bpm-window)"),
            style="yellow",
        )
    elif not rows.height and not as_json and (bpm_window is not None or harmonic):
        console.print(
            "no track passes the filters (--bpm-window / --harmonic): try a wider --bpm-window or drop --harmonic",
            style="yellow",
        )
    _save_crate(catalog, save_crate, rows["track_id"].to_list())
    _emit(rows, title=f"similar to {names}", as_json=as_json, m3u=m3u)


@app.command()
def mix(
    seed: str = typer.Argument(..., help="First track: path, track id, or title/artist substring."),
    length: int = typer.Option(20, "--length", min=1, help="Tracks in the set, seed included."),
    bpm_window: float = typer.Option(
        6.0,
        "--bpm-window",
        callback=finite_nonnegative,
        help="Tempo step allowed between neighbours, % (half/double too).",
    ),
    harmonic: bool = typer.Option(True, "--harmonic/--no-harmonic", help="Camelot-compatible steps only."),
    metric: Metric = MetricOpt,
    as_json: bool = JsonRowsOpt,
    m3u: Optional[Path] = M3uOpt,
    save_crate: Optional[str] = SaveCrateOpt,
    catalog: Path = CatalogOpt,
) -> None:
    """A DJ set from SEED: each next track similar, tempo- and key-compatible, none repeated."""
    from tasks.similarity.mix import build_mix

    _one_output(as_json, m3u)

    def build(con: Any) -> tuple[Any, str, list[str], int | None]:
        rows = build_mix(con, seed, length, bpm_window=bpm_window, harmonic=harmonic, metric=metric.value)
        # Short of length: would any tempo step and any key have gone further, or is the catalog used up? (A track
        # without a tempo follows no track: an infinite window still leaves it out.)
        wide = dict(bpm_window=float("inf"), harmonic=False)
        most = None if rows.height == length else build_mix(con, seed, length, **wide).height
        return rows, describe_seeds(con, [seed]), seeds_without_tempo(con, [seed]), most

    rows, name, no_tempo, most = _run(catalog, build)
    short = f"only {rows.height} of {length} tracks: "
    if rows.height < length and no_tempo:
        console.print(
            literal(f"{short}{no_tempo[0]} has no tempo, so no track follows it (pick a seed with one)", "yellow")
        )
    elif most is not None and most <= rows.height:
        console.print(
            f"[yellow]{short}the catalog has no other track with a tempo to add (copies of a track in the set are "
            "skipped)[/yellow]"
        )
    elif rows.height < length:
        console.print(f"[yellow]{short}no compatible track left (try a wider --bpm-window or --no-harmonic)[/yellow]")
    _save_crate(catalog, save_crate, rows["track_id"].to_list())
    _emit(rows, title=f"mix from {name}", as_json=as_json, m3u=m3u, position=True)
