"""Long files are analysed block by block: same answers as one block, memory that does not grow with length."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.audio.decode import decode_audio
from tasks.audio.resample import MonoResampler, to_mono
from tasks.constants import SR
from tasks.features.analyze import analyze_audio, features_row
from tasks.features.evidence import TrackEvidence
from tasks.synth.files import write_audio, write_long_mix
from tasks.synth.songs import SongSpec, render_song

ROOT = Path(__file__).resolve().parents[2]
MIX_BPM = 124.0
_BAR_S = 4 * 60.0 / MIX_BPM


def _songs(sr: int, bars: int) -> list[np.ndarray]:
    kinds = [("house", "saw"), ("house", "pluck"), ("house", "organ")]
    return [
        render_song(
            SongSpec(bpm=MIX_BPM, tonic=9, mode="minor", duration_s=bars * _BAR_S, style=s, timbre=t, seed=40 + i),
            sr=sr,
        )
        for i, (s, t) in enumerate(kinds)
    ]


def _in_blocks(audio, block_frames: int, chunk: int = 30_001) -> dict:
    """The features row of ``audio`` fed in odd-sized chunks through ``block_frames``-frame STFT blocks."""
    ev = TrackEvidence(audio.native_sr, audio.channels, sr=audio.sr, block_frames=block_frames)
    for i in range(0, audio.native.shape[1], 2 * chunk):
        ev.add_native(audio.native[:, i : i + 2 * chunk])
    for i in range(0, len(audio.y), chunk):
        ev.add_mono(audio.y[i : i + chunk])
    return features_row(ev.finish(), [])


def test_blocks_give_the_whole_track_answers(tmp_path):
    """A 62 s song cut into 9 s STFT blocks: tempo, key, loudness and the timbre statistics are the one-block ones."""
    path = write_audio(tmp_path / "song.flac", np.concatenate(_songs(44100, 8)[:2], axis=1), 44100)
    audio = decode_audio(path)
    whole, blocked = analyze_audio(audio), _in_blocks(audio, block_frames=400)
    assert whole["bpm"] == pytest.approx(MIX_BPM, abs=0.5)
    assert blocked["bpm"] == pytest.approx(whole["bpm"], abs=0.02)
    assert blocked["key"] == whole["key"] == "A minor"
    assert blocked["tuning_cents"] == pytest.approx(whole["tuning_cents"], abs=0.02)
    np.testing.assert_allclose(blocked["chroma_mean"], whole["chroma_mean"], atol=1e-5)
    for name in ("loudness_lufs", "loudness_range_lu", "true_peak_dbtp"):
        assert blocked[name] == pytest.approx(whole[name], abs=1e-3), name
    spectral = ("spectral_centroid_hz", "spectral_bandwidth_hz", "spectral_rolloff_hz", "spectral_flatness")
    for name in (*spectral, "zero_crossing_rate", "rms"):
        assert blocked[name] == pytest.approx(whole[name], rel=1e-4), name
    np.testing.assert_allclose(blocked["mfcc_mean"], whole["mfcc_mean"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(blocked["mfcc_std"], whole["mfcc_std"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(blocked["spectral_contrast"], whole["spectral_contrast"], rtol=1e-4)
    # The onset envelope floors at 80 dB under the loudest value heard so far: a near-equal, not equal, rate.
    assert blocked["onset_rate"] == pytest.approx(whole["onset_rate"], rel=0.05)


_CHILD = """
import json, os, resource, sys
sys.path.insert(0, {root!r})
from tasks.features.analyze import analyze_file
path = sys.argv[1]
st = os.stat(path)
r = analyze_file(path, st.st_size, st.st_mtime_ns)
f = r["features"] or {{}}
print(json.dumps({{"status": r["status"], "duration_s": r["duration_s"], "bpm": f.get("bpm"), "key": f.get("key"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _analyse_in_child(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT)), str(path)],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"OPENBLAS_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_long_mix_costs_no_more_memory_than_one_block(tmp_path):
    """A 13-minute 44.1 kHz stereo mix (three STFT blocks) peaks within 60 MB of a 5-minute track (one block);
    whole-signal analysis needed ~55 MB more per minute of audio (6.6 GB for 2 hours), and its tempo and key
    describe the whole mix."""
    songs = _songs(44100, 16)  # 16 bars at 124 BPM: 31 s each, the beat grid runs on across the joins
    short = write_long_mix(tmp_path / "track.flac", songs, 44100, 5 * 60.0)
    long = write_long_mix(tmp_path / "mix.flac", songs, 44100, 13 * 60.0)
    a, b = _analyse_in_child(short), _analyse_in_child(long)
    assert a["status"] == b["status"] == "analyzed"
    assert b["duration_s"] == pytest.approx(13 * 60.0, abs=0.01)
    assert b["bpm"] == pytest.approx(MIX_BPM, abs=0.05) and b["key"] == "A minor"
    assert b["rss_mb"] - a["rss_mb"] < 60.0, (a, b)


def test_decode_audio_still_returns_the_whole_signal(tmp_path):
    """The one-shot decoder (notebooks, benchmarks) joins the same blocks the analysis streams."""
    y = render_song(SongSpec(bpm=120.0, tonic=0, duration_s=8.0, seed=3), sr=SR)
    audio = decode_audio(write_audio(tmp_path / "a.wav", y, SR))
    assert audio.native.shape == (2, y.shape[1]) and audio.sr == SR and len(audio.y) == y.shape[1]
    np.testing.assert_allclose(audio.native, np.clip(y, -1, 1), rtol=1e-4, atol=2.0 / 32768)


def test_streamed_resampling_is_the_one_shot_resampling():
    """Blocks of any size through :class:`MonoResampler` (which feeds soxr in pieces) join into exactly
    :func:`to_mono` of the whole signal."""
    y = render_song(SongSpec(bpm=120.0, tonic=0, duration_s=12.0, seed=3), sr=44100).astype(np.float32)
    whole = to_mono(y, 44100)
    for block in (1000, 70_001, 300_000, y.shape[1]):
        stream = MonoResampler(44100)
        joined = np.concatenate([stream(y[:, i : i + block]) for i in range(0, y.shape[1], block)] + [stream.flush()])
        np.testing.assert_array_equal(joined, whole)
