"""Streaming loudness: LoudnessMeter fed in blocks against measure_loudness on the whole signal."""

from __future__ import annotations

import tracemalloc
from functools import cache
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.features.loudness.stream as loudness_stream
from tasks.errors import CratedigError
from tasks.features.loudness.r128 import Loudness, measure_loudness, true_peak
from tasks.features.loudness.stream import LoudnessMeter
from tests.features.test_loudness import (
    counting_oversampled,
    levelled_noise,
    music_like,
    quarter_rate_burst,
    sequence,
    sine,
)


def stream(x: np.ndarray, sr: int, sizes: list[int] | range, *, region: int | None = None) -> Loudness:
    """Feed ``x`` in blocks of ``sizes`` (then the rest), optionally with a smaller in-place/buffer threshold."""
    with mock.patch.object(loudness_stream, "_REGION", region or loudness_stream._REGION):
        meter = LoudnessMeter(sr, x.shape[0])
        start = 0
        for n in sizes:
            meter.feed(x[:, start : start + n])  # past the end: empty blocks
            start += n
        meter.feed(x[:, start:])
        return meter.result()


def assert_matches(got: Loudness, ref: Loudness) -> None:
    for name, tol in (("integrated_lufs", 1e-3), ("range_lu", 1e-3), ("replaygain_db", 1e-3), ("true_peak_dbtp", 0.01)):
        a, b = getattr(got, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        assert a is None or abs(a - b) <= tol, (name, a, b)
    # The streamed search examines every block measure_loudness examines: never a lower true peak.
    assert got.true_peak_dbtp is None or got.true_peak_dbtp >= ref.true_peak_dbtp - 1e-9


@cache
def signal(sr: int, channels: int) -> tuple[np.ndarray, Loudness]:
    """Music-like (stereo: clipped, with overs at the ceiling) 9.3 s, and its whole-signal figures."""
    x = music_like(9.3, sr, channels=channels, seed=channels)
    if channels == 2:
        x = np.clip(x * 2.5, -1.0, 1.0)
    return x, measure_loudness(x, sr)


# ----------------------------------------------------------------------------- any split, any path
block_size = st.one_of(st.just(0), st.integers(1, 3), st.integers(1, 9000), st.integers(9000, 150000))


@pytest.mark.parametrize("sr", [44100, 48000, 11025])  # 11025 Hz: sosfilt path, 1102.5-sample segments
@pytest.mark.parametrize("channels", [1, 2, 6])
@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(block_size, max_size=25), region=st.sampled_from([None, 2**15, 1]))
def test_any_split_equals_the_whole_signal(sr, channels, sizes, region):
    # region: the default buffers everything here; 2**15 (and the 4-segment minimum) mixes in-place blocks,
    # buffered blocks and many region edges.
    x, ref = signal(sr, channels)
    assert_matches(stream(x, sr, sizes, region=region), ref)


@pytest.mark.parametrize("sr", [8000, 11025])
def test_one_sample_blocks(sr):
    x = music_like(1.3, sr, channels=2)
    got = stream(x, sr, [1] * x.shape[1])
    assert_matches(got, measure_loudness(x, sr))
    assert got.integrated_lufs is not None and got.range_lu is None  # 10 gating blocks, under 3 s


@pytest.mark.parametrize(
    ("sr", "n"),
    [(44100, 4409), (44100, 4410), (44100, 17641), (11025, 7716), (11025, 7717), (11025, 7718), (11025, 22051)],
)
def test_lengths_around_segment_edges(sr, n):
    # A trailing partial segment counts for the true peak only. At 11025 Hz segment edges are round(k * 1102.5),
    # and for n = 7717 the whole-signal pass's last edge rounds to n + 1: a 7th segment one sample short.
    x = music_like(3.0, sr)[:, :n]
    assert_matches(stream(x, sr, [777] * 40, region=1), measure_loudness(x, sr))


# ------------------------------------------------------------------------------ EBU Tech 3341/3342
ODD_BLOCKS = [4801, 12345, 999, 1, 0, 65537, 3]  # then repeated


