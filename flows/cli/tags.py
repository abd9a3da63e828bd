"""``cratedig tags write``: the catalog's effective BPM, key and ReplayGain into the files' tags."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import List

import typer
from rich.table import Table

from flows.cli.app import CatalogOpt, app, console, out
from flows.cli.support import catalog_connection, fail
from flows.cli.text import literal

tags_app = typer.Typer(no_args_is_help=True, help="Write the catalog's values into the files' tags.")
app.add_typer(tags_app, name="tags")


class KeyNotation(str, Enum):
    standard = "standard"
    camelot = "camelot"
    openkey = "openkey"


@tags_app.command("write")
def write(
    paths: List[Path] = typer.Argument(..., help="Files or folders (every analysed track under them)."),
    apply: bool = typer.Option(False, "--apply", help="Write; without it, list what would change."),
    fields: str = typer.Option("bpm,key", "--fields", help="Comma-separated: bpm, key, replaygain."),
    key_notation: KeyNotation = typer.Option(KeyNotation.standard, "--key-notation", help="How keys are written."),
    as_json: bool = typer.Option(False, "--json", help="Print the changes as JSON on stdout."),
    catalog: Path = CatalogOpt,
) -> None:
    """List (or with --apply write) BPM, key and ReplayGain tags from the catalog, corrections included.

    The audio is never touched: each file is tagged in a verified copy that replaces it; the catalog records the
    new file so the next analyze run does not re-analyse it. Exit 1 when a file could not be tagged or a path
    names no analysed track (the others are still tagged).
    """
    from tasks.audio.tag_write import TagWriteError
    from tasks.catalog.tag_sync import apply as apply_job
    from tasks.catalog.tag_sync import check_fields, planned_changes, tag_jobs
    from tasks.errors import CratedigError

    try:
        wanted = check_fields([f.strip() for f in fields.split(",") if f.strip()])
    except CratedigError as exc:
        fail(str(exc), 2)
    report, failed = [], 0
    with catalog_connection(catalog, read_only=not apply) as con:
        jobs, unknown = tag_jobs(con, [str(p) for p in paths], fields=wanted, key_notation=key_notation.value)
        for given in unknown:
            console.print(literal(f"not in the catalog (or not analysed): {given}", style="yellow"), soft_wrap=True)
        for done, job in enumerate(jobs):
            try:
                changes = apply_job(con, job) if apply else planned_changes(con, job)
            except (TagWriteError, OSError) as exc:
                failed += 1
                said = re.search(r"; not tagged(?: \(.*\))?$", str(exc))  # our own reasons end so: said once
                text = str(exc) if said else f"not tagged: {exc}"
                console.print(literal(text, style="red"), soft_wrap=True)
                continue
            except KeyboardInterrupt:  # each file is whole (tagged or as it was) and the catalog keeps what was done
                tagged = len({r["path"] for r in report})
                console.print(
                    f"interrupted: {tagged} of {len(jobs)} files {'tagged' if apply else 'listed'} "
                    f"({done} looked at); the same command goes on"
                )
                raise typer.Exit(130) from None
            report += [{"path": job.path, "tag": t, "was": old, "now": new} for t, old, new in changes]
    if as_json:
        typer.echo(json.dumps(report))
    elif report:
        table = Table(title="tags written" if apply else "tags that would change (dry run; --apply writes)")
        for col in ("file", "tag", "was", "now"):
            table.add_column(col)
        for r in report:
            table.add_row(literal(Path(r["path"]).name), r["tag"], literal(r["was"] or "-"), literal(r["now"]))
        out.print(table)
    if not as_json:
        n_files = len({r["path"] for r in report})
        console.print(f"{n_files} of {len(jobs)} files {'tagged' if apply else 'would change'}")
    if failed or unknown:  # a path that names no analysed track is a file not tagged, as in a script's typo
        raise typer.Exit(1)
