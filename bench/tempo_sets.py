"""Labelled tempo sets for ``bench/tempo_eval.py`` and the octave fit of ``bench/devset_octave.py``: items
``(label, y, bpm)``, mono float32 at ``SR``.

- :func:`synth_items`: ``tasks.synth.songs`` songs (drums, bass, chords, melody).
- :func:`click_items`, :func:`drum_items`, :func:`hymn_items`: metronomes, bare drum-machine beats and
  synthesized four-part chorales, for the octave fit (``bench/devset_octave.py``).
- :func:`training_chorale_items`: Bach chorales rendered by ``bench/render_training_chorales.py`` from the
  start of the music21 collection, every work of the test set excluded; ``split`` ``'train'`` or ``'check'``
  (every fifth piece). Issue 19 holds the start of that collection out: no fit uses them any more.
- :func:`chorale_items`: the rendered Bach chorales of the test set. Never used for fitting.
- :func:`recipe_dev_items`: the DEVELOPMENT set, other works rendered by the test set's recipe
  (``render_training_chorales.py --recipe-dev``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tasks.constants import SR

Item = tuple[str, np.ndarray, float]


def synth_items(specs: Iterable) -> list[Item]:
    """Render ``tasks.synth.songs.SongSpec`` s to mono items."""
    from tasks.synth.songs import render_song

    return [(f"{s.style}_{s.bpm}_{s.seed}", render_song(s, stereo=False), float(s.bpm)) for s in specs]


def click_items(n: int = 48, *, seed: int = 7) -> list[Item]:
    """Metronomes at 55-195 BPM, 15-40 s, a quarter of them in white noise (SNR 5-20 dB).

    A click track has one right answer whatever ``bpm_range`` says; they keep the octave model from
    halving or doubling a plain pulse.
    """
    from tasks.synth.voices import click_track

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bpm = round(float(np.exp(rng.uniform(np.log(55.0), np.log(195.0)))), 2)
        y = click_track(bpm, duration_s=float(rng.uniform(15, 40)), offset_s=float(rng.uniform(0, 0.5)))
        if i % 4 == 2:
            snr = rng.uniform(5, 20)
            y = y + rng.standard_normal(len(y)).astype(np.float32) * np.sqrt(np.mean(y * y)) * 10 ** (-snr / 20)
        out.append((f"click_{bpm}", y.astype(np.float32), bpm))
    return out


_KICKS = ("x...x...x...x...", "x.......x.......", "x.......x.x.....", "x..x....x.......", "x.....x...x.....")
_HATS = ("x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "..x...x...x...x.", "x.x.x.x.x.x.x.x.")


def drum_items(n: int = 60, *, seed: int = 11, duration_s: float = 20.0) -> list[Item]:
    """Bare drum-machine beats at 60-190 BPM: a kick pattern, snare on 2 and 4, hats 0-24 dB below the kick.

    Random kit, hat pattern (8ths, 16ths below 130 BPM, off-beats), swing and noise. The beat is where
    kick and snare alternate, however loud the hats: these keep the octave model from following them.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bpm = round(float(np.exp(rng.uniform(np.log(60.0), np.log(190.0)))), 2)
        t = np.arange(int(0.4 * SR)) / SR
        kick = np.sin(2 * np.pi * np.cumsum(rng.uniform(45, 60) + rng.uniform(60, 120) * np.exp(-t * 30)) / SR)
        kick *= np.exp(-t * rng.uniform(5, 10))
        snare = rng.uniform(0.4, 0.8) * rng.standard_normal(len(t)) + rng.uniform(0.2, 0.6) * np.sin(
            2 * np.pi * rng.uniform(160, 240) * t
        )
        snare *= np.exp(-t * rng.uniform(12, 25))
        hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * rng.uniform(40, 90))
        hat *= 10 ** (-rng.uniform(0, 24) / 20) / np.abs(hat).max()
        choices = _HATS if bpm < 130 else (_HATS[0], _HATS[2])  # no 16th hats at fast tempi
        hats = choices[rng.integers(len(choices))]
        kicks = _KICKS[rng.integers(len(_KICKS))]
        swing = float(rng.choice([0.0, 0.0, rng.uniform(0.1, 0.33)]))
        step = 60.0 / bpm / 4
        y = np.zeros(int((duration_s + 1) * SR))
        for k in range(int(duration_s / step)):
            s = k % 16
            when = (k + (swing * 2 if s % 4 == 2 else 0.0)) * step
            j = int(round(when * SR))
            for pat, smp in ((kicks, kick), ("....x.......x...", snare), (hats, hat)):
                if pat[s] == "x":
                    y[j : j + len(smp)] += smp
        y = y[: int(duration_s * SR)]
        if rng.random() < 0.3:
            y += rng.standard_normal(len(y)) * np.sqrt(np.mean(y * y)) * 10 ** (-rng.uniform(5, 20) / 20)
        out.append((f"drums_{bpm}", (0.5 * y / np.abs(y).max()).astype(np.float32), bpm))
    return out


