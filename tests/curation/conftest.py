"""A tiny analysed catalog for the curation tests: five short synthesized songs in five formats, analysed by
``analyze_file`` and stored by ``store_results`` (no Prefect), built once per session; tests that write
copy it first (:func:`catalog_copy`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tasks.synth.songs import SongSpec

#: format: (BPM, tonic, mode, style, timbre); 8 s each, seeds 11-15.
_SONGS = {
    "flac": (124.0, 9, "minor", "house", "saw"),
    "mp3": (126.0, 4, "minor", "house", "square"),
    "m4a": (128.0, 0, "major", "house", "fm"),
    "ogg": (92.0, 7, "major", "hiphop", "piano-ish"),
    "wav": (100.0, 2, "minor", "funk", "pluck"),
}
SPECS: dict[str, SongSpec] = {
    fmt: SongSpec(bpm=bpm, tonic=tonic, mode=mode, duration_s=8.0, style=style, timbre=timbre, seed=11 + i)
    for i, (fmt, (bpm, tonic, mode, style, timbre)) in enumerate(_SONGS.items())
}


@pytest.fixture(scope="session")
def dj_catalog(tmp_path_factory) -> tuple[Path, Path]:
    """(catalog file, library folder) of the five analysed songs; names with a space and an accent."""
    from tasks.catalog.store import open_catalog, store_results
    from tasks.constants import SR
    from tasks.features.analyze import analyze_file
    from tasks.similarity.index import refresh_similarity_index
    from tasks.synth.files import write_audio
    from tasks.synth.songs import render_song

    root = tmp_path_factory.mktemp("dj")
    lib = root / "library" / "Crate Dïg"
    lib.mkdir(parents=True)
    results = []
    for i, (fmt, spec) in enumerate(SPECS.items()):
        path = lib / f"{i} song #{i}.{fmt}"
        y = render_song(spec, sr=SR)
        write_audio(path, y, SR, title=f"Song {i}", artist="Tester & Co", genre="House", bpm=spec.bpm, key=spec.key)
        st = os.stat(path)
        results.append(analyze_file(str(path), st.st_size, st.st_mtime_ns))
    catalog = root / "catalog.duckdb"
    con = open_catalog(catalog)
    store_results(con, results, "test-curation")
    refresh_similarity_index(con)
    con.close()
    return catalog, lib


@pytest.fixture
def catalog_copy(dj_catalog, tmp_path) -> Path:
    """A private copy of the session catalog (same library files)."""
    dst = tmp_path / "catalog.duckdb"
    shutil.copy(dj_catalog[0], dst)
    return dst
