"""The synthesizer is ground truth for tempo/key tests and the benchmark: check that its truth is true."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import librosa
import mutagen
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from tasks.constants import SR
from tasks.errors import CratedigError
from tasks.synth import demo as demo_library
from tasks.synth.demo import demo_specs
from tasks.synth.files import TAGGABLE_EXTENSIONS, decoded_duration, write_audio
from tasks.synth.songs import SongSpec, beat_times, ground_truth_set, render_song
from tasks.synth.styles import MAJOR_SCALE, MINOR_SCALE, PITCH_NAMES, STYLES, TIMBRES
from tasks.synth.voices import chord_tone, click_track

ONSET_HOP = 64  # 2.9 ms at SR: fine enough to see a 1-sample-per-beat drift accumulate


def _onsets(y: np.ndarray, sr: int = SR, n_fft: int = 256) -> np.ndarray:
    """Onset times (s): peaks of log-spectral flux (plain numpy: librosa's first onset call JIT-compiles for 8 s)."""
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n_fft // 2), n_fft)[::ONSET_HOP]
    mag = np.log1p(1000.0 * np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)))
    flux = np.r_[0.0, np.maximum(np.diff(mag, axis=0), 0.0).sum(axis=1)]
    peaks, _ = scipy.signal.find_peaks(flux, height=0.2 * flux.max(), distance=int(0.04 * sr / ONSET_HOP))
    return peaks * ONSET_HOP / sr


