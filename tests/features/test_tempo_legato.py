"""The pitch onsets and their pulse: the rhythm of music whose attacks are too soft for the onset flux, and
nothing for held tones that beat or waver, or notes at random times."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.constants import HOP_LENGTH, SR
from tasks.features.spectrum import compute_spectrum
from tasks.features.tempo import legato
from tasks.features.tempo.envelopes import (
    PITCH_HISTORY,
    PITCH_HOLD,
    frame_mean_square,
    harmonic_change,
    onset_bands,
    pitch_onsets,
    pitch_spectrum_db,
)
from tasks.features.tempo.estimate import tempo_from_envelopes
from tasks.features.tempo.legato import (
    MIN_BEAT_COVERAGE,
    MIN_NEW_SHARE,
    MIN_STEADY_CONTRAST,
    beat_coverage,
    legato_pulse,
    steady_contrast,
)
from tasks.synth.voices import chord_tone, midi_hz, tone, tremulant_chord
from tests.features.tempo_signals import CADENCE_CHORDS
from tests.features.tempo_signals import organ as _organ

FR = SR / HOP_LENGTH


def _chord_changes(bpm: float, beats: int) -> np.ndarray:
    n = int(round(60.0 / bpm * SR))
    y = np.concatenate([_organ(list(CADENCE_CHORDS[i % len(CADENCE_CHORDS)]), n, attack_s=0.2) for i in range(beats)])
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _new_share(y: np.ndarray) -> float:
    p = pitch_onsets(compute_spectrum(y))
    return float(p[1].mean() / p[0].mean())


def test_pitch_onsets_block_by_block_are_the_whole_track() -> None:
    from tasks.features.blocks import SpectrumStream
    from tasks.features.tempo.envelopes import pitch_rise

    y = _chord_changes(80.0, 16)
    whole = pitch_onsets(compute_spectrum(y))
    for block_frames in (PITCH_HOLD - 5, PITCH_HISTORY - 30, 150):
        stream, parts, last = SpectrumStream(block_frames=block_frames), [], None
        for spec in [*stream.feed(y[:30_001]), *stream.feed(y[30_001:]), *stream.finish()]:
            db = pitch_spectrum_db(spec)
            parts.append(pitch_rise(db, previous=last))
            db = db if last is None else np.concatenate([last, db], axis=1)
            last = db[:, -PITCH_HISTORY:]
        np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-4)


def test_new_notes_rise_over_the_held_level_beating_tones_do_not() -> None:
    # A pad of sines a semitone apart beats: its pitch bands rise and fall all the time, over no new level.
    held = _new_share(chord_tone(0, "major", duration_s=20.0))
    moving = _new_share(_chord_changes(72.0, 24))
    assert held < MIN_NEW_SHARE < moving
    # The chords' new notes enter from far under their bands' level: nearly all of their rise is fresh.
    p = pitch_onsets(compute_spectrum(_chord_changes(72.0, 24)))
    assert p[2].mean() / p[1].mean() >= max(legato.MIN_FRESH_SHARE, 0.85)


def _tremulant(rate_hz: float, seconds: float = 30.0, root: int = 52) -> np.ndarray:
    y = tremulant_chord(root, rate_hz, int(seconds * SR), SR, 0.1 * np.arange(5))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("rate_hz", [1.1, 1.5])
def test_held_partials_that_swell_on_a_steady_rate_are_not_fresh_notes(rate_hz: float) -> None:
    # Each swell lifts the two voices' bands over their level of the last 279 ms, as a new note would, on a
    # rate held through the track: every other test of the pitch pulse passes it.
    spec = compute_spectrum(_tremulant(rate_hz))
    pitch = pitch_onsets(spec)
    assert pitch[1].mean() / pitch[0].mean() >= MIN_NEW_SHARE
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(legato, "MIN_FRESH_SHARE", 0.0)
        swell = legato_pulse(pitch, spec.frame_rate, change=harmonic_change(spec))
        assert swell is not None and 60.0 * swell.pulse.freq == pytest.approx(60.0 * rate_hz, rel=0.03)
    # But the bands come back from a few dB under their level, never from far under it as a note that enters.
    assert pitch[2].mean() / pitch[1].mean() < 0.5 * legato.MIN_FRESH_SHARE
    assert legato_pulse(pitch, spec.frame_rate, change=harmonic_change(spec)) is None


def _pitch_envelopes(row0: np.ndarray, new_share: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Onsets and harmonic change at chance level (soft attacks, slow harmony), the given pitch rise."""
    rng = np.random.default_rng(seed)
    n = len(row0)
    bands = np.abs(rng.standard_normal((4, n))).astype(np.float32)
    change = np.abs(rng.standard_normal(n)).astype(np.float32)
    pitch = np.vstack([row0, new_share * row0, new_share * row0]).astype(np.float32)  # every new note enters
    return bands, np.full(n, 0.05, np.float32), change, pitch


