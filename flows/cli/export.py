"""``cratedig export rekordbox|traktor``: the catalog (effective values) and its crates for DJ software."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from flows.cli.app import CatalogOpt, app, console
from flows.cli.support import catalog_connection, fail, output_path
from flows.cli.text import counted, literal

export_app = typer.Typer(no_args_is_help=True, help="Write the catalog for DJ software (rekordbox XML, Traktor NML).")
app.add_typer(export_app, name="export")

CrateOpt = typer.Option(None, "--crate", help="Only this crate (repeat for more); default: every track and crate.")


def _is_stderr(path: Path) -> bool:
    """Whether ``path`` names the file stderr is open on (``/dev/stderr``, or ``/dev/stdout`` with ``2>&1``)."""
    try:
        named, stderr = os.stat(path), os.fstat(2)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (stderr.st_dev, stderr.st_ino)


def _report(selection, out_path: Path) -> None:
    if _is_stderr(out_path):  # the report would land inside the file it reports on
        return
    console.print(
        literal(
            f"wrote {counted(selection.tracks.height, 'track')}, {counted(len(selection.playlists), 'playlist')} "
            f"to {out_path}"
        )
    )
    for path, why in selection.skipped:
        console.print(literal(f"  skipped {path}: {why}"), soft_wrap=True)


def _export(catalog: Path, run) -> None:
    from tasks.catalog.crates import CrateError

    with catalog_connection(catalog, read_only=True) as con:
        try:
            return run(con)
        except CrateError as exc:
            fail(str(exc))


@export_app.command("rekordbox")
def rekordbox(
    out_path: Path = typer.Argument(
        ..., metavar="OUT.xml", parser=output_path, help="rekordbox XML file to write (- for stdout)."
    ),
    crate: Optional[List[str]] = CrateOpt,
    catalog: Path = CatalogOpt,
) -> None:
    """rekordbox XML: collection with beat grid and a memory cue at the first downbeat, one playlist per crate."""
    from tasks.export.rekordbox import export_rekordbox

    _report(_export(catalog, lambda con: export_rekordbox(con, out_path, crate or None)), out_path)


@export_app.command("traktor")
def traktor(
    out_path: Path = typer.Argument(
        ..., metavar="OUT.nml", parser=output_path, help="Traktor NML file to write (- for stdout)."
    ),
    crate: Optional[List[str]] = CrateOpt,
    volume: str = typer.Option(
        "Macintosh HD",
        "--volume",
        help="Name of the disk the music is on, as Traktor sees it (macOS; C: etc. "
        "on Windows paths and /Volumes/NAME are recognised).",
    ),
    catalog: Path = CatalogOpt,
) -> None:
    """Traktor NML: collection with tempo, key, loudness and a grid marker at the first downbeat, one playlist per
    crate."""
    from tasks.export.traktor import export_traktor

    _report(_export(catalog, lambda con: export_traktor(con, out_path, crate or None, volume=volume)), out_path)
