"""A tiny analysed catalog for the curation tests: five short synthesized songs in five formats, analysed by
``analyze_file`` and stored by ``store_results`` (no Prefect), built once per session; tests that write
copy it first (:func:`catalog_copy`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tasks.synth.songs import SongSpec

SPECS: dict[str, SongSpec] = {
    "flac": SongSpec(bpm=124.0, tonic=9, mode="minor", duration_s=8.0, style="house", timbre="saw", seed=11),
    "mp3": SongSpec(bpm=126.0, tonic=4, mode="minor", duration_s=8.0, style="house", timbre="square", seed=12),
    "m4a": SongSpec(bpm=128.0, tonic=0, mode="major", duration_s=8.0, style="house", timbre="fm", seed=13),
    "ogg": SongSpec(bpm=92.0, tonic=7, mode="major", duration_s=8.0, style="hiphop", timbre="piano-ish", seed=14),
    "wav": SongSpec(bpm=100.0, tonic=2, mode="minor", duration_s=8.0, style="funk", timbre="pluck", seed=15),
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