def _beat_bumps(bpm: float, seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * FR)) / FR
    beat = np.exp(-(((t * bpm / 60.0 + 0.5) % 1.0 - 0.5) ** 2) / (2 * 0.05**2))
    return 0.6 * beat + 0.4 * np.abs(np.random.default_rng(seed).standard_normal(len(t)))


@pytest.mark.parametrize(("bpm", "new_share"), [(66.0, 0.3), (104.0, 0.3), (71.0, 0.15)])
def test_pitch_pulse_keeps_legato_music_rhythmic(bpm: float, new_share: float) -> None:
    # 0.15: a choir whose new notes are under a fifth of its pitch rise (two of the dev set's were ARHYTHMIC).
    bands, ms, change, pitch = _pitch_envelopes(_beat_bumps(bpm), new_share)
    assert tempo_from_envelopes(bands, ms, change, frame_rate=FR).reason == "ARHYTHMIC"  # no pitch onsets
    est = tempo_from_envelopes(bands, ms, change, frame_rate=FR, bpm_range=(55.0, 150.0), pitch=pitch)
    # The pulse is found; with onsets of pure noise the octave model has nothing to choose a level on.
    assert est.reason is None and est.pulse_clarity > 0.18
    assert any(b == pytest.approx(bpm, abs=0.5) for b, _ in est.candidates)
    # The same pulse made by held tones (no new notes) stays arhythmic.
    bands, ms, change, pitch = _pitch_envelopes(_beat_bumps(bpm), 0.05)
    assert tempo_from_envelopes(bands, ms, change, frame_rate=FR, pitch=pitch).reason == "ARHYTHMIC"


def test_notes_at_random_times_have_no_pitch_pulse() -> None:
    rng = np.random.default_rng(3)
    row0 = 0.2 * np.abs(rng.standard_normal(int(30 * FR)))
    hits = np.cumsum(rng.exponential(0.45 * FR, 100)).astype(int)
    row0[hits[hits < len(row0)]] += 3.0
    bands, ms, change, pitch = _pitch_envelopes(row0, 0.3)
    assert tempo_from_envelopes(bands, ms, change, frame_rate=FR, pitch=pitch).reason == "ARHYTHMIC"


@pytest.mark.parametrize("kind", ["pad", "drone", "free"])
def test_held_tones_and_free_time_get_no_legato_pulse(kind: str) -> None:
    rng = np.random.default_rng(7)
    n = 30 * SR
    if kind == "pad":
        y = chord_tone(6, "minor", duration_s=30.0)  # the pad whose beating pulses most clearly
    elif kind == "drone":
        y = sum(tone("organ", midi_hz(p), n, SR, rng) for p in (43, 50, 55))  # organ with vibrato
    else:
        y, t = np.zeros(n), 0.3
        while t < 29.5:
            i = int(t * SR)
            y[i : i + SR] += tone("piano", midi_hz(int(rng.integers(48, 80))), min(SR, n - i), SR, rng)
            t += rng.exponential(0.4)
    spec = compute_spectrum((0.5 * y / np.abs(y).max()).astype(np.float32))
    assert legato_pulse(pitch_onsets(spec), spec.frame_rate) is None
    assert legato_pulse(pitch_onsets(spec), spec.frame_rate, change=harmonic_change(spec)) is None


