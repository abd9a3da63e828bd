"""``cratedig status`` and ``cratedig rejects``: what the catalog holds."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from flows.cli.app import CatalogOpt, JsonOpt, app, out
from flows.cli.text import literal


def _version_note(version: str) -> str:
    """What an older version's rows are worth now: which of them are current, when every version since changed
    only rows made at other ranges (:data:`tasks.constants.RANGE_ONLY_VERSIONS`) or only rows given no tempo as
    ``ARHYTHMIC`` (:data:`tasks.constants.ARHYTHMIC_ONLY_VERSIONS`)."""
    from tasks.catalog.scan import required_version
    from tasks.constants import ANALYZER_VERSION, BPM_RANGE

    if not (version.isdigit() and int(version) < ANALYZER_VERSION):
        return ""
    current = {
        (d, a): int(version) >= required_version(ANALYZER_VERSION, at_default=d, arhythmic=a)
        for d in (True, False)
        for a in (True, False)
    }
    if not any(current.values()):
        return ""
    where = "" if current[False, False] or current[False, True] else f" at {BPM_RANGE[0]:g}-{BPM_RANGE[1]:g} BPM"
    unless = "" if current[True, True] or current[False, True] else " unless ARHYTHMIC"
    return f" (current{where}{unless})"


@app.command()
def status(catalog: Path = CatalogOpt, as_json: bool = JsonOpt) -> None:
    """Print the catalog's counts: tracks by status, analyses by version, rejects by reason, corrections, crates,
    last run."""
    from tasks.catalog.runs import catalog_counts
    from tasks.catalog.writer import current_writer, describe_holder, open_reader

    con = open_reader(catalog)
    counts = catalog_counts(con)
    con.close()
    counts["writer"] = current_writer(catalog)
    if as_json:
        out.print_json(json.dumps(counts, default=str))
        return
    table = Table(title=literal(f"catalog {catalog}"), show_header=False)
    table.add_row("tracks", str(counts["tracks"]))
    for k, v in counts["by_status"].items():
        table.add_row(f"  {k}", str(v))
    for k, v in counts["features_by_version"].items():
        table.add_row(f"analyzer_version {k}", f"{v}{_version_note(k)}")
    for k, v in counts["features_by_bpm_range"].items():
        table.add_row(f"bpm range {k}", str(v))
    for k, v in counts["rejects_by_reason"].items():
        table.add_row(literal(f"rejects {k}"), str(v))
    table.add_row("corrected tracks", str(counts["corrected_tracks"]))
    table.add_row("crates", str(counts["crates"]))
    if counts["last_run"]:
        last = counts["last_run"]
        when = last["finished_at"] or f"started {last['started_at']}"
        stopped = last["status"] == "running" and not counts["writer"]  # killed: no process holds the catalog
        note = " (running, but no process holds the catalog: the next analyze records it interrupted)"
        note = note if stopped else f" ({last['status']})"
        table.add_row("last run", f"{when}{note}")
    if counts["writer"]:
        table.add_row("being written by", describe_holder(counts["writer"]))
        table.add_row("shown as published at", str(counts["writer"]["published_at"]))
    out.print(table)


@app.command()
def rejects(catalog: Path = CatalogOpt, as_json: bool = JsonOpt) -> None:
    """List every rejected or failed file with its reason code."""
    from tasks.catalog.writer import open_reader

    con = open_reader(catalog)
    rows = con.execute("SELECT reason, path, detail FROM rejects ORDER BY reason, path").fetchall()
    con.close()
    if as_json:
        out.print_json(json.dumps([dict(zip(("reason", "path", "detail"), r)) for r in rows]))
        return
    table = Table(title="rejects")
    for col in ("reason", "path", "detail"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(literal(v) for v in r))
    out.print(table)
