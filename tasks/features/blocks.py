"""Cut a mono stream into STFT blocks that are exactly the frames of the whole-track STFT.

A 2-hour mix at 22.05 kHz is 635 MB of float32 samples and its magnitude STFT 1.3 GB: neither may exist at
once. :class:`SpectrumStream` keeps only the samples the next frames need and hands out a
:class:`~tasks.features.spectrum.Spectrum` of ``block_frames`` frames at a time; the features accumulate small
per-frame evidence from each block (:mod:`tasks.track_analysis`). Frame ``t`` is centred on sample
``t * hop_length`` with zeros outside the signal, as :func:`tasks.features.spectrum.stft_magnitude`, so a track
that fits in one block gets exactly the Spectrum it had before.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tasks.constants import HOP_LENGTH, N_FFT, SR
from tasks.features.spectrum import Spectrum, frames_magnitude

#: Frames per block: 5 minutes at the default rate (13,200 frames, a multiple of every feature's stride).
#: Its magnitude STFT is 54 MB; a track up to this long is analysed in one block.
BLOCK_FRAMES: int = 13_200


class SpectrumStream:
    """Frame a mono signal that arrives in chunks into consecutive Spectrum blocks.

    Parameters
    ----------
    sr : int
        Sample rate of the mono chunks, Hz.
    n_fft, hop_length : int
        Frame length and hop, samples.
    block_frames : int
        Frames per yielded block (the last block may be shorter).

    Examples
    --------
    >>> stream = SpectrumStream()
    >>> blocks = [*stream.feed(y[:100_000]), *stream.feed(y[100_000:]), *stream.finish()]
    """

    def __init__(
        self, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH, block_frames: int = BLOCK_FRAMES
    ) -> None:
        self.sr, self.n_fft, self.hop_length, self.block_frames = sr, n_fft, hop_length, block_frames
        self._half = n_fft // 2
        # The buffer holds samples [_buf_start, _buf_start + len(_buf)) of the signal (negative: zero padding).
        self._buf = np.zeros(self._half, dtype=np.float32)
        self._buf_start = -self._half
        self._pending: list[np.ndarray] = []  # chunks not yet joined to _buf: joined once per block
        self._next_frame = 0
        self.n_samples = 0

    def feed(self, y: np.ndarray) -> Iterator[Spectrum]:
        """Append mono samples (shape ``(n,)``, float32) and yield every block now complete."""
        y = np.asarray(y, dtype=np.float32)
        if y.size:
            self._pending.append(y)
            self.n_samples += len(y)
        while True:
            last = self._next_frame + self.block_frames - 1
            if last * self.hop_length + self._half > self.n_samples:
                return  # its last frame still needs samples that have not arrived
            yield self._block(self.block_frames)

    def finish(self) -> Iterator[Spectrum]:
        """Yield the remaining frames (zeros after the signal's end); the total is ``1 + n // hop_length``."""
        n_frames = 1 + self.n_samples // self.hop_length
        self._pending.append(np.zeros(self.n_fft, dtype=np.float32))
        while self._next_frame < n_frames:
            yield self._block(min(self.block_frames, n_frames - self._next_frame))

    def _block(self, n: int) -> Spectrum:
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        t0 = self._next_frame
        lo = t0 * self.hop_length - self._half - self._buf_start
        hi = lo + (n - 1) * self.hop_length + self.n_fft
        S = frames_magnitude(self._buf[lo:hi], n, n_fft=self.n_fft, hop_length=self.hop_length)
        self._next_frame = t0 + n
        drop = self._next_frame * self.hop_length - self._half - self._buf_start
        self._buf = self._buf[drop:].copy()
        self._buf_start += drop
        return Spectrum(S, sr=self.sr, n_fft=self.n_fft, hop_length=self.hop_length)
