"""Synthetic songs with a known tempo and key: ground truth for tests, the demo library and the benchmark.

A song is drums (per-style 16th-step patterns), a bass on the chord roots, a diatonic chord progression
and a melody on the scale, played by the instruments of :mod:`tasks.synth.voices`. Each distinct pitch of
an instrument is rendered once per song and re-used, so a 60 s song renders in a fraction of a second.
Event times are computed in float seconds from the beat index and placed at ``round(t * sr)``: beats never
accumulate rounding drift, whatever the (fractional) BPM.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tasks.constants import SR
from tasks.synth.styles import MAJOR_SCALE, MINOR_SCALE, PITCH_NAMES, PROGRESSIONS, STYLES, TIMBRES, Style
from tasks.synth.voices import PEAK_DBFS, drum_kit, midi_hz, pink_noise, reverb, tone


@dataclass(frozen=True)
class SongSpec:
    """Everything that determines a synthetic song; :func:`render_song` is a pure function of it.

    ``bpm`` is the mean tempo (beats per minute, may be fractional) even with ``tempo_drift`` (a slow
    sinusoidal +-fraction of the tempo, whole cycles over the song). ``swing`` (0..0.3) delays the off
    16ths or 8ths (per style) by that fraction of the grid. ``noise_db`` is the SNR of added pink noise
    in dB (None = no noise); ``tuning_cents`` detunes everything from A4 = 440 Hz.
    """

    bpm: float
    tonic: int
    mode: str = "major"
    duration_s: float = 30.0
    style: str = "house"
    timbre: str = "saw"
    swing: float = 0.0
    tempo_drift: float = 0.0
    noise_db: float | None = None
    seed: int = 0
    tuning_cents: float = 0.0

    def __post_init__(self) -> None:
        if not 20.0 <= self.bpm <= 400.0:
            raise ValueError(f"bpm out of range: {self.bpm}")
        if self.tonic not in range(12) or self.mode not in PROGRESSIONS:
            raise ValueError(f"bad key: tonic={self.tonic} mode={self.mode!r}")
        if self.style not in STYLES or self.timbre not in TIMBRES:
            raise ValueError(f"unknown style/timbre: {self.style!r}/{self.timbre!r}")
        if self.duration_s <= 0 or not 0.0 <= self.swing <= 0.5 or not 0.0 <= self.tempo_drift < 0.2:
            raise ValueError("duration_s must be > 0, swing in [0, 0.5], tempo_drift in [0, 0.2)")

    @property
    def key(self) -> str:
        """Key name with sharps, e.g. ``'F# major'``, ``'A minor'``."""
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    @property
    def meter(self) -> int:
        """Beats per bar: 3 for ``'waltz'``, else 4."""
        return STYLES[self.style].meter

    @property
    def scale(self) -> tuple[int, ...]:
        """Pitch classes (semitones above the tonic) of the natural scale."""
        return MAJOR_SCALE if self.mode == "major" else MINOR_SCALE


# ---------------------------------------------------------------- time ----------------------------------------


def _clock(spec: SongSpec) -> tuple[float, float, float, float]:
    """(lead-in s, mean beat period s, beats per drift cycle, drift phase), fixed by the spec."""
    rng = np.random.default_rng([spec.seed, 991])
    lead_in = float(rng.uniform(0.05, 0.35))
    period = 60.0 / spec.bpm
    cycles = max(1, round(spec.duration_s / 45.0))
    # Whole drift cycles over the song make the mean tempo exactly spec.bpm.
    cycle_beats = max((spec.duration_s - lead_in) / period / cycles, 1.0)
    return lead_in, period, cycle_beats, float(rng.uniform(0, 2 * np.pi))


def beat_to_time(spec: SongSpec, beats: np.ndarray | float) -> np.ndarray:
    """Time in s of (fractional) beat positions; beat 0 is the first downbeat.

    The beat period is ``60/bpm * (1 + tempo_drift * sin(2 pi b / K + phi))``; this is its integral.
    """
    lead_in, period, k, phi = _clock(spec)
    b = np.asarray(beats, dtype=np.float64)
    drift = spec.tempo_drift * period * k / (2 * np.pi) * (np.cos(phi) - np.cos(2 * np.pi * b / k + phi))
    return lead_in + period * b + drift


def beat_times(spec: SongSpec) -> np.ndarray:
    """Ground-truth beat times in s, shape ``(n_beats,)``, every beat before ``spec.duration_s``."""
    n = int(spec.duration_s * spec.bpm / 60.0 * 1.25) + 2
    t = beat_to_time(spec, np.arange(n))
    return t[t < spec.duration_s]


def downbeat_times(spec: SongSpec) -> np.ndarray:
    """Ground-truth downbeat times in s (every ``spec.meter``-th beat from beat 0), before ``spec.duration_s``."""
    return beat_times(spec)[:: spec.meter]


def _step_beat(step: int, grid: float, swing: float) -> float:
    """Beat offset of a 16th step within the bar, with swing applied to the off-grid steps."""
    b = step / 4.0
    if swing and ((grid == 0.25 and step % 2 == 1) or (grid == 0.5 and step % 4 == 2)):
        b += swing * grid
    return b


# ---------------------------------------------------------------- composition ---------------------------------


def _chord(scale: tuple[int, ...], degree: int) -> tuple[int, int, int]:
    """Semitones above the tonic of the triad on ``degree`` (7 = harmonic-minor V)."""
    if degree == 7:
        return (7, 11, 14)
    return tuple(scale[(degree + 2 * i) % 7] + 12 * ((degree + 2 * i) // 7) for i in range(3))  # type: ignore


def _phrase(spec: SongSpec, st: Style, prog: tuple[int, ...], rng: np.random.Generator) -> list[tuple]:
    """A melody over one pass of the progression: [(beat, beats, midi)], chord tones on strong 8ths."""
    pool = [m for m in range(62, 88) if (m - spec.tonic) % 12 in spec.scale]
    i = int(np.argmin([abs(m - 74) if (m - spec.tonic) % 12 == 0 else 99 for m in pool]))
    notes: list[list] = []
    for bar, deg in enumerate(prog):
        tones = {(spec.tonic + p) % 12 for p in _chord(spec.scale, deg)}
        for e in range(2 * st.meter):
            strong = e % 2 == 0
            if not (bar == 0 and e == 0) and rng.random() > st.melody * (1.7 if strong else 0.5):
                continue
            if strong:
                cands = [j for j in range(max(0, i - 3), min(len(pool), i + 4)) if pool[j] % 12 in tones]
                i = min(cands, key=lambda j: (abs(j - i), rng.random())) if cands else i
            else:
                i = int(np.clip(i + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(pool) - 1))
            notes.append([bar * st.meter + _step_beat(2 * e, st.swing_grid, spec.swing), 0.0, pool[i]])
    end = len(prog) * st.meter
    for n, nxt in zip(notes, notes[1:] + [[end]]):
        n[1] = min(nxt[0] - n[0], 2.0) * 0.9
    last = notes[-1]
    tonics = [m for m in range(60, 90) if (m - spec.tonic) % 12 == 0]
    if any(p % 12 == 0 for p in _chord(spec.scale, prog[-1])):  # resolve home when the harmony allows it
        last[2] = min(tonics, key=lambda m: abs(m - last[2]))
    return [tuple(n) for n in notes]


def _compose(spec: SongSpec, rng: np.random.Generator) -> tuple[dict, dict]:
    """Drum hits {name: [(beat, vel)]} and notes {part: [(beat_on, beats, midi, vel)]} for the whole song."""
    st = STYLES[spec.style]
    prog = PROGRESSIONS[spec.mode][rng.integers(len(PROGRESSIONS[spec.mode]))]
    n_bars = int(np.ceil((len(beat_times(spec)) + 1) / st.meter))
    n_phrases = int(np.ceil(n_bars / len(prog)))
    phrase_a = _phrase(spec, st, prog, rng)
    phrase_b = _phrase(spec, st, prog, rng)  # the answering phrase
    drums: dict[str, list] = {k: [] for k in ("kick", "snare", "clap", "rim", "hat", "open_hat")}
    notes: dict[str, list] = {"bass": [], "chords": [], "lead": []}
    vel = {"x": 1.0, "o": 0.5, "O": 0.8}
    steps = 4 * st.meter
    chord_pat = st.chords
    if spec.timbre in ("pluck", "piano-ish", "fm") and st.chords.count("x") < 2:
        chord_pat = "x..." * st.meter  # a decaying instrument comps on every beat instead of holding
    for bar in range(n_bars):
        b0 = bar * st.meter
        phr, pos = divmod(bar, len(prog))
        breakdown = n_phrases >= 5 and phr == 3 and pos >= len(prog) - 2
        pcs = _chord(spec.scale, prog[pos])
        snare = st.snare
        if pos == len(prog) - 1 and phr % 2 == 1 and "x" in snare:  # a fill on the last beat of a phrase pair
            snare = snare[:-4] + "oxxx"
        if pos == 0 and phr > 0:
            drums["open_hat"].append((b0, 1.0))  # crash-like accent on each phrase's downbeat
        for name, pat in (("kick", st.kick), (st.snare_kind, snare), ("hat", st.hats)):
            if name == "kick" and breakdown:
                continue
            for s, c in enumerate(pat):
                if c != ".":
                    hit = "open_hat" if c == "O" else name
                    jitter = rng.uniform(0.85, 1.0) if name != "kick" else 1.0
                    drums[hit].append((b0 + _step_beat(s, st.swing_grid, spec.swing), vel[c] * jitter))
        for part, pat in (("bass", st.bass), ("chords", chord_pat)):
            if part == "bass" and breakdown:
                continue
            hits = [s for s, c in enumerate(pat) if c != "."]
            for s, s_next in zip(hits, hits[1:] + [steps]):
                on = b0 + _step_beat(s, st.swing_grid, spec.swing)
                if part == "bass":
                    root = 38 + (spec.tonic + pcs[0] - 38) % 12  # D2..C#3
                    root += {"x": 0, "o": 12, "f": pcs[2] - pcs[0]}[pat[s]]
                    notes["bass"].append((on, min((s_next - s) / 4.0, 1.0) * 0.85, root, 1.0))
                else:
                    length = st.chord_len or (s_next - s) / 4.0 * 0.95
                    for p in pcs:
                        notes["chords"].append((on, length, 55 + (spec.tonic + p - 55) % 12, 1.0))
        if pos == 0 and not (n_phrases >= 3 and phr == 0):
            for b, d, m in phrase_a if phr % 2 == 1 or n_phrases < 3 else phrase_b:
                notes["lead"].append((b0 + b, d, m, rng.uniform(0.8, 1.0)))
    return drums, notes


# ---------------------------------------------------------------- rendering -----------------------------------


def _pan(p: float) -> tuple[float, float]:
    """Constant-power gains (left, right) for pan ``p`` in [-1, 1]."""
    a = (p + 1.0) * np.pi / 4.0
    return float(np.cos(a)), float(np.sin(a))


def _render_notes(
    spec: SongSpec,
    part: list,
    kind: str,
    n: int,
    sr: int,
    rng: np.random.Generator,
    attack_s: float,
    release_s: float,
    jitter_s: float = 0.0,
) -> np.ndarray:
    """Mono bus of one part; each distinct pitch is synthesised once, at the longest length it is needed."""
    out = np.zeros(n, dtype=np.float32)
    if not part:
        return out
    on = beat_to_time(spec, [p[0] for p in part])
    off = beat_to_time(spec, [p[0] + p[1] for p in part])
    if jitter_s:
        on = on + rng.normal(0.0, jitter_s, len(on))
    starts = np.round(on * sr).astype(np.int64)
    lengths = np.round((off - on) * sr).astype(np.int64) + int(release_s * sr)
    cache: dict[int, np.ndarray] = {}
    for midi in sorted({p[2] for p in part}):
        longest = int(max(ln for ln, p in zip(lengths, part) if p[2] == midi))
        cache[midi] = tone(kind, midi_hz(midi, spec.tuning_cents), longest, sr, rng)
    n_att, n_rel = max(1, int(attack_s * sr)), max(1, int(release_s * sr))
    up, down = np.linspace(0.0, 1.0, n_att), np.linspace(1.0, 0.0, n_rel)
    for (_, _, midi, vel), start, length in zip(part, starts, lengths):
        if start >= n or start < 0:
            continue
        length = min(length, n - start)
        note = vel * cache[midi][:length]
        head, tail = min(n_att, length), min(n_rel, length)
        note[:head] *= up[:head]
        note[length - tail :] *= down[n_rel - tail :]
        out[start : start + length] += note
    return out


def _place_hits(hits: list, sample: np.ndarray, times: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Mono bus of one drum: ``sample`` added at ``round(t * sr)`` for each hit time ``t``."""
    out = np.zeros(n, dtype=np.float32)
    for (_, vel), t in zip(hits, times):
        i = int(round(t * sr))
        if 0 <= i < n:
            m = min(len(sample), n - i)
            out[i : i + m] += vel * sample[:m]
    return out


