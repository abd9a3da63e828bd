"""The one STFT every feature shares, and the representations derived from it.

Computed once per track in :func:`tasks.features.analyze.analyze_audio`; tempo, key, timbre and the
embedding all read from the same :class:`Spectrum`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import librosa
import numpy as np
import scipy.fft
import scipy.sparse

from tasks.constants import HOP_LENGTH, N_FFT, N_MELS, SR

#: Frames per chunk of the STFT and of the power reductions: temporaries of ~8 MB, whatever the track's length.
_CHUNK = 1024
_FFT_CHUNK = 128  # frames per rfft batch (1 MB windowed): with the tiled transpose, fastest of 64-512 here
_T_TILE = 64  # bins per transposed tile
_DB_PER_NEPER = np.float32(10.0 / np.log(10.0))  # 10 log10(x) = _DB_PER_NEPER ln(x)


@cache
def _mel_sparse(*, sr: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_array:
    # Each triangle spans a few bins: 2 % of the dense product's multiply-adds (measured: 8x less CPU than the
    # dense BLAS product on this machine, where single-core sgemm runs at about 5 GFLOPS).
    return scipy.sparse.csr_array(mel_basis(sr=sr, n_fft=n_fft, n_mels=n_mels))


@cache
def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa


@cache
def mel_basis(*, sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney mel filterbank, shape ``(n_mels, 1 + n_fft // 2)``, float32 (cached)."""
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2).astype(np.float32)


def stft_magnitude(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Magnitude STFT with a Hann window, centred frames (zero padding), float32.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Mono audio, float32.

    Returns
    -------
    np.ndarray, shape (1 + n_fft // 2, n_frames)
        ``n_frames = 1 + len(y) // hop_length``.
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    pad = n_fft // 2
    yp = np.pad(y, (pad, pad + n_fft))
    return frames_magnitude(yp, 1 + len(y) // hop_length, n_fft=n_fft, hop_length=hop_length)


def frames_magnitude(yp: np.ndarray, n_frames: int, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Magnitude of the Hann-windowed frames ``yp[t * hop_length : t * hop_length + n_fft]``, t < ``n_frames``.

    Returns
    -------
    np.ndarray, shape (1 + n_fft // 2, n_frames), float32
    """
    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop_length][:n_frames]
    # In chunks through reused buffers: the windowed copy and its magnitudes stay in cache, never reallocated.
    n_bins = n_fft // 2 + 1
    out = np.empty((n_bins, len(frames)), dtype=np.float32)
    win = _window(n_fft)
    buf = np.empty((min(_FFT_CHUNK, len(frames)), n_fft), dtype=np.float32)
    mag = np.empty((len(buf), n_bins), dtype=np.float32)
    for i in range(0, len(frames), _FFT_CHUNK):
        chunk = frames[i : i + _FFT_CHUNK]
        n = len(chunk)
        windowed = np.multiply(chunk, win, out=buf[:n])
        np.abs(scipy.fft.rfft(windowed, axis=1, overwrite_x=True), out=mag[:n])
        # Transposed in tiles of _T_TILE bins: a whole-chunk transpose strides through memory (a third of the
        # STFT's time here), a tile's rows stay in L1.
        for j in range(0, n_bins, _T_TILE):
            out[j : j + _T_TILE, i : i + n] = mag[:n, j : j + _T_TILE].T
    return out


@dataclass(frozen=True)
class Spectrum:
    """Magnitude STFT of one track plus derived views, computed lazily and cached.

    Attributes
    ----------
    S : np.ndarray, shape (1 + n_fft // 2, n_frames)
        Magnitude spectrogram, float32.
    sr : int
        Sample rate of the analysed signal, Hz.
    n_fft, hop_length : int
        Frame length and hop, samples.
    """

    S: np.ndarray
    sr: int = SR
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH

    @property
    def n_frames(self) -> int:
        return self.S.shape[1]

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sr / self.hop_length

    @cached_property
    def freqs(self) -> np.ndarray:
        """Centre frequency of each STFT bin, Hz, shape ``(1 + n_fft // 2,)``."""
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)

    @property
    def power(self) -> np.ndarray:
        """Power spectrogram ``S**2`` (computed on each access: the features need only its reductions)."""
        return self.S * self.S

    @cached_property
    def _power_reductions(self) -> tuple[np.ndarray, np.ndarray]:
        # Mel powers and per-frame power sums from S**2 in column chunks: a whole-track power spectrogram
        # would double the STFT's memory.
        mb = _mel_sparse(sr=self.sr, n_fft=self.n_fft, n_mels=N_MELS)
        mel = np.empty((mb.shape[0], self.n_frames), dtype=np.float32)
        total = np.empty(self.n_frames, dtype=np.float32)
        ones = np.ones(self.S.shape[0], dtype=np.float32)
        for i in range(0, self.n_frames, _CHUNK):
            p = self.S[:, i : i + _CHUNK] ** 2
            mel[:, i : i + _CHUNK] = mb @ p
            total[i : i + _CHUNK] = ones @ p
        return mel, total

    @property
    def mel_power(self) -> np.ndarray:
        """Mel power spectrogram, shape ``(N_MELS, n_frames)``."""
        return self._power_reductions[0]

    @property
    def frame_power(self) -> np.ndarray:
        """One-sided power of each frame, ``sum over bins of S**2``, shape ``(n_frames,)``, float32."""
        return self._power_reductions[1]

    @cached_property
    def log_mel(self) -> np.ndarray:
        """Mel spectrogram in dB (``10 log10``, floor -100 dB), shape ``(N_MELS, n_frames)``."""
        # 10 log10(x) as ln(x) 10 / ln 10: numpy's float32 log is vectorised, its log10 is not (4x as long here).
        db = np.maximum(self.mel_power, 1e-10)
        np.log(db, out=db)
        db *= _DB_PER_NEPER
        return db

    @cached_property
    def onset_envelope(self) -> np.ndarray:
        """Onset strength per frame: mean positive log-mel flux (librosa's definition), shape ``(n_frames,)``.

        Frame ``t`` measures the increase from ``t - 1`` to ``t``; frame 0 is 0.
        """
        lm = np.maximum(self.log_mel, self.log_mel.max() - 80.0)
        flux = np.maximum(0.0, np.diff(lm, axis=1)).mean(axis=0)
        return np.concatenate([[0.0], flux]).astype(np.float32)


def compute_spectrum(y: np.ndarray, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> Spectrum:
    """Compute the shared :class:`Spectrum` of mono audio ``y`` (shape ``(n,)``, float32, at ``sr`` Hz)."""
    return Spectrum(stft_magnitude(y, n_fft=n_fft, hop_length=hop_length), sr=sr, n_fft=n_fft, hop_length=hop_length)