@pytest.mark.parametrize(
    ("levels", "expected", "sr"),
    [
        ([(-23.0, 20.0)], -23.0, 48000),
        ([(-23.0, 20.0)], -23.0, 44100),
        ([(-23.0, 20.0)], -23.0, 11025),
        ([(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0, 48000),
        ([(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0, 48000),
    ],
)
def test_tech3341_in_odd_blocks(levels, expected, sr):
    x = sequence(levels, sr)
    got = stream(x, sr, ODD_BLOCKS * 200)
    assert abs(got.integrated_lufs - expected) <= 0.1
    assert abs(got.integrated_lufs - measure_loudness(x, sr).integrated_lufs) < 1e-3


def test_tech3342_range_in_odd_blocks():
    x = sequence([(-20.0, 20.0), (-30.0, 20.0)], 48000)
    got = stream(x, 48000, ODD_BLOCKS * 200, region=2**16)
    assert abs(got.range_lu - 10.0) <= 1.0
    assert abs(got.range_lu - measure_loudness(x, 48000).range_lu) < 1e-3


# -------------------------------------------------------------------------------------- true peak
@pytest.mark.parametrize("offset", [8, 9, 50, 4409])
def test_true_peak_over_straddling_a_region_edge(offset):
    """An intersample over centred on a segment edge: feeding x[:, :c + offset] first puts a region edge at c."""
    sr, c = 44100, 44100
    rng = np.random.default_rng(0)
    x = (0.01 * rng.standard_normal((2, 3 * sr))).astype(np.float32)
    x[:, c - 20 : c + 20] += quarter_rate_burst(1.0, 40).astype(np.float32)  # samples <= 0.75, overs ~1.0
    assert np.abs(x).max() < 0.8
    ref = measure_loudness(x, sr)
    got = stream(x, sr, [c + offset], region=2**15)
    assert_matches(got, ref)
    assert got.true_peak_dbtp > 20 * np.log10(0.9)


def test_true_peak_over_below_the_sample_peak_of_an_earlier_block():
    """The loudest sample (a slow sine at 1.0) comes in one region, the true peak (samples <= 0.92) in another."""
    sr = 48000
    n = np.arange(4 * sr)
    x = 0.5 * np.sin(2 * np.pi * 100 * n / sr)
    x[sr : sr + 2000] = np.sin(2 * np.pi * 100 * n[:2000] / sr)
    x[3 * sr : 3 * sr + 4000] = quarter_rate_burst(1.3, 4000)
    x = x[None, :].astype(np.float32)
    got = stream(x, sr, [sr // 2] * 8, region=2**15)
    assert got.true_peak_dbtp == pytest.approx(20 * np.log10(1.3), abs=0.02)
    assert_matches(got, measure_loudness(x, sr))


def test_true_peak_of_clipped_music_equals_full_oversampling():
    sr = 44100
    x = np.clip(music_like(12.0, sr) * 3.0, -1.0, 1.0)
    full = true_peak(x, sr, margin_db=np.inf, max_blocks=10**9)
    for sizes, region in (([sr] * 12, None), ([30011] * 20, 2**15), ([2 * sr] * 6, 2**16)):
        assert stream(x, sr, sizes, region=region).true_peak_dbtp == pytest.approx(full, abs=0.01)


def _interpolated_blocks(x: np.ndarray, sr: int) -> tuple[int, Loudness]:
    with mock.patch.object(loudness_stream, "interpolated_peak", wraps=loudness_stream.interpolated_peak) as spy:
        got = stream(x, sr, [10000] * (x.shape[1] // 10000), region=2**15)  # ~80 regions a minute
    return sum(len(c.args[2]) for c in spy.call_args_list), got


def test_true_peak_search_stays_near_the_peaks():
    """Thresholds from the signal so far (not from each region) keep the interpolation near measure_loudness's."""
    sr = 44100
    t = np.arange(60 * sr) / sr
    # Beating tones: every 1000-sample block peaks within 2 dB of the maximum (>256 candidates, no ties).
    dense = (0.4 * np.sin(2 * np.pi * 1000 * t) + 0.4 * np.sin(2 * np.pi * 1130 * t + 1)).astype(np.float32)
    dense = np.stack([dense, dense])
    count, got = _interpolated_blocks(dense, sr)
    assert_matches(got, measure_loudness(dense, sr))
    assert count < 16 * 1024  # 13.5k; 47k with only the 2 dB floor (256 blocks in each of 80 regions)
    # 2 s of music (200 blocks: the 256 highest so far are no threshold yet), then 30 s 10 dB down: under the
    # 2 dB floor of the signal so far, though not of its own regions. The quieter part is not searched at all.
    loud = music_like(2.0, sr)
    both = np.concatenate([loud, np.float32(0.3) * music_like(30.0, sr)], axis=1)
    assert _interpolated_blocks(both, sr)[0] <= _interpolated_blocks(loud, sr)[0]  # 44 and 44; 507 and 68


# ------------------------------------------------------------------------------------ edges and API
def test_empty_and_silent_streams():
    assert stream(np.zeros((2, 0), dtype=np.float32), 44100, [0, 0]) == Loudness(None, None, None, None)
    assert stream(np.zeros((2, 10 * 44100), dtype=np.float32), 44100, [44100] * 5) == Loudness(None, None, None, None)
    short = stream(sine(-20.0, 0.3, 44100), 44100, [1000] * 5)  # under one 400 ms block
    assert short.integrated_lufs is None and short.true_peak_dbtp == pytest.approx(-20.0, abs=0.05)


def test_result_does_not_end_the_stream():
    x, ref = signal(48000, 2)
    meter = LoudnessMeter(48000, 2)
    meter.feed(x[:, :100000])
    first = meter.result()
    assert meter.result() == first
    assert_matches(first, measure_loudness(x[:, :100000], 48000))
    meter.feed(x[:, 100000:])
    assert_matches(meter.result(), ref)


def test_mono_vector_float64_and_channels_last_views():
    x, ref = signal(44100, 1)
    meter = LoudnessMeter(44100, 1)
    meter.feed(x[0, :50000].astype(np.float64))
    meter.feed(x[0, 50000:])
    assert_matches(meter.result(), ref)
    stereo, ref2 = signal(44100, 2)
    view = np.ascontiguousarray(stereo.T).T  # what soundfile's (n, channels) blocks give, transposed
    assert_matches(stream(view, 44100, [2**15 + 3, 100, 2**17], region=2**15), ref2)


@pytest.mark.parametrize(("sr", "channels"), [(4000, 2), (48000, 7), (48000, 0), (48000, -1)])
def test_rejects_bad_meter(sr, channels):
    with pytest.raises(CratedigError):
        LoudnessMeter(sr, channels)


@pytest.mark.parametrize(
    "block", [np.zeros((1, 10), np.float32), np.zeros((2, 10), np.int16), np.zeros((2, 2, 10), np.float32)]
)
def test_rejects_bad_blocks(block):
    with pytest.raises(CratedigError):
        LoudnessMeter(48000, 2).feed(block)


def test_rejects_non_finite_samples():
    x = sine(-20.0, 2.0, 44100)
    x[1, 5000] = np.nan
    with pytest.raises(CratedigError):
        stream(x, 44100, [3000] * 10)


# ---------------------------------------------------------------------------------- memory and cost
def _peak_traced_bytes(seconds: int, sr: int = 44100) -> int:
    rng = np.random.default_rng(1)
    block = rng.standard_normal((2, 5 * sr), dtype=np.float32)
    tracemalloc.start()
    try:
        meter = LoudnessMeter(sr, 2)
        for i in range(seconds // 5):
            meter.feed(block * np.float32(0.05 + 0.01 * (i % 7)))  # a new array each time, as from a decoder
        meter.result()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_signal():
    short, long = _peak_traced_bytes(30), _peak_traced_bytes(240)
    # 240 s of stereo float32 is 85 MB; the meter keeps its buffer (17 MB) and a few floats per 100 ms.
    assert long < short + 1_000_000
    assert long < 0.4 * 240 * 44100 * 2 * 4


def test_streamed_true_peak_oversamples_a_small_part_of_a_three_minute_track():
    # As test_loudness's: a count of the samples oversampled in 60 s blocks, not a timing.
    x = levelled_noise(180)
    with counting_oversampled(loudness_stream) as searched:
        got = stream(x, 44100, [60 * 44100] * 3)
    assert_matches(got, measure_loudness(x, 44100))
    assert 0 < sum(searched) < 0.01 * x.size
