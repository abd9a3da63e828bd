"""Throughput benchmark over a folder of real music (default: the shared corpus's real tracks).

    .venv/bin/python bench/throughput.py [FOLDER] [--limit N] [--flow-tracks 1000] [--essentia-files 5]

Prints, on this machine:
1. per-stage CPU seconds on one core (scan, decode, analysis, store) and x realtime per core; "decode" is
   the streaming decode + down-mix + resample the analysis runs, "analysis" the rest of ``analyze_file``
   (tags, fingerprint, STFT, every feature, loudness);
2. the whole flow (Prefect, ephemeral server) over FOLDER with 1 worker and with N workers: tracks/min,
   x realtime per core, scaling (flow body wall time, 1 vs N), peak RSS per worker;
3. orchestration overhead on ``--flow-tracks`` tracks (a library of hard links cycling through FOLDER's
   files, so every track is real music): the share of the flow body's wall time not covered by the
   workers' analysis CPU, ``1 - sum(analysis_ms) / workers / flow body``;
4. Essentia's MusicExtractor and ``analyze_file`` on the first few files, timed in turn, when ``essentia``
   is importable.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import flows  # noqa: E402,F401  (quiet offline Prefect settings)
from bench.results import recording
from tasks.audio.decode import decode_with_fallback
from tasks.audio.resample import MonoResampler
from tasks.catalog import store as catalog
from tasks.catalog.walk import walk_library
from tasks.errors import RejectError
from tasks.features.analyze import analyze_file

CORPUS = Path(os.environ.get("CRATEDIG_CORPUS", Path.home() / ".cache/cratedig-corpus"))


def _decode_only(path: str) -> float:
    """Stream-decode, down-mix and resample ``path`` as the analysis does; returns its duration, s."""

    def consume(stream) -> float:
        to_mono = MonoResampler(stream.sr)
        n = 0
        for x in stream.blocks:
            n += x.shape[1]
            to_mono(x)
        to_mono.flush()
        return n / stream.sr

    try:
        return decode_with_fallback(path, consume)
    except RejectError:
        return 0.0


def stage_breakdown(files: list[dict]) -> tuple[float, dict[str, float]]:
    """CPU seconds per stage over ``files`` in this process (one core)."""
    stages = {"decode": 0.0, "analysis": 0.0, "store": 0.0}
    audio_s = 0.0
    analyze_file(files[0]["path"], files[0]["size_bytes"], files[0]["mtime_ns"])  # warm-up: imports, filters
    results = []
    for f in files:
        t = time.process_time()
        audio_s += _decode_only(f["path"])
        decode = time.process_time() - t
        t = time.process_time()
        results.append(analyze_file(f["path"], f["size_bytes"], f["mtime_ns"]))
        stages["decode"] += decode
        stages["analysis"] += max(0.0, time.process_time() - t - decode)
    with tempfile.TemporaryDirectory() as tmp:
        con = catalog.open_catalog(Path(tmp) / "c.duckdb")
        t = time.process_time()
        for i in range(0, len(results), 16):
            catalog.store_results(con, results[i : i + 16], "bench")
        stages["store"] = time.process_time() - t
        con.close()
    return audio_s, stages


def run_flow(folder: Path, workers: int) -> tuple[dict, float, float]:
    """Run ``analyze_library`` over ``folder``; returns its summary (plus ``flow_cpu_s``, this process's CPU
    during the run: Prefect, scan, store, export), the sum of the per-file analysis CPU (``features.analysis_ms``,
    s) and the audio analysed (s)."""
    from flows.analyze import analyze_library

    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        summary = analyze_library(str(folder), catalog_path=str(Path(tmp) / "c.duckdb"), workers=workers)
        summary["flow_cpu_s"] = time.process_time() - cpu
        con = catalog.open_catalog(Path(tmp) / "c.duckdb", read_only=True)
        ms, audio = con.sql(
            "SELECT sum(f.analysis_ms), sum(t.duration_s) FROM features f JOIN tracks t USING (track_id)"
        ).fetchall()[0]
        con.close()
        return summary, (ms or 0.0) / 1000.0, audio or 0.0


def hardlink_library(folder: Path, n: int, out: Path) -> Path:
    """``n`` hard links cycling through ``folder``'s audio files, under ``out`` (same file system)."""
    files = walk_library(folder).files["path"].to_list()
    for i in range(n):
        src = Path(files[i % len(files)])
        dst = out / f"{i // 100:03d}" / f"{i:05d}{src.suffix}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
    return out