_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 11)}  # harmonic minor: a leading tone
_NEXT = {0: (3, 4, 5, 1), 1: (4, 6), 2: (5, 3), 3: (4, 0, 1), 4: (0, 5, 3), 5: (1, 3, 4), 6: (0,)}  # degree moves
_RANGES = ((40, 57), (50, 64), (57, 71), (62, 79))  # bass, tenor, alto, soprano (MIDI)
_HYMN_TIMBRES = ("organ", "saw", "square", "sine", "piano-ish", "fm", "pluck")


def _hymn_score(rng: np.random.Generator, n_beats: int) -> list[tuple[int, int, float, float]]:
    """Notes ``(voice, midi, start, length)`` in beats of a four-part chorale: a chord on (nearly) every beat,
    held two beats now and then and at phrase ends, 8th-note passing and neighbour tones in each voice now and
    then (from rarely to on most beats), and in some pieces a voice that repeats its note in 8ths."""
    scale = _SCALES[rng.choice(list(_SCALES))]
    tonic = int(rng.integers(12))
    pcs = [(tonic + s) % 12 for s in scale]
    p_pass, p_hold = rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.3)
    repeat_voice = int(rng.integers(4)) if rng.random() < 0.3 else -1
    phrase = int(rng.choice([4, 6, 8]))
    chords, beat, deg = [], 0, 0
    while beat < n_beats:
        length = 2 if (beat % phrase == phrase - 2 or rng.random() < p_hold) else 1
        chords.append((beat, length, deg))
        beat += length
        deg = int(rng.choice(_NEXT[deg]))
    notes, prev = [], [48, 55, 64, 72]
    for ci, (start, length, deg) in enumerate(chords):
        tones = {pcs[deg], pcs[(deg + 2) % 7], pcs[(deg + 4) % 7]}
        cur = []
        for v, (lo, hi) in enumerate(_RANGES):
            want = {pcs[deg]} if v == 0 else tones
            cands = [m for m in range(lo, hi + 1) if m % 12 in want]
            cur.append(min(cands, key=lambda m: (abs(m - prev[v]), rng.random())))
        nxt_start = chords[ci + 1][0] if ci + 1 < len(chords) else start + length
        for v, m in enumerate(cur):
            if v == repeat_voice:
                notes += [(v, m, start + 0.5 * k, 0.5) for k in range(2 * length)]
                continue
            # A passing (or neighbour) tone on the last 8th of the chord, a step away in the scale.
            if rng.random() < p_pass and nxt_start < n_beats:
                step = [x for x in range(m - 2, m + 3) if x != m and x % 12 in pcs]
                notes += [(v, m, start, length - 0.5), (v, int(rng.choice(step)), start + length - 0.5, 0.5)]
            else:
                notes.append((v, m, start, float(length)))
        prev = cur
    return notes