@pytest.mark.parametrize("seconds", [20.0, 60.0])
def test_an_organ_drone_whose_vibrato_lifts_bands_stays_arhythmic(seconds: float) -> None:
    # Its vibrato pulses clearly in the pitch rise, and lifts a band over its held level often enough for the
    # new-note share; but those lifts come at no steady rate.
    rng = np.random.default_rng(2033)
    n = int(seconds * SR)
    y = sum(tone("organ", midi_hz(p), n, SR, rng) for p in (41, 48, 53))
    spec = compute_spectrum((0.5 * y / np.abs(y).max()).astype(np.float32))
    pitch = pitch_onsets(spec)
    assert pitch[1].mean() / pitch[0].mean() >= legato.MIN_NEW_SHARE
    assert legato_pulse(pitch, spec.frame_rate, change=harmonic_change(spec)) is None


def test_a_pad_changing_chord_twice_in_20_s_stays_arhythmic() -> None:
    # Three minor chords (A, G#, B; changes at 8.22 and 12.21 s): both witnesses agree on a rate, and the
    # beating of the held tones fills every period with a little new-note rise, which a coverage measured
    # against the mean period (inflated by the two changes) once counted as notes on most beats.
    n = 20 * SR
    y = np.zeros(n)
    for start, length, root in ((0.0, 8.22, 9), (8.22, 3.99, 8), (12.21, 7.79, 11)):
        seg = chord_tone(root, "minor", duration_s=length + 0.1)
        i = int(start * SR)
        y[i : i + min(len(seg), n - i)] += seg[: n - i]
    spec = compute_spectrum((0.5 * y / np.abs(y).max()).astype(np.float32))
    env = (onset_bands(spec), frame_mean_square(spec), harmonic_change(spec))
    assert tempo_from_envelopes(*env, frame_rate=spec.frame_rate, pitch=pitch_onsets(spec)).reason == "ARHYTHMIC"


def _weak_bumps(bpm: float, share: float, seed: int, seconds: float = 30.0) -> np.ndarray:
    """Beat bumps over frame noise; ``share`` of the mixture is the beat."""
    t = np.arange(int(seconds * FR)) / FR
    beat = np.exp(-(((t * bpm / 60.0 + 0.5) % 1.0 - 0.5) ** 2) / (2 * 0.05**2))
    return share * beat + (1.0 - share) * np.abs(np.random.default_rng(seed).standard_normal(len(t)))


@pytest.mark.parametrize("bpm", [66.0, 104.0])
def test_harmonic_change_at_the_same_rate_is_a_second_witness(bpm: float) -> None:
    # A pitch pulse too faint to stand alone (clarity under MIN_PITCH_CLARITY) ...
    pitch = np.vstack([_weak_bumps(bpm, 0.4, 1), 0.3 * _weak_bumps(bpm, 0.4, 1), 0.3 * _weak_bumps(bpm, 0.4, 1)])
    assert legato_pulse(pitch, FR) is None
    # ... is kept when the harmonic change, tracked on its own, pulses at the same rate,
    found = legato_pulse(pitch, FR, change=_weak_bumps(bpm, 0.5, 11))
    assert found is not None and 60.0 * found.pulse.freq == pytest.approx(bpm, rel=0.01)
    # and also through the whole estimate, whose onsets are noise,
    bands, ms, change, _ = _pitch_envelopes(pitch[0], 0.3)
    change = _weak_bumps(bpm, 0.5, 11).astype(np.float32)
    assert tempo_from_envelopes(bands, ms, change, frame_rate=FR).reason == "ARHYTHMIC"
    est = tempo_from_envelopes(bands, ms, change, frame_rate=FR, bpm_range=(55.0, 150.0), pitch=pitch)
    assert est.reason is None and any(b == pytest.approx(bpm, rel=0.01) for b, _ in est.candidates)
    # but not when the change pulses at an unrelated rate, or is noise,
    assert legato_pulse(pitch, FR, change=_weak_bumps(1.3 * bpm, 0.5, 11)) is None
    assert legato_pulse(pitch, FR, change=_weak_bumps(bpm, 0.0, 11)) is None
    # nor when the joint contrast is under its floor, raised for a short track.
    # (These bumps hold their rate exactly: the third witness, pinned below, is switched off here.)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(legato, "MIN_STEADY_CONTRAST", np.inf)
        mp.setattr(legato, "MIN_JOINT_CONTRAST", legato.MIN_PITCH_CONTRAST**2 + 0.01)  # no pair of contrasts reaches it
        assert legato_pulse(pitch, FR, change=_weak_bumps(bpm, 0.5, 11)) is None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(legato, "MIN_STEADY_CONTRAST", np.inf)
        assert legato_pulse(pitch, FR, change=_weak_bumps(bpm, 0.5, 11), short=legato.MIN_PITCH_CONTRAST**2) is None