def _matched_errors(expected: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Signed distance (s) from each expected time to the nearest found onset."""
    idx = np.clip(np.searchsorted(found, expected), 1, len(found) - 1)
    left, right = found[idx - 1], found[idx]
    return np.where(expected - left < right - expected, left, right) - expected


@pytest.mark.parametrize("bpm", [60.0, 123.37, 174.99])
def test_click_track_onsets_on_the_grid(bpm: float) -> None:
    offset = 0.237
    y = click_track(bpm, duration_s=20.0, offset_s=offset)
    assert y.dtype == np.float32 and len(y) == round(20.0 * SR)
    expected = offset + np.arange(int((20.0 - offset) * bpm / 60.0) + 1) * 60.0 / bpm
    expected = expected[expected < 20.0 - 0.05]
    found = _onsets(y)
    assert len(found) == len(expected)
    err = found - expected
    # A constant detector lag is fine; a drift (cumulative rounding) would spread the errors.
    assert np.ptp(err) < 1.5 * ONSET_HOP / SR
    assert abs(np.median(err)) < 0.006
    assert abs(20 * np.log10(np.abs(y).max()) + 1.0) < 0.05


def test_click_track_samples_exact() -> None:
    bpm, sr = 137.77, 8000
    y = click_track(bpm, duration_s=30.0, sr=sr, offset_s=0.0)
    starts = np.flatnonzero((np.abs(y) > 0) & (np.abs(np.r_[0.0, y[:-1]]) == 0))
    expected = np.round(np.arange(len(starts)) * 60.0 / bpm * sr)
    assert len(starts) == int(30.0 * bpm / 60.0) + 1
    # sin starts at 0, so the first nonzero sample is the one after the placed sample
    np.testing.assert_array_equal(starts - 1, expected)


@pytest.mark.parametrize(
    ("style", "bpm", "timbre"),
    [("house", 123.37, "saw"), ("dnb", 174.21, "pluck"), ("waltz", 96.5, "piano-ish"), ("rock", 150.5, "organ")],
)
def test_kick_drum_lands_on_beats(style: str, bpm: float, timbre: str) -> None:
    # drift and swing on: kicks must follow beat_times(), not a rounded or straight grid
    spec = SongSpec(
        bpm=bpm, tonic=4, mode="minor", duration_s=14.0, style=style, timbre=timbre, seed=3, swing=0.2, tempo_drift=0.01
    )
    y = render_song(spec, stereo=False)
    st = STYLES[style]
    kick_beats = np.array(
        [bar * st.meter + s // 4 for bar in range(40) for s, c in enumerate(st.kick) if c != "." and s % 4 == 0]
    )
    beats = beat_times(spec)
    kicks = beats[kick_beats[kick_beats < len(beats)]]
    kicks = kicks[kicks < spec.duration_s - 0.5]
    err = _matched_errors(kicks, _onsets(y))
    assert len(kicks) >= 8
    # The flux detector fires up to ~2 hops early (centred 256-sample frames); a tempo rounded to
    # 123 BPM would be 30 ms off after 10 s.
    assert np.mean((err > -0.012) & (err < 0.003)) >= 0.9, np.round(err * 1000, 1)


def test_beat_times_grid_and_drift() -> None:
    spec = SongSpec(bpm=123.37, tonic=0, duration_s=60.0)
    bt = beat_times(spec)
    np.testing.assert_allclose(np.diff(bt), 60.0 / 123.37, rtol=1e-12)
    assert 0.0 < bt[0] < 0.4 and bt[-1] < 60.0 <= bt[-1] + 60.0 / 123.37 + 0.4
    drifting = SongSpec(bpm=123.37, tonic=0, duration_s=60.0, tempo_drift=0.02, seed=5)
    periods = np.diff(beat_times(drifting))
    local_bpm = 60.0 / periods
    assert local_bpm.max() > 123.37 * 1.015 and local_bpm.min() < 123.37 / 1.015
    assert abs(60.0 / periods.mean() - 123.37) < 0.2  # the spec's bpm stays the mean tempo


def test_render_shape_level_and_determinism() -> None:
    spec = SongSpec(
        bpm=92.0, tonic=7, mode="major", duration_s=6.0, style="hiphop", timbre="fm", swing=0.2, noise_db=20.0, seed=11
    )
    y = render_song(spec)
    assert y.shape == (2, round(6.0 * SR)) and y.dtype == np.float32
    assert abs(20 * np.log10(np.abs(y).max()) + 1.0) < 0.01
    assert not np.allclose(y[0], y[1])  # really stereo
    np.testing.assert_array_equal(y, render_song(spec))
    mono = render_song(spec, stereo=False, sr=16000)
    assert mono.shape == (round(6.0 * 16000),)


def _chroma_by_degree(y: np.ndarray, tonic: int) -> np.ndarray:
    c = librosa.feature.chroma_stft(y=y, sr=SR, tuning=0.0).mean(axis=1)
    return np.roll(c / c.max(), -tonic)


@pytest.mark.parametrize(
    ("tonic", "mode", "timbre", "style"),
    [
        (9, "minor", "saw", "house"),
        (2, "major", "organ", "rock"),
        (6, "major", "piano-ish", "waltz"),
        (1, "minor", "pluck", "dnb"),
        (10, "major", "fm", "funk"),
        (4, "minor", "square", "reggae"),
    ],
)
def test_chroma_peaks_on_scale_tones(tonic: int, mode: str, timbre: str, style: str) -> None:
    spec = SongSpec(bpm=110.0, tonic=tonic, mode=mode, duration_s=15.0, style=style, timbre=timbre, seed=tonic)
    c = _chroma_by_degree(render_song(spec, stereo=False), tonic)
    scale = list(MAJOR_SCALE if mode == "major" else MINOR_SCALE)
    outside = [d for d in range(12) if d not in scale and not (mode == "minor" and d == 11)]  # harmonic V
    assert c[scale].mean() > 1.25 * c[outside].mean()
    assert 0 in np.argsort(c)[::-1][:3]  # the tonic is among the three strongest pitch classes


def test_chord_tone_is_in_key() -> None:
    for tonic, mode in ((0, "major"), (9, "minor"), (6, "minor")):
        c = _chroma_by_degree(chord_tone(tonic, mode, duration_s=2.0), tonic)
        scale = MAJOR_SCALE if mode == "major" else MINOR_SCALE
        assert set(np.argsort(c)[::-1][:7]) == set(scale)
        assert set(np.argsort(c)[::-1][:3]) == {0, scale[2], 7}


def test_spec_key_names_and_validation() -> None:
    assert SongSpec(bpm=120, tonic=9, mode="minor").key == "A minor"
    assert SongSpec(bpm=120, tonic=6, mode="major").key == "F# major"
    for bad in ({"tonic": 12}, {"mode": "dorian"}, {"style": "polka"}, {"bpm": 0}):
        with pytest.raises(ValueError):
            SongSpec(**{"bpm": 120, "tonic": 0, **bad})


def test_ground_truth_set_coverage() -> None:
    specs = ground_truth_set()
    assert len(specs) == 120 and specs == ground_truth_set()  # deterministic
    keys = Counter(s.key for s in specs)
    assert len(keys) == 24 and min(keys.values()) >= 4
    bpms = np.array([s.bpm for s in specs])
    assert bpms.min() < 63 and bpms.max() > 187 and np.all((bpms >= 60) & (bpms <= 190))
    assert np.histogram(bpms, bins=13, range=(60, 190))[0].min() >= 5  # stratified, no gaps
    assert {s.style for s in specs} == set(STYLES) and {s.timbre for s in specs} == set(TIMBRES)
    for name, frac in (
        ("swing", np.mean([s.swing > 0 for s in specs])),
        ("drift", np.mean([s.tempo_drift > 0 for s in specs])),
        ("noise", np.mean([s.noise_db is not None for s in specs])),
    ):
        assert 0.1 <= frac <= 0.3, name
    assert all(STYLES[s.style].tempo[0] <= s.bpm <= STYLES[s.style].tempo[1] for s in specs)


def test_demo_specs() -> None:
    specs = demo_specs()
    assert len(specs) >= 24
    assert all(30 <= s.duration_s <= 90 and 70 <= s.bpm <= 175 for s in specs)
    assert {s.mode for s in specs} == {"major", "minor"} and len({s.timbre for s in specs}) >= 5


@pytest.mark.parametrize("ext", sorted(TAGGABLE_EXTENSIONS))
@pytest.mark.parametrize("channels", [1, 2])
def test_write_audio_round_trip_with_tags(tmp_path: Path, ext: str, channels: int) -> None:
    y = render_song(SongSpec(bpm=121.5, tonic=6, duration_s=3.0, seed=2), sr=44100)
    y = y if channels == 2 else y.mean(axis=0)
    path = write_audio(
        tmp_path / f"song{ext}",
        y,
        44100,
        title="Demo — test",
        artist="cratedig synth",
        album="Fixtures",
        genre="house",
        bpm=121.5,
        key="F# major",
    )
    assert abs(decoded_duration(path) - 3.0) < 0.1 + 2048 / 44100
    tags = mutagen.File(path, easy=False).tags
    text = {str(k).lower(): str(v) for k, v in tags.items()}
    flat = " ".join(f"{k}={v}" for k, v in text.items())
    for expected in ("Demo — test", "cratedig synth", "Fixtures", "house", "F# major"):
        assert expected in flat, (expected, flat)
    assert "121" in flat or "122" in flat
    if ext in (".wav", ".flac", ".ogg", ".mp3"):
        assert sf.info(path).channels == channels


def test_write_audio_rejects_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(CratedigError):
        write_audio(tmp_path / "x.aiff", np.zeros(100, dtype=np.float32), SR)


def test_demo_library_plan() -> None:
    rows = demo_library.demo_rows()
    exts = Counter(Path(r["file"]).suffix for r in rows)
    assert set(exts) == {".flac", ".ogg", ".opus", ".mp3", ".wav", ".m4a"} and min(exts.values()) >= 3
    assert len({r["file"] for r in rows}) == len(rows) >= 24


def test_build_demo_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    short = [SongSpec(**{**s.__dict__, "duration_s": 2.0}) for s in demo_specs()[:6]]
    monkeypatch.setattr(demo_library, "demo_specs", lambda: short)
    rows = demo_library.build_demo_library(tmp_path, processes=2)
    assert len(rows) == 6
    files = {p.name for p in tmp_path.iterdir()}
    assert {r["file"] for r in rows} | set(demo_library.BROKEN_FILES) | {"ground_truth.csv"} == files
    assert {Path(r["file"]).suffix for r in rows} == set(demo_library.DEMO_FORMATS)
    with open(tmp_path / "ground_truth.csv", newline="") as f:
        truth = list(csv.DictReader(f))
    assert [t["file"] for t in truth] == [r["file"] for r in rows]
    assert {"file", "bpm", "key", "style", "timbre"} <= set(truth[0])
    first = tmp_path / rows[0]["file"]
    assert "Demo 01 — " in str(mutagen.File(first).tags)
    with pytest.raises(sf.LibsndfileError):
        sf.read(tmp_path / "broken_truncated.flac")
    assert (tmp_path / "not_really.mp3").read_bytes().lstrip().startswith(b"<!DOCTYPE html>")
    # idempotent: nothing rewritten on a second build; a missing file is the only one redone
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert demo_library.build_demo_library(tmp_path) == rows
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    first.unlink()
    demo_library.build_demo_library(tmp_path, processes=1)
    assert first.is_file()
    assert all(
        mtimes[p.name] == p.stat().st_mtime_ns
        for p in tmp_path.iterdir()
        if p.name not in (first.name, "ground_truth.csv")
    )


def test_pitch_names() -> None:
    assert PITCH_NAMES == ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
