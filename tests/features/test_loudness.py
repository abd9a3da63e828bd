"""Loudness: BS.1770-4 / EBU R128 against pyloudnorm, EBU Tech 3341/3342 test signals, true peak."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from unittest import mock

import numpy as np
import pyloudnorm
import pytest
import scipy.signal

import tasks.features.loudness.true_peak as true_peak_module
from tasks.errors import CratedigError
from tasks.features.loudness.r128 import (
    Loudness,
    integrated_loudness,
    k_weighting_sos,
    loudness_range,
    measure_loudness,
    segment_energies,
    true_peak,
)
from tasks.features.loudness.r128 import _gated_integrated as _gated


def sine(level_dbfs: float, seconds: float, sr: int, *, freq: float = 1000.0, channels: int = 2) -> np.ndarray:
    """EBU test tone: ``channels`` identical sines, peak amplitude ``level_dbfs``, shape (channels, n)."""
    t = np.arange(round(seconds * sr)) / sr
    y = (10.0 ** (level_dbfs / 20.0) * np.sin(2.0 * np.pi * freq * t)).astype(np.float32)
    return np.tile(y, (channels, 1))


def sequence(levels_seconds: list[tuple[float, float]], sr: int, **kw) -> np.ndarray:
    return np.concatenate([sine(level, sec, sr, **kw) for level, sec in levels_seconds], axis=1)


@cache
def music_like(seconds: float, sr: int, *, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Bass line, kick, chords, hi-hats and a loud/quiet arrangement: broadband and dynamic, like a track.

    Cached: callers must not modify the result in place."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    beat = 0.5  # 120 BPM
    phase = t % beat
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-phase * 30)) * phase) * np.exp(-phase * 8)
    bass_f = 55.0 * 2 ** (rng.integers(0, 7, size=int(seconds / beat) + 1) / 12)[(t // beat).astype(int)]
    bass = 0.5 * np.sign(np.sin(2 * np.pi * bass_f * t)) * np.exp(-phase * 2)
    bass = scipy.signal.sosfilt(scipy.signal.butter(2, 400, fs=sr, output="sos"), bass)
    chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (261.6, 329.6, 392.0, 523.3, 1046.5)) / 5
    hat = rng.standard_normal(n) * np.exp(-((t + beat / 2) % beat) * 60)
    hat = scipy.signal.sosfilt(scipy.signal.butter(2, min(6000, 0.4 * sr), "highpass", fs=sr, output="sos"), hat)
    section = np.where((t // 4) % 3 == 2, 0.25, 1.0)  # every third 4 s section is 12 dB down
    out = []
    for c in range(channels):
        pan = 0.6 + 0.4 * c / max(channels - 1, 1)
        y = section * (0.5 * kick + 0.4 * bass + 0.25 * pan * chord + 0.15 * (1.4 - pan) * hat)
        out.append(y + 0.01 * rng.standard_normal(n))
    out = (0.5 * np.array(out)).astype(np.float32)
    out.setflags(write=False)
    return out


def pyln(x: np.ndarray, sr: int, filter_class: str = "K-weighting") -> float:
    data = x[0].astype(np.float64) if x.shape[0] == 1 else x.T.astype(np.float64)
    return pyloudnorm.Meter(sr, filter_class=filter_class).integrated_loudness(data)


# ------------------------------------------------------------------------------------------ K-weighting
def test_k_weighting_matches_bs1770_table_at_48k():
    table = np.array(
        [
            [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
            [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
        ]
    )
    np.testing.assert_allclose(k_weighting_sos(48000), table, atol=1e-10)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 96000, 192000])
def test_k_weighting_at_any_rate_is_the_libebur128_derivation(sr):
    # pyloudnorm's "DeMan" filters are the same bilinear derivation (as libebur128's); constants differ in
    # the last digits only.
    meter = pyloudnorm.Meter(sr, filter_class="DeMan")
    ref = np.array([np.concatenate([f.b, f.a]) for f in meter._filters.values()])
    np.testing.assert_allclose(k_weighting_sos(sr), ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sr", [22050, 44100, 96000, 192000])
def test_k_weighting_curve_is_rate_independent(sr):
    freqs = np.array([20.0, 38.0, 100.0, 1000.0, 1500.0, 3000.0])
    _, ref = scipy.signal.freqz_sos(k_weighting_sos(48000), worN=freqs, fs=48000)
    _, got = scipy.signal.freqz_sos(k_weighting_sos(sr), worN=freqs, fs=sr)
    # Only bilinear warping near Nyquist (and the unnormalised (1, -2, 1) high-pass numerator of the 48 kHz
    # table) moves it: within 0.1 dB from 22.05 kHz up.
    np.testing.assert_allclose(20 * np.log10(abs(got)), 20 * np.log10(abs(ref)), atol=0.1)


# ------------------------------------------------------------------------- integrated vs pyloudnorm
@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", ["noise", "music"])
def test_integrated_matches_pyloudnorm(sr, channels, kind):
    if kind == "noise":
        rng = np.random.default_rng(sr + channels)
        x = (0.1 * rng.standard_normal((channels, 10 * sr))).astype(np.float32)
    else:
        x = music_like(12.0, sr, channels=channels)
    ours = integrated_loudness(x, sr)
    # pyloudnorm's default filter is a cookbook approximation of K-weighting (~0.05 LU off the standard);
    # its "DeMan" class derives the exact BS.1770 filter from the same analogue prototype as we do.
    assert abs(ours - pyln(x, sr)) < 0.1
    assert abs(ours - pyln(x, sr, "DeMan")) < 0.01


@pytest.mark.parametrize("sr", [8000, 32000, 44100, 48000, 96000, 192000])
def test_spectral_path_equals_sosfilt_reference(sr):
    """The fast FFT+state path must reproduce a running IIR exactly, even with DC offset and sub-bass."""
    n = 4 * sr
    t = np.arange(n) / sr
    rng = np.random.default_rng(sr)
    gate = (t % 1.0) < 0.65
    x = np.stack(
        [
            0.3 + 0.3 * np.sin(2 * np.pi * 45 * t) + 0.2 * np.sin(2 * np.pi * 6 * t) + 0.05 * rng.standard_normal(n),
            0.2 * rng.standard_normal(n) * gate,
        ]
    ).astype(np.float32)
    fast, fast_len = segment_energies(x, sr)
    ref, ref_len = segment_energies(x, sr, exact=True)
    np.testing.assert_array_equal(fast_len, ref_len)
    blocks = np.convolve(fast, np.ones(4), "valid")
    ref_blocks = np.convolve(ref, np.ones(4), "valid")
    np.testing.assert_allclose(blocks, ref_blocks, rtol=1e-5)


def test_dc_offset_does_not_change_loudness():
    # K-weighting's high-pass removes DC (all that remains is its start-up transient, as in any BS.1770 meter);
    # a plain per-segment spectral shortcut would leak the offset through every segment edge instead.
    x = music_like(8.0, 48000)
    offset = x + np.float32(0.3)
    reference = _gated(*segment_energies(offset, 48000, exact=True))
    assert abs(integrated_loudness(offset, 48000) - reference) < 1e-4
    assert abs(integrated_loudness(offset, 48000) - integrated_loudness(x, 48000)) < 0.01


def test_float64_input_and_mono_vector():
    x = music_like(6.0, 44100, channels=1)
    a = integrated_loudness(x, 44100)
    assert abs(integrated_loudness(x.astype(np.float64), 44100) - a) < 1e-4
    assert integrated_loudness(x[0], 44100) == a


def test_channels_last_view_gives_the_same_result():
    x = music_like(6.0, 44100)
    view = np.ascontiguousarray(x.T).T  # (channels, n) but strided, as from soundfile's (n, channels) array
    assert measure_loudness(view, 44100) == measure_loudness(x, 44100)


# ---------------------------------------------------------------------------------- EBU Tech 3341
@pytest.mark.parametrize(
    ("case", "levels", "expected"),
    [
        (1, [(-23.0, 20.0)], -23.0),
        (2, [(-33.0, 20.0)], -33.0),
        (3, [(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
        (4, [(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),
        (5, [(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
    ],
)
def test_tech3341_integrated(case, levels, expected):
    x = sequence(levels, 48000)
    got = measure_loudness(x, 48000)
    assert abs(got.integrated_lufs - expected) <= 0.1, case
    assert got.replaygain_db == pytest.approx(-18.0 - got.integrated_lufs)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 32000, 44100, 88200, 192000])
def test_tech3341_case1_at_any_rate(sr):
    # 11025 Hz has no whole-sample 100 ms hop and takes the sosfilt path.
    assert abs(integrated_loudness(sine(-23.0, 10.0, sr), sr) - (-23.0)) <= 0.1


def test_tech3341_case6_five_channels_and_51_at_96k_ignores_lfe():
    sr = 96000
    l_r, c, surround = sine(-28.0, 10.0, sr), sine(-24.0, 10.0, sr, channels=1), sine(-30.0, 10.0, sr)
    five = np.vstack([l_r, c, surround])
    assert abs(integrated_loudness(five, sr) - (-23.0)) <= 0.1
    lfe = sine(0.0, 10.0, sr, freq=60.0, channels=1)  # full-scale sub: would dominate if it were counted
    six = np.vstack([l_r, c, lfe, surround])
    loud = measure_loudness(six, sr)
    assert abs(loud.integrated_lufs - integrated_loudness(five, sr)) < 1e-9
    assert loud.true_peak_dbtp == pytest.approx(0.0, abs=0.01)  # ...but the LFE still counts for the peak


# ---------------------------------------------------------------------------------- EBU Tech 3342
@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ([(-20.0, 20.0), (-30.0, 20.0)], 10.0),
        ([(-20.0, 20.0), (-15.0, 20.0)], 5.0),
        ([(-40.0, 20.0), (-20.0, 20.0)], 20.0),
        ([(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
    ],
)
def test_tech3342_loudness_range(levels, expected):
    x = sequence(levels, 48000)
    assert abs(loudness_range(x, 48000) - expected) <= 1.0


def test_loudness_range_near_pyloudnorm_on_music():
    sr = 44100
    x = music_like(24.0, sr)
    ref = pyloudnorm.Meter(sr, filter_class="DeMan").loudness_range(x.T.astype(np.float64))
    # Conventions differ: pyloudnorm hops 90 ms and appends 1.5 s of silence (its fade-out windows add low
    # short-term values); we, like libebur128, take complete 3 s windows every 100 ms.
    assert abs(loudness_range(x, sr) - ref) < 1.0


# ------------------------------------------------------------------------------------------ true peak
def quarter_rate_burst(amp: float, n: int) -> np.ndarray:
    """``amp * sin(pi k / 2 + pi / 4)``: every sample reads +-0.707 amp, the waveform peaks at amp half-way
    between. Raised-cosine fades keep it narrow-band (an abrupt start would ring past amp)."""
    k = np.arange(n)
    fade = np.minimum(1.0, np.minimum(k, n - 1 - k) / (n // 4))
    return amp * np.sin(np.pi * k / 2 + np.pi / 4) * (0.5 - 0.5 * np.cos(np.pi * fade))


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_true_peak_of_quarter_rate_sine_at_45_degrees(sr):
    amp = 0.8
    x = quarter_rate_burst(amp, sr).astype(np.float32)[None, :].repeat(2, axis=0)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(20 * np.log10(amp) - 3.01, abs=0.01)
    assert true_peak(x, sr) == pytest.approx(20 * np.log10(amp), abs=0.02)
    assert measure_loudness(x, sr).true_peak_dbtp == pytest.approx(20 * np.log10(amp), abs=0.02)


def test_true_peak_finds_an_intersample_over_below_the_sample_peak_block():
    """The loudest sample (a slow sine at 1.0) is not where the true peak is (a burst whose samples read 0.92)."""
    sr = 48000
    n = np.arange(4 * sr)
    x = 0.5 * np.sin(2 * np.pi * 100 * n / sr)
    x[sr : sr + 2000] = np.sin(2 * np.pi * 100 * n[:2000] / sr)  # sample peak 1.0, true peak 1.0
    x[3 * sr : 3 * sr + 4000] = quarter_rate_burst(1.3, 4000)  # samples <= 0.919, true peak 1.3
    x = x[None, :].astype(np.float32)
    assert np.abs(x).max() == pytest.approx(1.0, abs=1e-6)
    assert true_peak(x, sr) == pytest.approx(20 * np.log10(1.3), abs=0.02)


def test_true_peak_shortcut_equals_full_oversampling_on_music():
    sr = 44100
    x = np.clip(music_like(12.0, sr) * 3.0, -1.0, 1.0)  # clipped master: many blocks at the ceiling, overs beside
    full = true_peak(x, sr, margin_db=np.inf, max_blocks=10**9)
    assert true_peak(x, sr) == pytest.approx(full, abs=1e-6)
    assert full > 0.0  # clipping at full scale does produce intersample overs


def test_true_peak_matches_dense_fft_interpolation():
    """4x grid vs a 32x band-limited reference: at most the 4x grid's under-read (< 0.2 dB below fs/4)."""
    sr = 48000
    rng = np.random.default_rng(3)
    x = rng.standard_normal(4096)
    spec = np.fft.rfft(x)
    spec[len(spec) // 2 :] = 0  # band-limit to fs/4
    x = (0.5 * np.fft.irfft(spec, 4096) / np.abs(np.fft.irfft(spec, 4096)).max())[None, :]
    dense = scipy.signal.resample(x[0], 32 * 4096)
    ref = 20 * np.log10(np.abs(dense).max())
    assert ref - 0.2 <= true_peak(x, sr) <= ref + 0.02


# ------------------------------------------------------------------------------------- edges and API
def test_silence_gives_none_everywhere():
    got = measure_loudness(np.zeros((2, 10 * 44100), dtype=np.float32), 44100)
    assert got == Loudness(None, None, None, None)


def test_below_absolute_gate_and_too_short():
    quiet = sine(-85.0, 10.0, 44100)
    got = measure_loudness(quiet, 44100)
    assert got.integrated_lufs is None and got.range_lu is None and got.replaygain_db is None
    assert got.true_peak_dbtp == pytest.approx(-85.0, abs=0.05)
    short = measure_loudness(sine(-20.0, 0.3, 44100), 44100)  # shorter than one 400 ms block
    assert short.integrated_lufs is None and short.range_lu is None
    assert short.true_peak_dbtp == pytest.approx(-20.0, abs=0.05)


def test_replaygain_is_minus_18_minus_integrated():
    got = measure_loudness(music_like(8.0, 48000), 48000)
    assert got.replaygain_db == pytest.approx(-18.0 - got.integrated_lufs, abs=1e-12)


@pytest.mark.parametrize(
    ("shape", "sr", "dtype"),
    [
        ((7, 48000), 48000, np.float32),
        ((2, 48000), 4000, np.float32),
        ((2, 48000), 48000, np.int16),
        ((2, 2, 10), 48000, np.float32),
    ],
)
def test_rejects_bad_input(shape, sr, dtype):
    with pytest.raises(CratedigError):
        measure_loudness(np.zeros(shape, dtype=dtype), sr)


def test_rejects_non_finite_samples():
    x = sine(-20.0, 2.0, 44100)
    x[1, 5000] = np.nan
    with pytest.raises(CratedigError):
        measure_loudness(x, 44100)


def levelled_noise(seconds: int, sr: int = 44100) -> np.ndarray:
    """Stereo white noise whose level changes every 100 ms (0.05-0.5 RMS), float32, shape (2, seconds * sr)."""
    rng = np.random.default_rng(7)
    envelope = np.repeat(rng.uniform(0.05, 0.5, size=10 * seconds), sr // 10)
    return rng.standard_normal((2, seconds * sr), dtype=np.float32) * envelope.astype(np.float32)


@contextmanager
def counting_oversampled(module) -> Iterator[list[int]]:
    """Within the block, ``module.interpolated_peak`` appends the samples it oversamples to the list yielded."""
    searched: list[int] = []
    interpolate = module.interpolated_peak

    def counting(x, channels, starts, block):
        searched.append(len(starts) * block)
        return interpolate(x, channels, starts, block)

    with mock.patch.object(module, "interpolated_peak", counting):
        yield searched


def test_true_peak_oversamples_a_small_part_of_a_three_minute_track():
    # The true peak's cost is the samples it oversamples: only the blocks near the sample peak, never the
    # whole track (a count, not a timing: speed itself is measured in bench/, not asserted in tests).
    x = levelled_noise(180)
    with counting_oversampled(true_peak_module) as searched:
        got = measure_loudness(x, 44100)
    assert got.true_peak_dbtp is not None and sum(searched) > 0
    assert sum(searched) <= true_peak_module.TRUE_PEAK_MAX_BLOCKS * true_peak_module._TP_BLOCK
    assert sum(searched) < 0.01 * x.size
