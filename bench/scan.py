"""Scan benchmark: a first scan and a no-op rescan of N small files (default 100,000).

    .venv/bin/python bench/scan.py [--files 100000] [--dir /tmp/cratedig-scan-bench]

The files are tiny (the walk and the diff are what is timed, not decoding). After the first scan the
catalog is filled with the files as if analysed, then the rescan runs the same code path a real
no-op run does: walk, read the catalog's tracks, diff, record last_seen, all in one transaction.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import polars as pl

from bench.results import recording
from tasks.catalog import store as catalog
from tasks.catalog.scan import plan_scan
from tasks.catalog.walk import walk_library
from tasks.constants import ANALYZER_VERSION


def make_tree(root: Path, n: int) -> None:
    per_dir = 200
    for i in range(n):
        d = root / f"artist {i // 2000:03d}" / f"album {i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06d} track.flac").write_bytes(b"fLaC" + i.to_bytes(8, "little"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cratedig-scan-bench"))
    args = ap.parse_args()
    library = args.dir / "library"
    if not library.exists() or sum(1 for _ in library.rglob("*.flac")) != args.files:
        shutil.rmtree(args.dir, ignore_errors=True)
        t = time.perf_counter()
        make_tree(library, args.files)
        print(f"generated {args.files} files in {time.perf_counter() - t:.1f} s")
    db = args.dir / "catalog.duckdb"
    db.unlink(missing_ok=True)
    con = catalog.open_catalog(db)

    t = time.perf_counter()
    walk = walk_library(library)
    t_walk = time.perf_counter() - t
    plan = plan_scan(walk.files, catalog.known_tracks(con), analyzer_version=ANALYZER_VERSION)
    t_first = time.perf_counter() - t
    print(
        f"first scan: {walk.files.height} files, walk {t_walk:.2f} s, walk + diff {t_first:.2f} s "
        f"({plan.counts()['new']} new)"
    )

    # Fill the catalog as a finished analysis would (tracks rows; features are not needed for the diff).
    now = catalog.now()
    tracks = plan.new.with_columns(
        pl.int_range(1, pl.len() + 1).alias("track_id"),
        pl.format("{}-x", "size_bytes").alias("fingerprint"),
        pl.lit("rejected").alias("status"),
        pl.lit(now).alias("first_seen"),
        pl.lit(now).alias("last_seen"),
    )
    con.register("_t", tracks.drop("track_id").with_columns(tracks["track_id"]))
    con.execute("INSERT INTO tracks BY NAME SELECT * FROM _t")

    t = time.perf_counter()
    walk = walk_library(library)
    t_walk = time.perf_counter() - t
    plan = plan_scan(walk.files, catalog.known_tracks(con), analyzer_version=ANALYZER_VERSION)
    catalog.apply_plan(con, plan, "bench")
    t_rescan = time.perf_counter() - t
    counts = plan.counts()
    assert counts["unchanged"] == args.files and plan.to_analyze.height == 0, counts
    print(
        f"no-op rescan: {args.files} files unchanged, walk {t_walk:.2f} s, total {t_rescan:.2f} s "
        f"(target <= 10 s for 100,000)"
    )
    con.close()


if __name__ == "__main__":
    with recording("scan", "Library scan and no-op rescan"):
        main()