def run_plain_pool(folder: Path, workers: int) -> float:
    """Wall seconds for the same warm worker pool to analyse ``folder``'s files with no Prefect, no catalog:
    the flow body minus this is what orchestration (Prefect, scan, store, export) costs."""
    from tasks.features.workers import AnalysisPool

    items = walk_library(folder).files.to_dicts()
    t = time.perf_counter()
    with AnalysisPool(workers) as pool:
        pool.analyze_batch(items)
    return time.perf_counter() - t


def report_flow(label: str, summary: dict, analysis_cpu: float, audio: float, workers: int) -> float:
    """Print one flow run; returns the orchestration overhead as a share of the flow body."""
    body = summary["seconds"]
    overhead = max(0.0, 1.0 - analysis_cpu / workers / body)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"   {label}: {summary['analyzed']} analysed, {audio / 60:.0f} min of audio, flow body {body:.1f} s "
        f"({60 * summary['analyzed'] / body:.0f} tracks/min, {audio / body / workers:.0f}x realtime per core); "
        f"analysis CPU {analysis_cpu:.1f} s; flow process CPU {summary['flow_cpu_s']:.1f} s; "
        f"orchestration {100 * overhead:.1f}% of the flow body; "
        f"peak worker RSS so far {rss_mb:.0f} MB"
    )
    return overhead


def essentia_seconds(files: list[dict]) -> tuple[float, float, float] | None:
    """CPU s of Essentia's ``MusicExtractor`` and of ``analyze_file`` on ``files``, timed in turn file by file
    (this host's speed drifts over minutes: pairs keep the ratio honest), and the audio's length in s."""
    try:
        import essentia.standard as es
    except ImportError:
        return None
    theirs, ours, audio = 0.0, 0.0, 0.0
    for f in files:
        t = time.process_time()
        features, _ = es.MusicExtractor(
            lowlevelStats=["mean", "stdev"], rhythmStats=["mean", "stdev"], tonalStats=["mean", "stdev"]
        )(f["path"])
        theirs += time.process_time() - t
        t = time.process_time()
        analyze_file(f["path"], f["size_bytes"], f["mtime_ns"])
        ours += time.process_time() - t
        audio += features["metadata.audio_properties.length"]
    return theirs, ours, audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=CORPUS / "real")
    ap.add_argument("--limit", type=int, default=40, help="files for the per-stage breakdown")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--essentia-files", type=int, default=10)
    ap.add_argument("--flow-tracks", type=int, default=1000, help="tracks for the orchestration run (0: skip)")
    ap.add_argument(
        "--plain-pool",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the --flow-tracks files through the bare worker pool",
    )
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

    print(f"\n2. the analyze_library flow over all {walk.files.height} files of {args.folder}:")
    bodies = {}
    for workers in sorted({1, args.workers}):
        summary, analysis_cpu, audio = run_flow(args.folder, workers)
        bodies[workers] = summary["seconds"]
        report_flow(f"{workers} worker(s)", summary, analysis_cpu, audio, workers)
    if len(bodies) == 2:
        print(f"   scaling {args.workers} workers vs 1 (flow body): {bodies[1] / bodies[args.workers]:.2f}x")

    if args.flow_tracks:
        print(
            f"\n3. orchestration on {args.flow_tracks} tracks (hard links cycling through the folder), "
            f"{args.workers} workers:"
        )
        with tempfile.TemporaryDirectory(dir=args.folder.parent) as tmp:
            library = hardlink_library(args.folder, args.flow_tracks, Path(tmp) / "library")
            summary, analysis_cpu, audio = run_flow(library, args.workers)
            report_flow(f"{args.flow_tracks} tracks", summary, analysis_cpu, audio, args.workers)
            if args.plain_pool:
                plain = run_plain_pool(library, args.workers)
                print(
                    f"   the same files through the same {args.workers}-worker pool without Prefect or the catalog: "
                    f"{plain:.1f} s wall; Prefect + scan + store + export cost "
                    f"{100 * (1 - plain / summary['seconds']):.1f}% of the flow body"
                )

    ess = essentia_seconds(files[: args.essentia_files]) if args.essentia_files else None
    if ess is None:
        print("\n4. Essentia skipped (--essentia-files 0, or not installed: pip install '.[bench]')")
    else:
        theirs, ours, e_audio = ess
        print(
            f"\n4. Essentia MusicExtractor on {args.essentia_files} files: {theirs / (e_audio / 60):.2f} s CPU per "
            f"minute of audio ({e_audio / theirs:.0f}x realtime); analyze_file on the same files, timed in turn: "
            f"{ours / (e_audio / 60):.3f} s/min, {theirs / ours:.1f}x less CPU"
        )


if __name__ == "__main__":
    with recording("throughput", "Throughput"):
        main()