def test_the_second_witness_needs_new_notes_on_most_beats() -> None:
    # Both envelopes pulse at 80 BPM, but new notes come on one beat in six: chords changing every few
    # seconds, whose held tones beat in between (a steady trickle of rise in every period).
    bpm, seconds = 80.0, 30.0
    beats = np.arange(int(seconds * FR)) / FR * bpm / 60.0
    beat_no = np.floor(beats)
    notes = np.exp(-((beats % 1.0 - 0.5) ** 2) / (2 * 0.05**2))  # one note in the middle of each period
    new = notes * (beat_no % 6 == 0) + 0.05 * notes.mean()
    assert beat_coverage(new, FR, bpm / 60.0) < MIN_BEAT_COVERAGE
    assert beat_coverage(notes, FR, bpm / 60.0) == pytest.approx(1.0)
    with_rests = notes * (beat_no % 4 != 3)  # a rest on every 4th beat: still most beats
    assert beat_coverage(with_rests, FR, bpm / 60.0) == pytest.approx(0.75, abs=0.03)
    rise = _weak_bumps(bpm, 0.4, 1, seconds)
    new *= 0.3 * rise.mean() / new.mean()  # as many new notes as below, in few beats
    pitch = np.vstack([rise, new, new])
    assert legato_pulse(pitch, FR, change=_weak_bumps(bpm, 0.5, 11)) is None
    pitch[1] = pitch[2] = with_rests * 0.3 * rise.mean() / with_rests.mean()
    assert legato_pulse(pitch, FR, change=_weak_bumps(bpm, 0.5, 11)) is not None


def test_beat_coverage_counts_whole_periods() -> None:
    new = np.zeros(1000)
    new[np.arange(0, 900, 100) + 50] = 1.0  # a note in each period of 100 frames but the last
    assert beat_coverage(new, 100.0, 1.0) == pytest.approx(0.9)
    assert beat_coverage(new[:350], 100.0, 1.0) == 0.0  # fewer than 4 whole periods
    assert beat_coverage(new, 100.0, 0.0) == 0.0
    assert beat_coverage(new, 100.0, 150.0) == 0.0  # a period under one frame
    assert beat_coverage(np.zeros(1000), 100.0, 1.0) == 0.0


def test_short_tracks_need_more_contrast_and_nan_new_notes_pass_nothing() -> None:
    # Clarity 0.31 and contrast 3.2 at 80 BPM: enough over 30 s; a track of 20 / 1.5 s has its clarity
    # floor raised to 0.27, which this still passes, and its contrast floor to 3.75, which it does not.
    rise = _weak_bumps(80.0, 0.6, 1)
    pitch = np.vstack([rise, 0.3 * rise, 0.3 * rise])
    assert legato_pulse(pitch, FR) is not None
    assert legato_pulse(pitch, FR, short=1.5) is None
    pitch[1, 100] = np.nan  # a NaN makes every share NaN, which must fail the floors, not slip past them
    assert legato_pulse(pitch, FR) is None


