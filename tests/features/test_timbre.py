"""Timbre descriptors: agreement with librosa given the same STFT, and known answers on synthetic signals."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest

import tasks.features.timbre as timbre
from tasks.constants import HOP_LENGTH, N_MFCC, SR
from tasks.errors import CratedigError
from tasks.features.rhythm import danceability, onset_frames
from tasks.features.spectrum import compute_spectrum
from tasks.features.timbre import Timbre, describe_timbre


def _tone(f0: float, dur: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _clicks(times: np.ndarray, dur: float, sr: int, amp: float = 0.8) -> np.ndarray:
    """Decaying noise bursts (5 ms) at ``times`` seconds."""
    rng = np.random.default_rng(1)
    y = np.zeros(int(dur * sr), np.float32)
    n = int(0.005 * sr)
    burst = amp * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.001 * sr))
    for t in times:
        i = int(round(t * sr))
        y[i : i + n] += burst[: len(y[i : i + n])]
    return y


def _music(sr: int, dur: float = 12.0) -> np.ndarray:
    """A non-stationary mix: chords changing every second, a 120 BPM click, noise swells."""
    rng = np.random.default_rng(0)
    n = int(dur * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for i, root in enumerate([220.0, 261.6, 196.0, 174.6] * int(np.ceil(dur / 4))):
        seg = (t >= i) & (t < i + 1)
        for h, ratio in enumerate([1.0, 1.25, 1.5, 2.0]):
            y[seg] += 0.15 / (h + 1) * np.sin(2 * np.pi * root * ratio * t[seg])
    y += 0.05 * rng.standard_normal(n) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    y += _clicks(np.arange(0.25, dur, 0.5), dur, sr)
    return y.astype(np.float32)


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def all_frames(monkeypatch):
    """Use every frame for the contrast, so it must equal librosa's exactly."""
    monkeypatch.setattr(timbre, "_CONTRAST_STRIDE", 1)


@pytest.mark.parametrize("sr", [SR, 44100])
def test_matches_librosa_given_the_same_spectrum(sr, all_frames):
    y = _music(sr)
    sp = compute_spectrum(y, sr=sr)
    tb = describe_timbre(sp, y)
    S = sp.S
    assert tb.spectral_centroid_hz == pytest.approx(librosa.feature.spectral_centroid(S=S, sr=sr).mean(), rel=1e-4)
    assert tb.spectral_bandwidth_hz == pytest.approx(librosa.feature.spectral_bandwidth(S=S, sr=sr).mean(), rel=1e-4)
    assert tb.spectral_rolloff_hz == pytest.approx(librosa.feature.spectral_rolloff(S=S, sr=sr).mean(), rel=1e-3)
    assert tb.spectral_flatness == pytest.approx(librosa.feature.spectral_flatness(S=S).mean(), rel=1e-3)
    np.testing.assert_allclose(
        tb.spectral_contrast, librosa.feature.spectral_contrast(S=S, sr=sr).mean(axis=1), atol=1e-3
    )
    mfcc = librosa.feature.mfcc(S=sp.log_mel, n_mfcc=N_MFCC)
    np.testing.assert_allclose(tb.mfcc_mean, mfcc.mean(axis=1), atol=1e-3 * np.abs(mfcc).max())
    np.testing.assert_allclose(tb.mfcc_std, mfcc.std(axis=1), atol=1e-3 * np.abs(mfcc).max())
    # Not from S in librosa: the waveform and the onset detector.
    assert tb.zero_crossing_rate == pytest.approx(librosa.feature.zero_crossing_rate(y).mean(), rel=0.01)
    assert tb.rms == pytest.approx(librosa.feature.rms(y=y).mean(), rel=0.03)
    n_onsets = len(librosa.onset.onset_detect(onset_envelope=sp.onset_envelope, sr=sr, hop_length=HOP_LENGTH))
    assert tb.onset_rate == pytest.approx(n_onsets / (len(y) / sr))


def test_subsampled_contrast_stays_close_to_librosa():
    y = _music(SR, dur=30.0)
    sp = compute_spectrum(y)
    tb = describe_timbre(sp, y)
    np.testing.assert_allclose(
        tb.spectral_contrast, librosa.feature.spectral_contrast(S=sp.S, sr=SR).mean(axis=1), atol=0.5
    )


def test_onset_peak_picking_matches_librosa_on_an_irregular_envelope():
    env = np.random.default_rng(3).gamma(0.5, size=3000).astype(np.float32)
    ours = onset_frames(env, sr=SR, hop_length=HOP_LENGTH)
    np.testing.assert_array_equal(ours, librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=HOP_LENGTH))