def render_song(spec: SongSpec, *, sr: int = SR, stereo: bool = True) -> np.ndarray:
    """Render a song: drums, bass on the chord roots, chords, and a melody, in ``spec``'s key and tempo.

    Parameters
    ----------
    spec : SongSpec
    sr : int
        Sample rate, Hz. Another rate gives another rendering of the spec, not the same song resampled: the
        random draws depend on lengths in samples, and plucked tones decay faster at lower rates.
    stereo : bool
        Return two channels (instruments panned, decorrelated reverb) or the mono down-mix.

    Returns
    -------
    np.ndarray, shape (2, n) or (n,), float32
        ``n = round(spec.duration_s * sr)``, peak at ``PEAK_DBFS`` (-1 dBFS).
    """
    seed = [spec.seed, spec.tonic, int(spec.bpm * 1000), zlib.crc32(f"{spec.style}/{spec.timbre}/{spec.mode}".encode())]
    rng = np.random.default_rng(seed)
    n = int(round(spec.duration_s * sr))
    st = STYLES[spec.style]
    drums, notes = _compose(spec, rng)
    kit = drum_kit(sr, rng)

    bus = {
        name: _place_hits(hits, kit[name], beat_to_time(spec, [h[0] for h in hits]), n, sr)
        for name, hits in drums.items()
    }
    sustained = spec.timbre in ("saw", "square", "sine", "organ")
    chord_gain = 0.25 if sustained else 0.4
    bass = _render_notes(spec, notes["bass"], st.bass_timbre, n, sr, rng, 0.004, 0.03)
    chords = _render_notes(spec, notes["chords"], spec.timbre, n, sr, rng, 0.04 if sustained else 0.002, 0.08)
    lead = _render_notes(spec, notes["lead"], spec.timbre, n, sr, rng, 0.01 if sustained else 0.002, 0.06, 0.003)

    # (source, gain, pan, reverb send)
    stems = [
        (bus["kick"], 0.8 if spec.style != "ambient-pulse" else 0.6, 0.0, 0.0),
        (bus["snare"], 0.45, -0.05, 0.15),
        (bus["clap"], 0.4, 0.05, 0.2),
        (bus["rim"], 0.25, -0.2, 0.15),
        (bus["hat"], 0.14, 0.3, 0.05),
        (bus["open_hat"], 0.1, 0.35, 0.05),
        (bass, 0.5, 0.0, 0.0),
        (chords, chord_gain, 0.0, 0.3),
        (lead, 0.38, -0.25, 0.3),
    ]
    mix = np.zeros((2, n), dtype=np.float32)
    send = np.zeros(n, dtype=np.float32)
    for x, gain, pan, rev in stems:
        left, right = _pan(pan)
        mix[0] += np.float32(gain * left) * x
        mix[1] += np.float32(gain * right) * x
        if rev:
            send += np.float32(gain * rev) * x
    mix += reverb(send, sr, rng)
    if not stereo:
        mix = mix.mean(axis=0, keepdims=True)
    if spec.noise_db is not None:
        rms = np.sqrt(np.mean(mix * mix))
        mix += pink_noise(rng, mix.shape) * rms * 10.0 ** (-spec.noise_db / 20.0)
    fade = min(n, int(0.3 * sr))
    mix[:, n - fade :] *= np.linspace(1.0, 0.0, fade)
    mix *= 10.0 ** (PEAK_DBFS / 20.0) / (np.abs(mix).max() + 1e-12)
    out = mix.astype(np.float32)
    return out if stereo else out[0]


