"""The similarity embedding: layout, finiteness with missing values, and the distances it promises."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.constants import N_MFCC, SR
from tasks.errors import CratedigError
from tasks.features.embedding import EMBEDDING_DIM, EMBEDDING_GROUPS, EMBEDDING_VERSION, build_embedding
from tasks.features.spectrum import compute_spectrum
from tasks.features.timbre import describe_timbre

# Krumhansl-Kessler profiles (tonic first): realistic chroma for a track in a given key.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PCS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def _chroma(key: str) -> list[float]:
    tonic, mode = key.split()
    profile = np.roll(_MAJOR if mode == "major" else _MINOR, _PCS.index(tonic))
    return list(profile / profile.sum())


def _row(**overrides) -> dict:
    rng = np.random.default_rng(0)
    row = {
        "mfcc_mean": list(rng.normal(0, 30, N_MFCC)),
        "mfcc_std": list(np.abs(rng.normal(40, 10, N_MFCC))),
        "spectral_contrast": [20.0, 17.0, 21.0, 21.0, 23.0, 24.0, 48.0],
        "spectral_centroid_hz": 1500.0,
        "spectral_bandwidth_hz": 1700.0,
        "spectral_rolloff_hz": 3000.0,
        "spectral_flatness": 0.004,
        "zero_crossing_rate": 0.06,
        "onset_rate": 2.5,
        "danceability": 0.6,
        "pulse_clarity": 0.5,
        "bpm": 124.0,
        "chroma_mean": _chroma("A minor"),
        "key": "A minor",
        "loudness_lufs": -9.0,
        "loudness_range_lu": 6.0,
    }
    row.update(overrides)
    return row


def _dist(a: dict, b: dict, group: str | None = None) -> float:
    sl = EMBEDDING_GROUPS[group] if group else slice(None)
    return float(np.linalg.norm(build_embedding(a)[sl] - build_embedding(b)[sl]))


def test_layout():
    assert isinstance(EMBEDDING_VERSION, int) and EMBEDDING_VERSION >= 1
    assert list(EMBEDDING_GROUPS) == ["timbre", "spectral", "rhythm", "tonality", "loudness"]
    covered = np.zeros(EMBEDDING_DIM, int)
    for sl in EMBEDDING_GROUPS.values():
        assert sl.step is None and 0 <= sl.start < sl.stop <= EMBEDDING_DIM
        covered[sl] += 1
    assert np.all(covered == 1)  # every position in exactly one group
    v = build_embedding(_row())
    assert v.shape == (EMBEDDING_DIM,) and v.dtype == np.float32 and np.all(np.isfinite(v))


def test_deterministic_and_does_not_mutate_the_row():
    row = _row()
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in row.items()}
    np.testing.assert_array_equal(build_embedding(row), build_embedding(row))
    assert row == before


@pytest.mark.parametrize(
    "missing",
    [
        "bpm",
        "key",
        "loudness_lufs",
        "loudness_range_lu",
        "chroma_mean",
        "mfcc_mean",
        "spectral_flatness",
        "pulse_clarity",
    ],
)
def test_none_values_give_finite_neutral_values(missing):
    v = build_embedding(_row(**{missing: None}))
    assert v.shape == (EMBEDDING_DIM,) and np.all(np.isfinite(v))
    absent = _row()
    del absent[missing]
    np.testing.assert_array_equal(build_embedding(absent), v)  # absent key = None


def test_everything_missing_or_non_finite():
    assert np.all(build_embedding({}) == 0)
    row = _row(
        bpm=float("nan"),
        loudness_lufs=float("-inf"),
        spectral_centroid_hz=float("inf"),
        mfcc_mean=[float("nan")] * N_MFCC,
        spectral_flatness=0.0,
        zero_crossing_rate=0.0,
    )
    v = build_embedding(row)
    assert np.all(np.isfinite(v)) and np.all(np.abs(v) <= 8)


def test_missing_bpm_does_not_look_like_a_slow_or_fast_tempo():
    rhythm = EMBEDDING_GROUPS["rhythm"]
    none = build_embedding(_row(bpm=None))[rhythm]
    distances = [np.linalg.norm(build_embedding(_row(bpm=b))[rhythm] - none) for b in (70, 90, 120, 150, 180)]
    assert max(distances) - min(distances) < 0.5 * max(distances)  # about equally far from every tempo
    assert _dist(_row(bpm=None), _row(bpm=1.0), "rhythm") > 0.5  # and not the same as a tiny tempo


def test_close_tempi_are_close():
    assert _dist(_row(bpm=120.0), _row(bpm=121.0), "rhythm") < 0.1
    assert _dist(_row(bpm=120.0), _row(bpm=121.0)) < _dist(_row(bpm=120.0), _row(bpm=150.0))
    # Half time is nearer than an unrelated tempo, but not identical.
    assert 0 < _dist(_row(bpm=70.0), _row(bpm=140.0), "rhythm") < _dist(_row(bpm=120.0), _row(bpm=160.0), "rhythm")


@pytest.mark.parametrize(
    "key, relative, tritone",
    [
        ("A minor", "C major", "D# minor"),
        ("C major", "A minor", "F# major"),
        ("F# minor", "A major", "C minor"),
        ("Bb major", "G minor", "E major"),
    ],
)
def test_relative_keys_are_closer_than_tritones(key, relative, tritone):
    def row(k: str) -> dict:
        return _row(key=k, chroma_mean=_chroma(k.replace("Bb", "A#")))

    assert _dist(row(key), row(relative), "tonality") < _dist(row(key), row(tritone), "tonality")
    # The key position alone: relative keys differ only by the small mode offset.
    pos = slice(EMBEDDING_GROUPS["tonality"].start, EMBEDDING_GROUPS["tonality"].start + 3)
    assert np.linalg.norm(build_embedding(row(key))[pos] - build_embedding(row(relative))[pos]) == pytest.approx(0.5)


def test_key_spellings():
    np.testing.assert_array_equal(build_embedding(_row(key="Bb minor")), build_embedding(_row(key="A# minor")))
    np.testing.assert_array_equal(build_embedding(_row(key="c min")), build_embedding(_row(key="C minor")))
    with pytest.raises(CratedigError, match="key"):
        build_embedding(_row(key="H dorian"))


def test_wrong_array_length_is_an_error():
    with pytest.raises(CratedigError, match="mfcc_mean"):
        build_embedding(_row(mfcc_mean=[0.0] * 13))
    with pytest.raises(CratedigError, match="chroma_mean"):
        build_embedding(_row(chroma_mean=[1.0] * 24))


def test_values_from_real_features_are_order_one():
    """Rows built from analysed signals land in a comparable range, not in Hz or dB."""
    t = np.arange(10 * SR) / SR
    signals = {
        "sine": 0.5 * np.sin(2 * np.pi * 440 * t),
        "noise": 0.1 * np.random.default_rng(0).standard_normal(len(t)),
        "silence": np.zeros(len(t)),
    }
    for name, y in signals.items():
        y = y.astype(np.float32)
        tb = describe_timbre(compute_spectrum(y), y)
        row = _row(**{k: (list(v) if isinstance(v, np.ndarray) else v) for k, v in vars(tb).items()})
        v = build_embedding(row)
        assert np.all(np.isfinite(v)), name
        if name != "silence":
            assert np.percentile(np.abs(v), 90) < 4, name
