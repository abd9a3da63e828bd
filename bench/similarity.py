"""Similarity benchmark: top-10 latency at 10k / 100k / 1M tracks, and precision@5 on song families.

    .venv/bin/python bench/similarity.py                       # both parts, default sizes
    .venv/bin/python bench/similarity.py --sizes 10000,100000  # latency only at these sizes
    .venv/bin/python bench/similarity.py --no-latency --families 12 --variants 6

Latency: a real catalog file (``tasks.catalog.store.open_catalog``) filled with synthetic tracks whose
embeddings (the real dimension and groups of ``tasks.features.embedding``) are drawn around a few hundred
cluster centres, then ``refresh_similarity_index``. Exact search only. Measured per size: the index
refresh, the first query of a process (loads the index), then the median and p95 over many random
seeds of ``similar_tracks(k=10)`` (plain, and with ``bpm_window=6, harmonic=True``), of the SQL
macro, and of the two raw scans (numpy matrix-vector product vs DuckDB ``array_cosine_distance``).

Quality: ``F`` families of songs (same style, instrumentation, tempo and key), ``V`` renders each
with a different seed (new chord progression, melody, drum kit, reverb) plus small swing/noise/length
variations, analysed with ``tasks.features.analyze.analyze_file`` and stored with ``store_results``.
precision@5 = mean share of same-family tracks among each song's 5 nearest neighbours (target >= 0.8
for cosine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.results import recording
from tasks.catalog.store import open_catalog, store_results
from tasks.similarity.index import refresh_similarity_index
from tasks.similarity.search import similar_tracks


def embedding_dim() -> int:
    from tasks.features.embedding import EMBEDDING_GROUPS

    return max(sl.stop for sl in EMBEDDING_GROUPS.values())


def fill_synthetic(con, n: int, *, dim: int, seed: int = 0, chunk: int = 250_000) -> None:
    """Insert ``n`` analysed tracks with clustered synthetic embeddings, BPMs and Camelot keys."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, n // 3000), dim)) * 2.0
    scales = rng.uniform(0.3, 3.0, dim)  # features live on very different scales, as real ones do
    offset = 0
    while offset < n:
        m = min(chunk, n - offset)
        ids = np.arange(offset + 1, offset + m + 1)
        emb = ((centres[rng.integers(0, len(centres), m)] + rng.standard_normal((m, dim))) * scales).astype(np.float32)
        t = pa.table(
            {
                "track_id": ids,
                "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim),
                "bpm": np.round(rng.uniform(70, 180, m), 2),
                "cam": [f"{a}{b}" for a, b in zip(rng.integers(1, 13, m), rng.choice(["A", "B"], m))],
            }
        )
        con.register("_syn", t)
        con.execute("""INSERT INTO tracks (track_id, path, size_bytes, mtime_ns, fingerprint, title, artist,
                                           duration_s, status, first_seen, last_seen)
                       SELECT track_id, '/library/artist ' || (track_id % 5000) || '/track ' || track_id || '.flac',
                              8000000 + track_id, 0, 'fp' || track_id, 'Track ' || track_id,
                              'Artist ' || (track_id % 5000), 200.0, 'analyzed', now(), now() FROM _syn""")
        con.execute("""INSERT INTO features (track_id, analyzer_version, bpm, bpm_confidence, "key", key_camelot,
                                             key_confidence, tuning_cents, embedding, embedding_version, analyzed_at)
                       SELECT track_id, 1, bpm, 0.9, NULL, cam, 0.8, 0.0, emb::FLOAT[], 1, now() FROM _syn""")
        con.unregister("_syn")
        offset += m