# ---------------------------------------------------------------- spec sets -----------------------------------


def ground_truth_set(n: int = 120, *, seed: int = 0, duration_s: float = 30.0) -> list[SongSpec]:
    """Deterministic benchmark specs covering 60-190 BPM, all 24 keys, every style and timbre.

    Tempi are stratified over 60-190 BPM (half fractional); keys cycle so each of the 24 appears
    ``n // 24`` or more times; each style is paired only with tempi it plausibly has, the least used first.
    About 20% each get swing, tempo drift, and noise (SNR 6-30 dB); about 15% are detuned by 5-25 cents.
    """
    rng = np.random.default_rng([seed, 2024])
    bpms = 60.0 + 130.0 * (np.arange(n) + rng.uniform(0.1, 0.9, n)) / n
    bpms = np.where(rng.random(n) < 0.5, np.round(bpms), np.round(bpms, 2))
    keys = [(k % 12, "major" if k < 12 else "minor") for k in rng.permutation(24)]
    timbres = [TIMBRES[i] for i in rng.permutation(np.arange(n) % len(TIMBRES))]
    used = dict.fromkeys(STYLES, 0)
    specs = []
    for i in rng.permutation(n):
        bpm = float(np.clip(bpms[i], 60.0, 190.0))
        fits = [s for s, st in STYLES.items() if st.tempo[0] <= bpm <= st.tempo[1]] or list(STYLES)
        style = min(fits, key=lambda s: (used[s], rng.random()))
        used[style] += 1
        tonic, mode = keys[len(specs) % 24]
        specs.append(
            SongSpec(
                bpm=bpm,
                tonic=int(tonic),
                mode=mode,
                duration_s=duration_s,
                style=style,
                timbre=timbres[len(specs)],
                swing=float(np.round(rng.uniform(0.08, 0.3), 3)) if rng.random() < 0.2 else 0.0,
                tempo_drift=float(np.round(rng.uniform(0.004, 0.02), 4)) if rng.random() < 0.2 else 0.0,
                noise_db=float(np.round(rng.uniform(6.0, 30.0), 1)) if rng.random() < 0.2 else None,
                seed=seed * 100_003 + len(specs),
                tuning_cents=float(np.round(rng.choice([-1, 1]) * rng.uniform(5, 25), 1))
                if rng.random() < 0.15
                else 0.0,
            )
        )
    return specs