def hymn_items(n: int = 320, *, seed: int = 13, duration_s: float = 30.0) -> list[Item]:
    """Four-part chorales at 50-150 BPM, no percussion: the beat is the chord change, the notes move in 8ths.

    Random timbre per voice (sustained with a 10-120 ms attack, or struck and decaying), loudness and timing
    jitter, room reverb and noise now and then. They teach the octave model the harmonic rhythm of music
    with no drums, which neither the songs nor the drum loops show.
    """
    from tasks.synth.voices import midi_hz, reverb, tone

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        bpm = round(float(np.exp(rng.uniform(np.log(50.0), np.log(150.0)))), 2)
        beat = 60.0 / bpm
        timbres = rng.choice(_HYMN_TIMBRES, 4) if rng.random() < 0.5 else [rng.choice(_HYMN_TIMBRES)] * 4
        attack = rng.uniform(0.01, 0.12)
        jitter = rng.choice([0.0, rng.uniform(0.003, 0.02)])
        n_samples = int(duration_s * SR)
        y = np.zeros(n_samples + SR)
        for v, m, start, length in _hymn_score(rng, int(duration_s / beat) + 1):
            t0 = int(round((start * beat + rng.normal(0, jitter) + 0.05) * SR))
            if t0 < 0 or t0 >= n_samples:
                continue
            k = min(int((length * beat + 0.03) * SR), len(y) - t0)
            kind = str(timbres[v])
            note = tone(kind, midi_hz(m), k, SR, rng)
            env = (
                np.minimum(1.0, np.arange(k) / max(1.0, attack * SR))
                if kind in ("organ", "saw", "square", "sine")
                else np.ones(k)
            )
            rel = min(k, int(0.03 * SR))
            env[k - rel :] *= np.linspace(1.0, 0.0, rel)
            y[t0 : t0 + k] += note * env * 10 ** (rng.normal(0, 2.0) / 20) * (1.3 if v in (0, 3) else 1.0)
        y = y[:n_samples]
        if rng.random() < 0.5:
            y = y + rng.uniform(0.1, 0.5) * reverb(y.astype(np.float32), SR, rng, rt60=rng.uniform(0.8, 2.5))[0]
        if rng.random() < 0.2:
            y = y + rng.standard_normal(len(y)) * np.sqrt(np.mean(y * y)) * 10 ** (-rng.uniform(10, 30) / 20)
        out.append((f"hymn_{bpm}", (0.5 * y / np.abs(y).max()).astype(np.float32), bpm))
    return out


def chorale_items(root: str | os.PathLike | None = None) -> list[Item]:
    """Rendered Bach chorales with the quarter-note BPM of the score (empty list when not built)."""
    from bench.corpus import chorale_rows
    from tasks.audio.decode import decode_audio

    return [
        (Path(r["file"]).name, decode_audio(r["file"]).y, float(r["bpm"])) for r in chorale_rows(root) if r.get("bpm")
    ]


def training_chorale_items(split: str, rendering: str = "varied", root: str | os.PathLike | None = None) -> list[Item]:
    """Rendered training chorales of one ``split`` (``'train'`` or ``'check'``) and ``rendering`` (see
    :func:`bench.corpus.training_rows`); empty when not built."""
    from bench.corpus import training_rows
    from tasks.audio.decode import decode_audio

    return [
        (Path(r["file"]).name, decode_audio(r["file"]).y, float(r["bpm"]))
        for r in training_rows(split, rendering, root)
    ]


def recipe_dev_items(root: str | os.PathLike | None = None) -> list[Item]:
    """The development chorales (``recipe_dev/ground_truth.csv``, empty when not built): works used neither in
    training nor in the test set, rendered by the test set's recipe, each at two tempi."""
    from bench.corpus import chorale_rows
    from tasks.audio.decode import decode_audio

    return [
        (Path(r["file"]).name, decode_audio(r["file"]).y, float(r["bpm"])) for r in chorale_rows(root, "recipe_dev")
    ]
