"""Key, tuning and chroma on synthesized signals with known answers; key notation and MIREX scoring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tasks.constants import SR
from tasks.errors import CratedigError
from tasks.features.key.estimate import KeyEstimate, _estimate, _Params, _solo_frames, estimate_key
from tasks.features.key.names import KEY_NAMES, KeyNameError, camelot, mirex_score, open_key
from tasks.features.key.partials import HARMONIC_ROWS, attribute_partials
from tasks.features.spectrum import Spectrum, compute_spectrum

PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# The Camelot wheel as DJ software prints it (reference chart, flats as usually written there).
CAMELOT_CHART = {
    "1A": "Ab minor",
    "1B": "B major",
    "2A": "Eb minor",
    "2B": "F# major",
    "3A": "Bb minor",
    "3B": "Db major",
    "4A": "F minor",
    "4B": "Ab major",
    "5A": "C minor",
    "5B": "Eb major",
    "6A": "G minor",
    "6B": "Bb major",
    "7A": "D minor",
    "7B": "F major",
    "8A": "A minor",
    "8B": "C major",
    "9A": "E minor",
    "9B": "G major",
    "10A": "B minor",
    "10B": "D major",
    "11A": "F# minor",
    "11B": "A major",
    "12A": "Db minor",
    "12B": "E major",
}


def _note(
    midi: float, dur: float, *, sr: int, cents: float = 0.0, partials: tuple[float, ...] | None = None
) -> np.ndarray:
    """Harmonic tone with short fades: partial k at ``partials[k - 1]`` (default 1/k up to 6, a soft sawtooth)."""
    f0 = 440.0 * 2 ** ((midi - 69 + cents / 100) / 12)
    t = np.arange(int(dur * sr)) / sr
    phase = 2 * np.pi * f0 * t
    amps = partials if partials is not None else tuple(1.0 / k for k in range(1, 7))
    y = sum(a * np.sin(k * phase) for k, a in enumerate(amps, 1) if a and k * f0 < 0.45 * sr)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return y * fade


def _spectrum_of(y: np.ndarray) -> Spectrum:
    """The shared STFT of ``y`` scaled to peak at 0.5, as float32 audio."""
    return compute_spectrum((0.5 * y / np.abs(y).max()).astype(np.float32))


def _cadence(tonic: int, mode: str, *, sr: int = SR, cents: float = 0.0) -> np.ndarray:
    """I-IV-V-I (minor: i-iv-V-i, harmonic-minor dominant) in close position over a bass line, 1 s per chord."""
    third = 4 if mode == "major" else 3
    sixth = 9 if mode == "major" else 8
    chords = [(0, third, 7), (0, 5, sixth), (-1, 2, 7), (0, third, 7)]
    roots = [0, 5, 7, 0]
    base = 60 + tonic
    out = []
    for chord, root in zip(chords, roots):
        y = sum(_note(base + p, 1.0, sr=sr, cents=cents) for p in chord)
        y = y + 0.8 * _note(base - 24 + root, 1.0, sr=sr, cents=cents)
        out.append(y)
    y = np.concatenate(out)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _scale(tonic: int, mode: str, *, sr: int = SR) -> np.ndarray:
    """Ascending and descending scale (minor: harmonic minor) over a soft tonic drone, 0.25 s per note."""
    steps = (0, 2, 4, 5, 7, 9, 11, 12) if mode == "major" else (0, 2, 3, 5, 7, 8, 11, 12)
    melody = list(steps) + list(steps[::-1])
    base = 60 + tonic
    y = np.concatenate([_note(base + s, 0.25, sr=sr) for s in melody])
    y = y + 0.5 * _note(base - 12, len(y) / sr, sr=sr)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _key(tonic: int, mode: str) -> str:
    return f"{PITCHES[tonic]} {mode}"


ALL_KEYS = [(t, m) for m in ("major", "minor") for t in range(12)]


@pytest.mark.parametrize(("tonic", "mode"), ALL_KEYS)
def test_cadence_in_every_key(tonic: int, mode: str) -> None:
    est = estimate_key(compute_spectrum(_cadence(tonic, mode)))
    assert est.key == _key(tonic, mode)
    assert abs(est.tuning_cents) < 5.0
    assert 0.0 < est.confidence <= 1.0


@pytest.mark.parametrize(("tonic", "mode"), ALL_KEYS)
def test_scale_in_every_key(tonic: int, mode: str) -> None:
    assert estimate_key(compute_spectrum(_scale(tonic, mode))).key == _key(tonic, mode)


@pytest.mark.parametrize(("tonic", "mode"), [(2, "major"), (9, "minor"), (11, "minor")])
def test_synth_chord_tone(tonic: int, mode: str) -> None:
    from tasks.synth.voices import chord_tone

    est = estimate_key(compute_spectrum(chord_tone(tonic, mode, duration_s=3.0, sr=SR)))
    assert est.key == _key(tonic, mode)


@pytest.mark.parametrize("cents", [30.0, -20.0, 45.0])
def test_detuned_signal_gives_tuning_and_key(cents: float) -> None:
    est = estimate_key(compute_spectrum(_cadence(7, "major", cents=cents)))
    assert est.tuning_cents == pytest.approx(cents, abs=3.0)
    assert est.key == "G major"


@pytest.mark.parametrize("sr", [SR, 44100])
def test_other_sample_rates(sr: int) -> None:
    n_fft = 2048 if sr == SR else 4096
    est = estimate_key(compute_spectrum(_cadence(3, "minor", sr=sr), sr=sr, n_fft=n_fft, hop_length=n_fft // 4))
    assert est.key == "D# minor"


def test_chroma_shape_and_peak() -> None:
    est = estimate_key(compute_spectrum(_cadence(9, "minor")))
    assert isinstance(est, KeyEstimate)
    assert est.chroma.shape == (12,) and est.chroma.dtype == np.float32
    assert est.chroma.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(est.chroma)) in (9, 4)  # tonic or fifth of A minor dominates
    assert est.camelot == "8A" and est.open_key == "1m"


#: A clarinet's partials: odd ones only and strong (its 3rd and 5th are a fifth and a third above the note).
CLARINET = (1.0, 0.0, 0.8, 0.0, 0.6, 0.0, 0.35)


@pytest.mark.parametrize("tonic", [55, 58, 62, 65])
def test_solo_clarinet_tune_reads_its_tonic_not_the_mediant(tonic: int) -> None:
    # A reel-like tune in 8ths on the tonic triad, no 4th degree (as in many fiddle tunes). With the geometric
    # removal of analyzer version 15 and no solo frames, the partials (the tonic's 5th is its major third) read it
    # as the minor key on its third (D major -> F# minor). Solo frames read it right, and so does the attribution
    # of partials on its own: both are checked.
    phrase = [0, 4, 7, 4, 0, 4, 7, 12, 9, 7, 4, 2, 4, 7, 4, 0, -1, 2, 4, 2, -1, 2, -3, -1, 0, 4, 7, 9, 7, 4, 2, 0]
    y = np.concatenate([_note(tonic + s, 0.2, sr=SR, partials=CLARINET) for s in phrase * 4])
    spectrum = _spectrum_of(y)
    want = _key(tonic % 12, "major")
    assert estimate_key(spectrum).key == want
    assert _estimate(spectrum, replace(_Params(), harmonics="geometric", solo=True)).key == want
    assert _estimate(spectrum, replace(_Params(), solo=False)).key == want
    assert _estimate(spectrum, replace(_Params(), harmonics="geometric", solo=False)).key != want  # the old failure


def test_solo_frames_are_one_note_above_the_bass_register() -> None:
    # Semitone rows from A1 (55 Hz, 36 semitones under A440); frames: a note with its partials (A3, 220 Hz),
    # a triad (A3 C#4 E4), the same A3 with a quiet other note 30 dB down, and a lone bass note (A2, 110 Hz).
    lo, P = -36, np.zeros((60, 4))
    a3 = 24
    for h, off in ((1, 0), (2, 12), (3, 19), (4, 24), (5, 28)):
        P[a3 + off, [0, 2]] = 1.0 / h
        P[a3 - 12 + off, 3] = 1.0 / h
    P[[a3, a3 + 4, a3 + 7], 1] = 1.0
    P[a3 + 1, 2] = 10 ** (-30 / 20)
    solo, note = _solo_frames(P, lo, _Params())
    assert solo.tolist() == [0, 2]
    assert note.tolist() == [a3, a3]


#: A double reed's partials (oboe, bassoon, also many sung and bowed low notes): the fundamental 10 dB under
#: the 2nd and 3rd partials.
REED = (0.3, 1.0, 1.0, 0.7, 0.5, 0.35, 0.25, 0.15)


@pytest.mark.parametrize("tonic", [0, 3, 7, 10])
def test_reed_chords_read_the_tonic_not_the_dominant(tonic: int) -> None:
    # I-V-I-V-I in close position over the roots, every voice a reed. When each note's partials were removed in
    # proportion to its (weak) fundamental, the 3rd partials of the V chord's B and D (F#, A) stayed and the
    # progression read as the dominant's key.
    base, out = 60 + tonic, []
    for chord, root in [((0, 4, 7), 0), ((-1, 2, 7), 7)] * 2 + [((0, 4, 7), 0)]:
        y = sum(_note(base + p, 1.0, sr=SR, partials=REED) for p in chord)
        out.append(y + 0.8 * _note(base - 24 + root, 1.0, sr=SR, partials=REED))
    y = np.concatenate(out)
    est = estimate_key(_spectrum_of(y))
    assert est.key == _key(tonic, "major")


@pytest.mark.parametrize("tonic", list(range(60, 72)))
def test_clarinets_in_thirds_read_the_major_key_not_its_relative_minor(tonic: int) -> None:
    # A tune over a second clarinet a diatonic third below. With partials taken by their neighbours h-1 and h+1
    # only, a clarinet's strong odd partials (its even ones are weak) stood out and stayed, and these read as
    # the relative minor (in 3 of these 12 keys).
    steps = (0, 2, 4, 5, 7, 9, 11)
    tune = [0, 0, 4, 4, 5, 5, 4, 3, 3, 2, 2, 1, 1, 0, 4, 4, 3, 3, 2, 2, 1, 4, 4, 3, 3, 2, 2, 1] * 2
    semis = [(12 * (s // 7) + steps[s % 7], 12 * ((s - 2) // 7) + steps[(s - 2) % 7]) for s in tune]
    y = np.concatenate(
        [
            _note(tonic + a, 0.3, sr=SR, partials=CLARINET) + 0.8 * _note(tonic + b, 0.3, sr=SR, partials=CLARINET)
            for a, b in semis
        ]
    )
    est = estimate_key(_spectrum_of(y))
    assert est.key == _key(tonic % 12, "major")


def test_partials_go_to_their_note_unless_another_note_stands_out() -> None:
    # Rows = semitones; frames: a reed note alone (A3 at row 24), the same with a second note as loud as its
    # partials on its 3rd partial's semitone (E5), and the upper partials with no fundamental.
    a3, e5 = 24, 24 + 19
    P = np.zeros((72, 3))
    for h, off in enumerate(HARMONIC_ROWS):
        P[a3 + off, :2] = REED[h]
        P[a3 + off, 2] = REED[h] if h else 0.0
    P[e5, 1] += 1.0
    before = P.copy()
    out = attribute_partials(P.copy())
    assert out.sum(axis=0) == pytest.approx(before.sum(axis=0))  # energy is moved, not lost
    a_class = out[[a3 + o for o in (0, 12, 24, 36)]].sum(axis=0) / out.sum(axis=0)
    assert a_class[0] > 0.9 > before[[a3 + o for o in (0, 12, 24, 36)], 0].sum() / before[:, 0].sum()
    assert out[e5, 1] >= 1.0  # the other note keeps what stands out above the partials' neighbours
    assert out[a3, 2] == 0.0  # no fundamental, nothing attributed to it


def test_odd_partials_go_to_a_clarinet_note_only_with_odd() -> None:
    # A clarinet note (A3 at row 24): strong 3rd, 5th and 7th partials, nothing on the even ones. Their
    # neighbours h-1 and h+1 are empty, so only the neighbours h-2 and h+2 attribute them to the note.
    a3 = 24
    P = np.zeros((72, 1))
    for h, off in enumerate(HARMONIC_ROWS[: len(CLARINET)]):
        P[a3 + off, 0] = CLARINET[h]
    with_odd, without = attribute_partials(P, odd=True), attribute_partials(P, odd=False)
    assert without[a3 + 19, 0] == CLARINET[2] and without[a3 + 28, 0] == CLARINET[4]
    assert with_odd[a3 + 19, 0] == 0.0 and with_odd[a3 + 28, 0] < 0.05 * CLARINET[4]
    assert with_odd.sum() == pytest.approx(P.sum())
    with pytest.raises(ValueError, match="whole octaves"):
        attribute_partials(np.zeros((30, 2)))


def test_unknown_harmonics_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="harmonics"):
        _estimate(compute_spectrum(_cadence(0, "major")), replace(_Params(), harmonics="smoth"))


def test_silence_has_no_key() -> None:
    est = estimate_key(compute_spectrum(np.zeros(3 * SR, dtype=np.float32)))
    assert est.key is None and est.camelot is None and est.open_key is None
    assert est.confidence == 0.0
    assert np.all(est.chroma == 0) and est.chroma.shape == (12,)


def test_noise_has_no_key() -> None:
    y = np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32) * 0.1
    assert estimate_key(compute_spectrum(y)).key is None


def test_camelot_chart() -> None:
    for code, key in CAMELOT_CHART.items():
        assert camelot(key) == code
    codes = [camelot(k) for k in KEY_NAMES]
    assert sorted(codes) == sorted(CAMELOT_CHART)  # a bijection onto the 24 codes


def test_camelot_neighbours() -> None:
    for tonic in range(12):
        maj, rel = _key(tonic, "major"), _key((tonic + 9) % 12, "minor")
        fifth = _key((tonic + 7) % 12, "major")
        assert camelot(maj)[:-1] == camelot(rel)[:-1]  # relative keys share the number
        assert int(camelot(fifth)[:-1]) == int(camelot(maj)[:-1]) % 12 + 1  # a fifth up = one step


def test_open_key() -> None:
    known = {
        "C major": "1d",
        "A minor": "1m",
        "G major": "2d",
        "E minor": "2m",
        "F major": "12d",
        "D minor": "12m",
        "F# major": "7d",
        "Eb minor": "7m",
        "B major": "6d",
        "Db major": "8d",
    }
    for key, code in known.items():
        assert open_key(key) == code
    for key in KEY_NAMES:  # Open Key is the Camelot wheel turned by 7 steps
        c, o = camelot(key), open_key(key)
        assert (int(c[:-1]) - 7 - int(o[:-1])) % 12 == 0
        assert (c[-1], o[-1]) in (("A", "m"), ("B", "d"))


def test_enharmonic_names() -> None:
    assert camelot("Db major") == camelot("C# major") == "3B"
    assert open_key("A# minor") == open_key("Bb minor")
    assert KEY_NAMES[1] == "C# major" and KEY_NAMES[12] == "C minor" and len(set(KEY_NAMES)) == 24


@pytest.mark.parametrize(
    ("est", "ref", "score"),
    [
        ("C major", "C major", 1.0),
        ("A# major", "Bb major", 1.0),
        ("G major", "C major", 0.5),  # fifth above
        ("E minor", "A minor", 0.5),
        ("F major", "C major", 0.0),  # fifth below: not counted by default (as mir_eval)
        ("A minor", "C major", 0.3),  # relative minor
        ("C major", "A minor", 0.3),  # relative major
        ("C minor", "C major", 0.2),  # parallel
        ("C major", "C minor", 0.2),
        ("F# major", "C major", 0.0),
        ("C# minor", "C major", 0.0),
    ],
)
def test_mirex_score(est: str, ref: str, score: float) -> None:
    assert mirex_score(est, ref) == score


def test_mirex_descending_fifth() -> None:
    assert mirex_score("F major", "C major", allow_descending_fifths=True) == 0.5


@pytest.mark.parametrize("bad", ["H major", "C dorian", "Cmajor", ""])
def test_bad_key_name(bad: str) -> None:
    with pytest.raises(KeyNameError) as err:
        camelot(bad)
    assert isinstance(err.value, CratedigError) and isinstance(err.value, ValueError)


def test_every_notation_reads_back_as_its_key_name():
    from tasks.features.key.names import KEY_NAMES, STANDARD_KEYS, camelot, key_index, key_name, open_key, standard_key

    assert len(set(STANDARD_KEYS)) == 24 and all(len(k) <= 3 for k in STANDARD_KEYS)  # ID3 TKEY: 3 characters
    for i, name in enumerate(KEY_NAMES):
        assert key_index(name) == i
        for text in (name, standard_key(name), camelot(name), open_key(name), name.replace(" minor", " min")):
            assert key_name(text) == name, text
    assert key_name("Bbm") == key_name("A# minor") == "A# minor" and standard_key("A# minor") == "Bbm"
    assert (key_index("C major"), key_index("A minor"), key_index("B minor")) == (0, 21, 23)  # Traktor's numbers
    for bad in ("H", "13A", "0d", "A mixolydian", ""):
        with pytest.raises(KeyNameError):
            key_name(bad)
