"""The song families the similarity tests rank: rendered by ``tasks.synth.songs``, analysed by
``tasks.features.analyze.analyze_file``, stored by ``tasks.catalog.store.store_results`` and indexed by
``refresh_similarity_index``, without Prefect; built once per session (``conftest.py``'s fixtures, the notebook
and SQL tests)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tasks.similarity.index import refresh_similarity_index
from tasks.synth.songs import SongSpec

#: Four families: each fixes style, instrumentation, tempo and key; members differ by seed (progression,
#: melody, drum kit, reverb) and some by noise. Family 3 shares family 0's key and is within 6 % of its
#: tempo (120 vs 124 BPM) but sounds different, so a mix can walk from one to the other.
FAMILIES: dict[int, dict] = {
    0: dict(style="house", timbre="saw", bpm=124.0, tonic=9, mode="minor"),
    1: dict(style="hiphop", timbre="piano-ish", bpm=92.0, tonic=0, mode="major"),
    2: dict(style="dnb", timbre="square", bpm=172.0, tonic=5, mode="minor"),
    3: dict(style="funk", timbre="pluck", bpm=120.0, tonic=9, mode="minor"),
}
VARIANTS = 4
DURATION_S = 20.0

_BUILT: dict[str, tuple[Path, dict[str, int]]] = {}


def _render_and_analyse(job: tuple[str, SongSpec, str, str]) -> dict:
    from tasks.constants import SR
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio
    from tasks.synth.songs import render_song

    path, spec, title, artist = job
    if not os.path.exists(path):
        write_audio(path, render_song(spec, sr=SR), SR, title=title, artist=artist, bpm=spec.bpm, key=spec.key)
    st_ = os.stat(path)
    return analyze_file(path, st_.st_size, st_.st_mtime_ns)


def build_family_catalog(root: Path) -> tuple[Path, dict[str, int]]:
    """Render, analyse, store and index the families (plus two duplicates); returns (catalog, path -> family).

    Built once per test session, whichever module asks first (about 0.5 s of CPU per song).
    """
    if "catalog" in _BUILT:
        return _BUILT["catalog"]
    from tasks.catalog.store import open_catalog, store_results

    lib = root / "library"
    (lib / "copies").mkdir(parents=True, exist_ok=True)
    family: dict[str, int] = {}
    jobs = []
    for f, params in FAMILIES.items():
        for v in range(VARIANTS):
            spec = SongSpec(duration_s=DURATION_S, seed=100 * f + v, noise_db=30.0 if v == 3 else None, **params)
            path = str(lib / f"family{f}_take{v}.flac")
            jobs.append((path, spec, f"Take {v} of family {f}", f"Family {f}"))
            family[path] = f
    # Duplicates of family0_take0: the same audio tagged with the same title/artist up to case and
    # spaces (other bytes, so another fingerprint), and (written below, once the original exists) a
    # byte copy (same fingerprint).
    reencode = str(lib / "copies" / "family0_take0 (retagged).flac")
    jobs.append((reencode, jobs[0][1], " take 0 of Family 0", "FAMILY 0 "))
    family[reencode] = 0
    results = [_render_and_analyse(job) for job in jobs]
    copy = str(lib / "copies" / "family0_take0 (copy).flac")
    shutil.copy(jobs[0][0], copy)
    results.append(_render_and_analyse((copy, jobs[0][1], "", "")))
    family[copy] = 0
    assert all(r["status"] == "analyzed" for r in results), [(r["path"], r["detail"]) for r in results]
    catalog = root / "catalog.duckdb"
    con = open_catalog(catalog)
    store_results(con, results, "test-similarity")
    refresh_similarity_index(con)
    con.close()
    _BUILT["catalog"] = (catalog, family)
    return _BUILT["catalog"]


def originals(family: dict[str, int]) -> list[str]:
    return [p for p in family if "copies" not in p]
