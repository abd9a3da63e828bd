"""Everything the features need from one track, gathered block by block as the track decodes.

A track arrives as native-rate blocks (for loudness) and mono analysis-rate chunks (for the STFT). Each
complete STFT block (:class:`~tasks.features.blocks.SpectrumStream`) leaves small per-frame evidence -- onset
bands, harmonic change, pitch onsets and frame levels (tempo), spectral peaks (key), frame descriptors
(timbre) -- and is dropped; the loudness meter keeps 100 ms segment energies. Memory per hour of audio:
about 47 MB of evidence, plus one block (5 minutes) in flight, whatever the track's length.

A track shorter than one block gets exactly the features of the whole-track functions
(:func:`~tasks.features.tempo.estimate.estimate_tempo`, :func:`~tasks.features.key.estimate.estimate_key`,
:func:`~tasks.features.timbre.describe_timbre`).
A longer one differs in one place only: the onset envelope floors log-mel values 80 dB under the loudest
value heard *so far* rather than in the whole track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.constants import BPM_RANGE, SR
from tasks.features.blocks import BLOCK_FRAMES, SpectrumStream
from tasks.features.key.estimate import KeyEstimate, KeyPeaks, key_from_peaks, key_peaks
from tasks.features.loudness.r128 import MAX_CHANNELS, SR_RANGE, Loudness
from tasks.features.loudness.stream import LoudnessMeter
from tasks.features.spectrum import Spectrum
from tasks.features.tempo.envelopes import (
    CHANGE_LAG,
    PITCH_HISTORY,
    frame_mean_square,
    harmonic_change,
    onset_bands,
    pitch_rise,
    pitch_spectrum_db,
)
from tasks.features.tempo.estimate import TempoEstimate, tempo_from_envelopes
from tasks.features.timbre import Timbre, TimbreFrames, summarise_timbre, timbre_frames, zero_crossings


@dataclass(frozen=True)
class TrackFeatures:
    """The whole-track estimates of one track."""

    tempo: TempoEstimate
    key: KeyEstimate
    timbre: Timbre
    loudness: Loudness | None  # None: a layout BS.1770 does not define (flagged LOUDNESS_UNSUPPORTED)
    peak: float  # largest |sample| of the mono analysis signal, full scale
    duration_s: float  # of the native signal
    bpm_range: tuple[float, float] = BPM_RANGE  # preferred tempo range the tempo was estimated with, BPM


def _last_columns(previous: np.ndarray | None, block: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` columns of ``previous`` followed by ``block`` (fewer at the start of a track): the history
    the next block's lagged differences need, however short this block was."""
    if block.shape[1] < n and previous is not None:
        block = np.concatenate([previous, block], axis=1)
    return block[:, -n:].copy()


class TrackEvidence:
    """Accumulates one track's evidence; :meth:`finish` turns it into :class:`TrackFeatures`.

    Parameters
    ----------
    native_sr : int
        Sample rate of the blocks given to :meth:`add_native`, Hz.
    channels : int
        Channels of those blocks.
    sr : int
        Sample rate of the mono chunks given to :meth:`add_mono`, Hz.
    block_frames : int
        STFT frames per block.
    """

    def __init__(self, native_sr: int, channels: int, *, sr: int = SR, block_frames: int = BLOCK_FRAMES) -> None:
        supported = channels <= MAX_CHANNELS and SR_RANGE[0] <= native_sr <= SR_RANGE[1]
        self.meter = LoudnessMeter(native_sr, channels) if supported else None
        self.native_sr, self.sr = native_sr, sr
        self.native_frames = 0
        self._spectra = SpectrumStream(sr=sr, block_frames=block_frames)
        self._bands: list[np.ndarray] = []
        self._change: list[np.ndarray] = []
        self._pitch: list[np.ndarray] = []
        self._last_pitch: np.ndarray | None = None  # pitch spectrum before the next block: pitch onsets
        self._frame_ms: list[np.ndarray] = []
        self._peaks: list[KeyPeaks] = []
        self._timbre: list[TimbreFrames] = []
        self._frames = 0
        self._max_db = -np.inf
        self._last_columns: np.ndarray | None = None  # log-mel before the next block: flux and harmonic change
        self._peak = 0.0
        self._crossings = 0
        self._last_sample: float | None = None

    def add_native(self, x: np.ndarray) -> None:
        """Native-rate block, shape ``(channels, n)``, float32, finite."""
        self.native_frames += x.shape[1]
        if self.meter is not None:
            self.meter.feed(x)

    def add_mono(self, y: np.ndarray) -> None:
        """Mono chunk at ``sr``, shape ``(n,)``, float32, finite (the blocks' down-mix, resampled)."""
        if y.size:
            self._peak = max(self._peak, float(np.max(np.abs(y))))
            self._crossings += zero_crossings(y, self._last_sample)
            self._last_sample = float(y[-1])
        for spectrum in self._spectra.feed(y):
            self._add_spectrum(spectrum)

    def _add_spectrum(self, spectrum: Spectrum) -> None:
        lm = spectrum.log_mel
        self._max_db = max(self._max_db, float(lm.max()))
        self._bands.append(onset_bands(spectrum, floor_db=self._max_db - 80.0, previous=self._last_columns))
        self._change.append(harmonic_change(spectrum, previous=self._last_columns))
        self._last_columns = _last_columns(self._last_columns, lm, CHANGE_LAG)
        pdb = pitch_spectrum_db(spectrum)
        self._pitch.append(pitch_rise(pdb, previous=self._last_pitch))
        self._last_pitch = _last_columns(self._last_pitch, pdb, PITCH_HISTORY)
        self._frame_ms.append(frame_mean_square(spectrum))
        self._peaks.append(key_peaks(spectrum, first_frame=self._frames))
        self._timbre.append(timbre_frames(spectrum))
        self._frames += spectrum.n_frames

    def finish(self, *, bpm_range: tuple[float, float] = BPM_RANGE) -> TrackFeatures:
        """Close the stream and estimate every feature of the whole track."""
        for spectrum in self._spectra.finish():
            self._add_spectrum(spectrum)
        # One concern at a time, each list freed as soon as it is joined: the peak stays near one copy.
        key = key_from_peaks(self._peaks)
        self._peaks = []
        bands = np.concatenate(self._bands, axis=1)
        self._bands = []
        fr = self.sr / self._spectra.hop_length
        tempo = tempo_from_envelopes(
            bands,
            np.concatenate(self._frame_ms),
            np.concatenate(self._change),
            frame_rate=fr,
            bpm_range=bpm_range,
            pitch=np.concatenate(self._pitch, axis=1),
        )
        self._change, self._pitch = [], []
        timbre_frames_ = TimbreFrames.concat(self._timbre)
        self._timbre = []
        timbre = summarise_timbre(
            timbre_frames_,
            bands[0],
            self._crossings,
            self._spectra.n_samples,
            sr=self.sr,
            hop_length=self._spectra.hop_length,
        )
        return TrackFeatures(
            tempo=tempo,
            key=key,
            timbre=timbre,
            loudness=self.meter.result() if self.meter is not None else None,
            peak=self._peak,
            duration_s=self.native_frames / self.native_sr,
            bpm_range=(float(bpm_range[0]), float(bpm_range[1])),
        )
