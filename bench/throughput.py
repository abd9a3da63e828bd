"""Throughput benchmark over a folder of real music (default: the shared corpus's real tracks).

    .venv/bin/python bench/throughput.py [FOLDER] [--limit N] [--essentia-files 5]

Prints, on this machine:
1. per-stage CPU seconds on one core (scan, decode, features, store) and x realtime per core;
2. the whole flow (Prefect, ephemeral server) with 1 worker and with N workers: tracks/min,
   x realtime, scaling, orchestration overhead (wall time not spent analysing), peak RSS per worker;
3. Essentia's MusicExtractor on the first few files, when ``essentia`` is importable.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flows  # noqa: E402,F401  (quiet offline Prefect settings)
from tasks import catalog  # noqa: E402
from tasks.decode import decode_audio  # noqa: E402
from tasks.features import analyze_audio, analyze_file  # noqa: E402
from tasks.scan import walk_library  # noqa: E402

CORPUS = Path(os.environ.get("CRATEDIG_CORPUS", Path.home() / ".cache/cratedig-corpus"))


def stage_breakdown(files: list[dict]) -> tuple[float, dict[str, float]]:
    """CPU seconds per stage over ``files`` in this process (one core)."""
    stages = {"decode": 0.0, "features": 0.0, "store": 0.0}
    audio_s = 0.0
    analyze_file(files[0]["path"], files[0]["size_bytes"], files[0]["mtime_ns"])  # warm-up: imports, filters
    results = []
    for f in files:
        t = time.process_time()
        audio = decode_audio(f["path"])
        stages["decode"] += time.process_time() - t
        audio_s += audio.duration_s
        t = time.process_time()
        analyze_audio(audio)
        stages["features"] += time.process_time() - t
        results.append(analyze_file(f["path"], f["size_bytes"], f["mtime_ns"]))
    with tempfile.TemporaryDirectory() as tmp:
        con = catalog.open_catalog(Path(tmp) / "c.duckdb")
        t = time.process_time()
        for i in range(0, len(results), 16):
            catalog.store_results(con, results[i : i + 16], "bench")
        stages["store"] = time.process_time() - t
        con.close()
    return audio_s, stages


def run_flow(folder: Path, workers: int) -> tuple[dict, float]:
    from flows.analyze import analyze_library

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = analyze_library(str(folder), catalog_path=str(Path(tmp) / "c.duckdb"), workers=workers,
                                  batch_size=8)
        return summary, time.perf_counter() - t


def essentia_seconds(files: list[dict]) -> tuple[float, float] | None:
    try:
        import essentia.standard as es
    except ImportError:
        return None
    cpu, audio = 0.0, 0.0
    for f in files:
        t = time.process_time()
        features, _ = es.MusicExtractor(lowlevelStats=["mean", "stdev"], rhythmStats=["mean", "stdev"],
                                        tonalStats=["mean", "stdev"])(f["path"])
        cpu += time.process_time() - t
        audio += features["metadata.audio_properties.length"]
    return cpu, audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=CORPUS / "real")
    ap.add_argument("--limit", type=int, default=40, help="files for the per-stage breakdown")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--essentia-files", type=int, default=5)
    args = ap.parse_args()

    t = time.perf_counter()
    walk = walk_library(args.folder)
    scan_s = time.perf_counter() - t
    files = walk.files.head(args.limit).to_dicts()
    print(f"folder: {args.folder} ({walk.files.height} audio files; scan {scan_s:.3f} s)")

    audio_s, stages = stage_breakdown(files)
    cpu = sum(stages.values())
    print(f"\n1. one core, {len(files)} files, {audio_s / 60:.1f} min of audio:")
    for name, s in stages.items():
        print(f"   {name:9s} {s:7.2f} s CPU  {s / (audio_s / 60):.3f} s per minute of audio")
    print(f"   total     {cpu:7.2f} s CPU  {cpu / (audio_s / 60):.3f} s/min  = {audio_s / cpu:.0f}x realtime per core")

    print(f"\n2. the analyze_library flow over all {walk.files.height} files:")
    total_audio = None
    walls = {}
    for workers in sorted({1, args.workers}):
        summary, wall = run_flow(args.folder, workers)
        walls[workers] = wall
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if total_audio is None:
            total_audio = sum(decode_audio(f["path"]).duration_s for f in files) * walk.files.height / len(files)
        print(f"   {workers} worker(s): {summary['analyzed']} analysed in {wall:.1f} s wall "
              f"({summary['tracks_per_min']} tracks/min incl. server start; flow body {summary['seconds']} s), "
              f"~{total_audio / summary['seconds'] / workers:.0f}x realtime per core, "
              f"peak worker RSS {rss_mb:.0f} MB")
        analysing = cpu / len(files) * walk.files.height / workers
        print(f"      orchestration (flow body - analysis CPU / workers): "
              f"{max(0.0, summary['seconds'] - analysing):.1f} s "
              f"({100 * max(0.0, summary['seconds'] - analysing) / summary['seconds']:.0f}% of the flow body)")
    if len(walls) == 2:
        print(f"   scaling {args.workers} workers vs 1: {walls[1] / walls[args.workers]:.2f}x")

    ess = essentia_seconds(files[: args.essentia_files])
    if ess is None:
        print("\n3. essentia not installed (pip install '.[bench]' to compare)")
    else:
        e_cpu, e_audio = ess
        ours = cpu / audio_s
        print(f"\n3. Essentia MusicExtractor on {args.essentia_files} files: {e_cpu / (e_audio / 60):.2f} s CPU per "
              f"minute of audio ({e_audio / e_cpu:.0f}x realtime); cratedig is {e_cpu / e_audio / ours:.1f}x faster")


if __name__ == "__main__":
    main()