def _bumps_at(beats: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Bumps in the middle of each period of the beat count ``beats`` (per frame) over frame noise."""
    bump = np.exp(-(((beats + 0.5) % 1.0 - 0.5) ** 2) / (2 * 0.05**2))
    return share * bump + (1.0 - share) * np.abs(np.random.default_rng(seed).standard_normal(len(beats)))


def test_steady_contrast_needs_one_rate_held_through_the_track() -> None:
    bpm, t = 90.0, np.arange(int(40 * FR)) / FR
    steady = _bumps_at(t * bpm / 60.0, 0.4, 1)
    assert steady_contrast(steady, FR, bpm / 60.0) > MIN_STEADY_CONTRAST
    assert steady_contrast(steady, FR, 1.01 * bpm / 60.0) > MIN_STEADY_CONTRAST  # the mean rate is searched +-1 %
    # Rubato: the same beats at a rate swinging +-6 % over 20 s. A tracked pulse follows it; one held rate does not.
    swung = _bumps_at(t * bpm / 60.0 + 0.06 * bpm / 60.0 * 20.0 / (2 * np.pi) * np.sin(2 * np.pi * t / 20.0), 0.4, 1)
    assert steady_contrast(swung, FR, bpm / 60.0) < MIN_STEADY_CONTRAST
    # Notes at random times: no rate is held.
    rng = np.random.default_rng(3)
    free = 0.2 * np.abs(rng.standard_normal(len(t)))
    hits = np.cumsum(rng.exponential(0.6 * FR, 80)).astype(int)
    free[hits[hits < len(t)]] += 3.0
    assert steady_contrast(free, FR, bpm / 60.0) < MIN_STEADY_CONTRAST
    for e, f in ((np.zeros(len(t)), 1.5), (steady, 0.0), (np.where(t < 1, np.nan, steady), 1.5)):
        assert steady_contrast(e, FR, f) == 0.0  # nothing to measure: no pass


def test_a_rate_held_by_entering_notes_and_harmonic_change_is_a_third_witness() -> None:
    bpm, t = 72.0, np.arange(int(40 * FR)) / FR
    rise = _bumps_at(t * bpm / 60.0, 0.4, 1)
    pitch = np.vstack([rise, 0.3 * rise, 0.3 * rise])
    change = _bumps_at(t * bpm / 60.0, 0.4, 11)
    with pytest.MonkeyPatch.context() as mp:
        # Neither the pitch onsets alone nor the second witness may pass: only a held rate can.
        mp.setattr(legato, "MIN_PITCH_CONTRAST", np.inf)
        mp.setattr(legato, "MIN_JOINT_CONTRAST", np.inf)
        found = legato_pulse(pitch, FR, change=change)
        assert found is not None and 60.0 * found.pulse.freq == pytest.approx(bpm, rel=0.01)
        assert legato_pulse(pitch, FR) is None  # no harmonic change, no third witness
        # Not when the harmonic change holds an unrelated rate, or swings; nor under a raised floor,
        assert legato_pulse(pitch, FR, change=_bumps_at(t * 1.3 * bpm / 60.0, 0.4, 11)) is None
        swing = 0.06 * bpm / 60.0 * 20.0 / (2 * np.pi) * np.sin(2 * np.pi * t / 20.0)
        assert legato_pulse(pitch, FR, change=_bumps_at(t * bpm / 60.0 + swing, 0.4, 11)) is None
        held = min(steady_contrast(pitch[2], FR, found.pulse.freq), steady_contrast(change, FR, found.pulse.freq))
        assert legato_pulse(pitch, FR, change=change, short=1.01 * held / MIN_STEADY_CONTRAST) is None
        # nor when under the witness's stricter fresh share (a drone's beating leaking into the entering notes):
        # the same rows, the entering ones scaled down (which leaves their steady contrast and coverage as they are).
        leaky = np.vstack([pitch[0], pitch[1], 0.75 * pitch[1]])
        assert legato.MIN_FRESH_SHARE <= 0.75 < legato.MIN_STEADY_FRESH_SHARE
        assert legato_pulse(leaky, FR, change=change) is None
        leaky[2] = 0.85 * pitch[1]
        assert legato_pulse(leaky, FR, change=change) is not None
        # nor when new notes come on 4 beats of every 12, exactly in time: the rate is held (their harmonics
        # include the beat's), but most beats (and half-beats) bring no note.
        beats = t * bpm / 60.0
        notes = np.exp(-(((beats + 0.5) % 1.0 - 0.5) ** 2) / (2 * 0.05**2)) * (np.floor(beats) % 12 < 4)
        entering = (notes + 0.05 * notes.mean()) * 0.3 * rise.mean() / (1.05 * notes.mean())
        sparse = np.vstack([rise, entering, entering])
        assert steady_contrast(sparse[2], FR, found.pulse.freq) >= MIN_STEADY_CONTRAST
        assert legato_pulse(sparse, FR, change=change) is None