@pytest.mark.parametrize("f0", [440.0, 1000.0, 3000.0])
def test_sine_known_answers(f0):
    y = _tone(f0, 5.0, SR, amp=0.5)
    tb = describe_timbre(compute_spectrum(y), y)
    assert tb.spectral_centroid_hz == pytest.approx(f0, rel=0.01)
    assert tb.spectral_bandwidth_hz < 60.0  # Hann main lobe: a few bins of 10.8 Hz
    assert abs(tb.spectral_rolloff_hz - f0) < 2 * SR / 2048
    assert tb.spectral_flatness < 1e-3
    assert tb.zero_crossing_rate == pytest.approx(2 * f0 / SR, rel=0.01)
    assert tb.rms == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert tb.onset_rate < 0.5


def test_white_noise_known_answers():
    y = (0.1 * np.random.default_rng(0).standard_normal(10 * SR)).astype(np.float32)
    tb = describe_timbre(compute_spectrum(y), y)
    assert tb.spectral_centroid_hz == pytest.approx(SR / 4, rel=0.02)
    assert tb.spectral_rolloff_hz == pytest.approx(0.85 * SR / 2, rel=0.02)
    # Periodogram bins of Gaussian noise are exponential: geometric/arithmetic mean = exp(-Euler gamma).
    assert tb.spectral_flatness == pytest.approx(np.exp(-np.euler_gamma), rel=0.05)
    assert tb.zero_crossing_rate == pytest.approx(0.5, rel=0.02)
    assert tb.rms == pytest.approx(0.1, rel=0.02)
    assert tb.danceability < 0.1


def test_silence_gives_finite_zeros():
    y = np.zeros(10 * SR, np.float32)
    tb = describe_timbre(compute_spectrum(y), y)
    assert isinstance(tb, Timbre)
    assert tb.mfcc_mean.shape == (N_MFCC,) and tb.mfcc_std.shape == (N_MFCC,)
    assert tb.spectral_contrast.shape == (7,)
    for name, value in vars(tb).items():
        assert np.all(np.isfinite(value)), name
        assert np.all(np.asarray(value) == 0), name


def test_surrounding_silence_does_not_change_spectral_shape():
    y = _music(SR, dur=8.0)
    padded = np.concatenate([np.zeros(3 * SR, np.float32), y, np.zeros(5 * SR, np.float32)])
    a = describe_timbre(compute_spectrum(y), y)
    b = describe_timbre(compute_spectrum(padded), padded)
    for name in ("spectral_centroid_hz", "spectral_bandwidth_hz", "spectral_rolloff_hz"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=0.02), name
    np.testing.assert_allclose(b.mfcc_mean, a.mfcc_mean, atol=0.03 * np.abs(a.mfcc_mean).max())
    assert b.rms < a.rms  # RMS is a level, not a shape: silence lowers it


def test_very_short_and_empty_inputs():
    for n in (0, 1, 100, 2048):
        y = _tone(440.0, n / SR, SR) if n else np.zeros(0, np.float32)
        tb = describe_timbre(compute_spectrum(y), y)
        assert all(np.all(np.isfinite(v)) for v in vars(tb).values())


def test_onset_rate_of_a_click_train():
    dur = 20.0
    y = _clicks(np.arange(0.1, dur, 0.25), dur, SR)  # 4 clicks per second
    y += (0.01 * np.random.default_rng(2).standard_normal(len(y))).astype(np.float32)
    tb = describe_timbre(compute_spectrum(y), y)
    assert tb.onset_rate == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("bpm", [95.0, 120.0, 128.0, 174.0])
def test_danceability_of_a_metronome_is_high(bpm):
    dur = 30.0
    y = _clicks(np.arange(0.1, dur, 60.0 / bpm), dur, SR)
    y += (0.01 * np.random.default_rng(2).standard_normal(len(y))).astype(np.float32)
    assert describe_timbre(compute_spectrum(y), y).danceability > 0.7


def test_danceability_falls_with_timing_irregularity():
    dur, bpm = 30.0, 120.0
    rng = np.random.default_rng(4)
    grid = np.arange(0.2, dur - 0.2, 60.0 / bpm)
    scores = []
    for jitter_s in (0.0, 0.03, 0.08):
        y = _clicks(grid + rng.uniform(-jitter_s, jitter_s, len(grid)), dur, SR)
        scores.append(describe_timbre(compute_spectrum(y), y).danceability)
    random_times = np.sort(rng.uniform(0.1, dur - 0.1, len(grid)))
    y = _clicks(random_times, dur, SR)
    scores.append(describe_timbre(compute_spectrum(y), y).danceability)
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] < 0.25


def test_danceability_edge_cases():
    assert danceability(np.zeros(5000)) == 0.0
    assert danceability(np.ones(50)) == 0.0  # shorter than two slowest beats
    assert danceability(np.full(5000, np.nan)) == 0.0


def test_rejects_multichannel_audio():
    y = np.zeros((2, SR), np.float32)
    with pytest.raises(CratedigError, match="shape"):
        describe_timbre(compute_spectrum(y[0]), y)