def _ms(f, repeat: int) -> tuple[float, float]:
    """(median, p95) wall time of ``f(i)`` over ``repeat`` calls, ms."""
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        f(i)
        times.append((time.perf_counter() - t) * 1000.0)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def latency(n: int, *, queries: int, workdir: Path) -> dict:
    import tasks.similarity.index as sim

    path = workdir / f"catalog_{n}.duckdb"
    path.unlink(missing_ok=True)
    con = open_catalog(path)
    dim = embedding_dim()
    t = time.perf_counter()
    fill_synthetic(con, n, dim=dim)
    fill_s = time.perf_counter() - t
    t = time.perf_counter()
    refresh_similarity_index(con)
    refresh_s = time.perf_counter() - t
    con.close()
    sim._CACHE.clear()
    con = open_catalog(path, read_only=True)
    rng = np.random.default_rng(1)
    seeds = [int(s) for s in rng.integers(1, n + 1, queries)]
    t = time.perf_counter()
    similar_tracks(con, seeds[0], 10)
    first_ms = (time.perf_counter() - t) * 1000.0
    cpu = time.process_time()
    plain = _ms(lambda i: similar_tracks(con, seeds[i], 10), queries)
    cpu_ms = (time.process_time() - cpu) * 1000.0 / queries  # all threads: insensitive to other load
    filtered = _ms(lambda i: similar_tracks(con, seeds[i], 10, bpm_window=6, harmonic=True), queries)
    euclid = _ms(lambda i: similar_tracks(con, seeds[i], 10, metric="euclidean"), queries)
    n_sql = max(3, queries // 10)
    sql = _ms(lambda i: con.execute("SELECT * FROM similar_tracks(?, 10)", [str(seeds[i])]).fetchall(), n_sql)
    index = sim.load_index(con)
    q = index.vt[:, 0].copy()
    numpy_scan = _ms(lambda i: np.argpartition(q @ index.vt, 10)[:10], queries)
    duck_scan = _ms(
        lambda i: con.execute(
            f"SELECT track_id FROM similarity_index ORDER BY array_cosine_distance(vec, ?::FLOAT[{dim}]) LIMIT 10",
            [q.tolist()],
        ).fetchall(),
        n_sql,
    )
    con.close()
    size_mb = path.stat().st_size / 1e6
    path.unlink(missing_ok=True)
    return {
        "tracks": n,
        "dim": dim,
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "fill_s": round(fill_s, 1),
        "refresh_s": round(refresh_s, 2),
        "python_top10_cpu_ms": round(cpu_ms, 1),
        "catalog_mb": round(size_mb),
        "first_query_ms": round(first_ms, 1),
        "python_top10_ms": [round(v, 1) for v in plain],
        "python_top10_filtered_ms": [round(v, 1) for v in filtered],
        "python_top10_euclidean_ms": [round(v, 1) for v in euclid],
        "sql_macro_top10_ms": [round(v, 1) for v in sql],
        "raw_numpy_scan_ms": [round(v, 1) for v in numpy_scan],
        "raw_duckdb_scan_ms": [round(v, 1) for v in duck_scan],
    }


# ---------------------------------------------------------------- quality


def family_specs(families: int, variants: int, *, duration_s: float = 20.0, seed: int = 7) -> list[tuple[int, object]]:
    """``(family, SongSpec)`` pairs: each family fixes style, timbre, tempo and key; variants differ
    in seed (progression, melody, drum kit, reverb), and some in swing, noise and length."""
    from tasks.synth.songs import SongSpec
    from tasks.synth.styles import STYLES, TIMBRES

    rng = np.random.default_rng(seed)
    styles = list(STYLES)
    out = []
    for f in range(families):
        style = styles[f % len(styles)]
        lo, hi = STYLES[style].tempo
        bpm = float(np.round(rng.uniform(max(lo, 70), min(hi, 180)), 1))
        timbre = TIMBRES[(f * 3 + f // len(styles)) % len(TIMBRES)]
        tonic, mode = int(rng.integers(12)), ("major", "minor")[f % 2]
        for v in range(variants):
            out.append(
                (
                    f,
                    SongSpec(
                        bpm=bpm,
                        tonic=tonic,
                        mode=mode,
                        style=style,
                        timbre=timbre,
                        duration_s=duration_s + float(rng.uniform(-3, 3)),
                        swing=float(rng.choice([0.0, 0.0, 0.1])),
                        noise_db=float(rng.choice([40.0, 30.0, 20.0])) if v % 2 else None,
                        seed=seed * 1000 + f * 100 + v,
                    ),
                )
            )
    return out


def _render_and_analyse(job: tuple[str, object]) -> dict:
    from tasks.constants import SR
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio
    from tasks.synth.songs import render_song

    path, spec = job
    write_audio(path, render_song(spec, sr=SR), SR)
    st = os.stat(path)
    return analyze_file(path, st.st_size, st.st_mtime_ns)


def quality(families: int, variants: int, *, workdir: Path, workers: int) -> dict:
    pairs = family_specs(families, variants)
    jobs = [(str(workdir / f"fam{f:02d}_{i:03d}.flac"), spec) for i, (f, spec) in enumerate(pairs)]
    t = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_render_and_analyse, jobs))
    build_s = time.perf_counter() - t
    path = workdir / "families.duckdb"
    path.unlink(missing_ok=True)
    con = open_catalog(path)
    store_results(con, results, "bench-similarity")
    refresh_similarity_index(con)
    family = {r["path"]: f for r, (f, _) in zip(results, pairs)}
    ids = dict(con.execute("SELECT path, track_id FROM tracks WHERE status = 'analyzed'").fetchall())
    out = {
        "songs": len(pairs),
        "analysed": len(ids),
        "families": families,
        "variants": variants,
        "render_and_analyse_s": round(build_s, 1),
    }
    for metric in ("cosine", "euclidean"):
        precisions = []
        for p, tid in ids.items():
            nb = similar_tracks(con, tid, 5, metric=metric)
            precisions.append(float(np.mean([family[q] == family[p] for q in nb["path"]])))
        out[f"precision_at_5_{metric}"] = round(float(np.mean(precisions)), 3)
    con.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="catalog sizes for the latency part")
    ap.add_argument("--queries", type=int, default=50, help="random seeds per measurement")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--families", type=int, default=12)
    ap.add_argument("--variants", type=int, default=6)
    ap.add_argument("--workers", type=int, default=max(1, len(os.sched_getaffinity(0))))
    ap.add_argument("--workdir", type=Path, default=None, help="where catalogs and audio go (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cratedig-bench-sim-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict = {"latency": [], "quality": None}
    try:
        if not args.no_latency:
            for n in (int(s) for s in args.sizes.split(",")):
                row = latency(n, queries=args.queries, workdir=workdir)
                report["latency"].append(row)
                print(json.dumps(row), flush=True)
        if not args.no_quality:
            report["quality"] = quality(args.families, args.variants, workdir=workdir, workers=args.workers)
            print(json.dumps(report["quality"]), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    big = [r for r in report["latency"] if r["tracks"] >= 1_000_000]
    if big:
        print(f"1M tracks: median top-10 {big[0]['python_top10_ms'][0]} ms (target <= 100 ms)")
    if report["quality"]:
        print(f"precision@5 cosine {report['quality']['precision_at_5_cosine']} (target >= 0.8)")


if __name__ == "__main__":
    with recording("similarity", "Similarity: latency and precision"):
        main()
