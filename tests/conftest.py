"""Shared fixtures: a small library of synthesized songs in every supported format, and the Prefect harness."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import flows  # noqa: F401  (quiet, offline Prefect settings before Prefect is imported)
from tasks.synth.songs import SongSpec, render_song

# The user's ~/.prefect is not the tests' to write: the embedded servers of the commands run without the harness's
# server keep their SQLite database here, one per test process (two pytest-xdist workers sharing one database
# would see "database is locked").
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="cratedig-tests-prefect-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)

FORMATS = ("flac", "ogg", "opus", "mp3", "wav", "m4a")

#: Songs of the integration library: one per format, clean enough that tempo and key have one right answer.
LIBRARY_SPECS: dict[str, SongSpec] = {
    "flac": SongSpec(bpm=124.0, tonic=9, mode="minor", duration_s=20.0, style="house", timbre="saw", seed=1),
    "ogg": SongSpec(bpm=92.5, tonic=0, mode="major", duration_s=20.0, style="hiphop", timbre="piano-ish", seed=2),
    "opus": SongSpec(bpm=140.0, tonic=7, mode="major", duration_s=20.0, style="house", timbre="organ", seed=3),
    "mp3": SongSpec(bpm=174.0, tonic=2, mode="minor", duration_s=20.0, style="dnb", timbre="square", seed=4),
    "wav": SongSpec(bpm=100.0, tonic=4, mode="minor", duration_s=20.0, style="funk", timbre="pluck", seed=5),
    "m4a": SongSpec(bpm=128.0, tonic=5, mode="major", duration_s=20.0, style="house", timbre="fm", seed=6),
}


def write_library(root: Path, specs: dict[str, SongSpec] = LIBRARY_SPECS) -> dict[str, SongSpec]:
    """Write one song per format under ``root`` (some in sub-folders) plus two broken files; return path → spec."""
    from tasks.constants import SR
    from tasks.synth.files import write_audio

    truth = {}
    for i, (fmt, spec) in enumerate(specs.items()):
        folder = root / ("" if i % 2 else f"album {i}")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"song {i} {spec.style}.{fmt}"
        write_audio(
            path, render_song(spec, sr=SR), SR, title=f"Song {i}", artist="cratedig tests", bpm=spec.bpm, key=spec.key
        )
        truth[str(path.resolve())] = spec
    (root / "not_audio.mp3").write_text("<!DOCTYPE html><html><body>Not found</body></html>\n" * 20)
    (root / "empty.flac").write_bytes(b"")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    return truth


@pytest.fixture(scope="session")
def format_library(tmp_path_factory) -> tuple[Path, dict[str, SongSpec]]:
    """A library with one synthesized song per format plus an HTML page named .mp3, an empty flac and a jpg."""
    root = tmp_path_factory.mktemp("library")
    return root, write_library(root)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole session (its start costs 15–50 s here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield
