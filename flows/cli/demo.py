"""``cratedig demo``: build the demo library, analyse it, and show what cratedig knows about it, honestly.

The first screen puts the known tempo and key of every demo song beside the estimates and counts how many
are right; then a similarity query and a mix from the first song.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from flows.cli.analyze import analyze
from flows.cli.app import CatalogOpt, app, console, out
from flows.cli.text import literal
from flows.settings import DEFAULT_DEMO_LIBRARY
from tasks.constants import BPM_RANGE, LOCK_TIMEOUT_S
from tasks.features.workers import FILE_TIMEOUT_S

#: A tempo estimate is right within this many BPM of the known tempo (the README's ±0.5 BPM measure).
TEMPO_TOLERANCE_BPM = 0.5


@app.command()
def demo(
    library: Path = typer.Option(DEFAULT_DEMO_LIBRARY, "--library", help="Where to build it."),
    catalog: Path = CatalogOpt,
) -> None:
    """Build the synthesized demo library (if missing), analyse it, and compare the estimates with the truth."""
    from tasks.synth.demo import build_demo_library

    console.print(literal(f"building demo library in {library} ..."))
    build_demo_library(library)
    analyze(
        path=library,
        catalog=catalog,
        workers=None,
        batch_size=4,
        force=False,
        bpm_range=BPM_RANGE,
        file_timeout=FILE_TIMEOUT_S,
        lock_timeout=LOCK_TIMEOUT_S,
        dask_address=None,
        parquet_dir=None,  # every option given: a default left out would be typer's OptionInfo, not a value
        as_json=False,
    )
    show_demo(library, catalog)


def compare_to_truth(truth: list[dict[str, str]], estimates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per demo song: known and estimated tempo (BPM) and key, and whether each estimate is right.

    ``truth`` rows are ``ground_truth.csv``'s (file, bpm, key); ``estimates`` maps a file name to its features
    (``bpm``, ``key``, ``key_camelot``). Tempo is right within :data:`TEMPO_TOLERANCE_BPM`, ``octave`` when
    it is half or double the known one; key is right when its Camelot code is the known one's.
    """
    from tasks.features.key.names import camelot

    rows = []
    for t in truth:
        est = estimates.get(t["file"], {})
        known_bpm, bpm = float(t["bpm"]), est.get("bpm")
        tempo = "missing" if bpm is None else "right" if abs(bpm - known_bpm) <= TEMPO_TOLERANCE_BPM else "wrong"
        if tempo == "wrong" and any(abs(bpm - known_bpm * r) <= TEMPO_TOLERANCE_BPM * r for r in (0.5, 2.0)):
            tempo = "octave"
        rows.append(
            {
                "file": t["file"],
                "known_bpm": known_bpm,
                "bpm": bpm,
                "tempo": tempo,
                "known_key": t["key"],
                "key": est.get("key"),
                "key_right": est.get("key_camelot") == camelot(t["key"]),
            }
        )
    return rows


def show_demo(library: Path, catalog: Path) -> None:
    from tasks.catalog.writer import open_reader
    from tasks.similarity.mix import build_mix
    from tasks.similarity.search import similar_tracks
    from tasks.synth.demo import GROUND_TRUTH

    with (library / GROUND_TRUTH).open(encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    con = open_reader(catalog)
    try:
        found = con.execute("""
            SELECT t.path, f.bpm, f."key", f.key_camelot FROM tracks t JOIN features f USING (track_id)
            WHERE t.status = 'analyzed'""").fetchall()
        estimates = {Path(p).name: {"bpm": b, "key": k, "key_camelot": c} for p, b, k, c in found}
        rows = compare_to_truth(truth, estimates)
        table = Table(title="the demo songs: known tempo and key beside cratedig's estimates")
        for col in ("file", "known BPM", "estimated", "known key", "estimated key"):
            table.add_column(col, justify="right" if "BPM" in col or col == "estimated" else "left")
        mark = {"right": "", "octave": " (half/double)", "wrong": " ✗", "missing": " ✗"}
        for r in rows:
            table.add_row(
                literal(r["file"]),
                f"{r['known_bpm']:g}",
                ("-" if r["bpm"] is None else f"{r['bpm']:.2f}") + mark[r["tempo"]],
                r["known_key"],
                (r["key"] or "-") + ("" if r["key_right"] else " ✗"),
            )
        out.print(table)
        n = len(rows)
        tempo_ok = sum(r["tempo"] == "right" for r in rows)
        octave = sum(r["tempo"] == "octave" for r in rows)
        key_ok = sum(r["key_right"] for r in rows)
        out.print(
            f"tempo within {TEMPO_TOLERANCE_BPM} BPM: {tempo_ok} of {n} ({100 * tempo_ok / n:.0f} %)"
            + (f", half or double time: {octave}" if octave else "")
            + f"; key right: {key_ok} of {n} ({100 * key_ok / n:.0f} %)",
            markup=False,
            highlight=False,
        )
        if not any(r["bpm"] is not None for r in rows):
            return
        seed = str(library.resolve() / truth[0]["file"])
        neighbours = similar_tracks(con, seed, k=5, bpm_window=6, harmonic=True)
        table = Table(title=f"tracks most similar to {truth[0]['file']} (tempo within 6 %, harmonic keys)")
        for col in ("file", "distance", "bpm", "key"):
            table.add_column(col)
        for row in neighbours.iter_rows(named=True):
            table.add_row(
                literal(Path(row["path"]).name), f"{row['distance']:.3f}", f"{row['bpm'] or 0:.2f}", row["key"] or "-"
            )
        out.print(table)
        mix = build_mix(con, seed, 10)
        out.print(
            f"a mix of up to 10 tracks from {truth[0]['file']}: {mix.height} tracks; try "
            f"`cratedig mix {truth[0]['file'].rsplit('.', 1)[0]} --length 10 --catalog {catalog}`",
            markup=False,
            highlight=False,
        )
    finally:
        con.close()
