"""Block-wise BS.1770-4 / EBU R128 loudness: :class:`LoudnessMeter`, for mixes too long to hold in memory.

Feeding a signal in blocks of any sizes gives :func:`~tasks.features.loudness.r128.measure_loudness`'s figures for the
whole signal (to float rounding) while keeping O(number of 100 ms segments) floats, a buffer of at most 2 x ``_REGION``
samples per channel and transients the size of a block: a 2-hour 44.1 kHz stereo mix is 2.5 GB of float32 but
72 000 segments (measured: 200 MB peak RSS, libraries included, decoding a 2-hour FLAC in 60 s blocks).

Samples are measured in regions that start on whole 100 ms segments of the whole signal, so segments and the
true-peak block grid are the same as for the whole signal. A block of ``_REGION`` samples or more is measured
where it lies (it is not copied); smaller blocks are copied into the buffer until ``_REGION`` samples are waiting.
Across regions the K-weighting state is carried: on the FFT path the end-state projections ``a`` of the last two
segments (see ``r128._segment_pass``), on the ``sosfilt`` path (rates with no whole-sample 100 ms,
e.g. 11025 Hz) the filter's ``zi`` and the energy of the still-open segment.

True peak. Each region is searched with ``_CTX`` (the interpolator's half-length) samples of signal on both
sides, so overs across a region edge are found. A block is examined when its sample peak is at least the
``margin_db`` floor under the sample peak so far and the 256th-highest ~1000-sample block peak so far. Both
thresholds only rise towards their values for the whole signal, so every block ``measure_loudness`` examines is
examined here too and the streamed value is never lower. The one exception is block peaks tied exactly at the
cap, as in a clipped master: ``measure_loudness`` picks among the tied blocks arbitrarily, and this search then
takes its caps (256 coarse, 1024 fine blocks) in each region. Without ties there is no fine-block cap: a region
costs at most 256 x 14 small interpolations (~14 ms), and in practice a few hundred at most.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.signal

from tasks.errors import CratedigError
from tasks.features.loudness.r128 import (
    _TP_COARSE,
    REPLAYGAIN_REFERENCE_LUFS,
    SEGMENT_S,
    Loudness,
    _as_channels,
    _gated_integrated,
    _loudness_range,
    _plan,
    _segment_pass,
    channel_weights,
    k_weighting_sos,
)
from tasks.features.loudness.true_peak import (
    _TP_BLOCK,
    _TP_FINE_PER_COARSE,
    _TP_HALF,
    TRUE_PEAK_MARGIN_DB,
    TRUE_PEAK_MAX_BLOCKS,
    block_peaks,
    interpolated_peak,
    near_divisor,
)

#: Samples per channel buffered before a pass (~24 s at 44.1 kHz; the buffer holds up to twice that, 17 MB for
#: stereo). Blocks at least this long are measured in place. Each region's true-peak search may interpolate up
#: to 256 blocks, so larger regions mean less interpolation.
_REGION = 2**20
_CTX = _TP_HALF  # samples each side of a region that the interpolator reads
_MAX_COARSE = max(1, TRUE_PEAK_MAX_BLOCKS // _TP_FINE_PER_COARSE)


class LoudnessMeter:
    """Streaming integrated loudness, loudness range, true peak and ReplayGain of one signal.

    Parameters
    ----------
    sr : int
        Sample rate, Hz (8000-192000).
    channels : int
        Channel count, 1-6 (5.1 as L R C LFE Ls Rs; see :func:`tasks.features.loudness.r128.channel_weights`).

    Examples
    --------
    >>> meter = LoudnessMeter(44100, 2)
    >>> for block in blocks:        # (2, n) float32 blocks of any length, in order
    ...     meter.feed(block)
    >>> meter.result().integrated_lufs
    """

    def __init__(self, sr: int, channels: int) -> None:
        g = channel_weights(channels)  # validates the channel count, then the rate:
        _as_channels(np.zeros((channels, 0), dtype=np.float32), sr)
        self.sr, self.channels = int(sr), int(channels)
        seg = sr * SEGMENT_S
        self._keep, self._g = g > 0, g[g > 0]
        if seg == int(seg):
            self._plan = _plan(self.sr, int(seg))
            self._coarse = near_divisor(int(seg), _TP_COARSE)
            self._unit = int(seg)  # regions start on whole segments (and so on whole coarse peak blocks)
            self._state = np.zeros((len(self._g), 2, 4))  # end-state projections of the last two segments
        else:
            self._plan, self._coarse = None, _TP_COARSE
            self._unit = self._coarse
            self._sos = k_weighting_sos(self.sr)
            self._state = np.zeros((len(self._sos), len(self._g), 2))  # sosfilt zi
            self._open = 0.0  # K-weighted energy of the open segment so far
            self._closed = 0  # segments closed
        self._fine = near_divisor(self._coarse, _TP_BLOCK)
        self._min_region = max(_REGION, 4 * self._unit)
        self._pos = 0  # samples measured
        self._energies: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._peak = 0.0  # sample peak so far
        self._over = 0.0  # largest interpolated value so far
        self._top = np.zeros(0)  # the _MAX_COARSE highest coarse block peaks so far
        # [context | waiting samples]; the context starts as zeros: the interpolator reads zeros before the signal.
        # Nothing past _fill is ever read, so np.empty: np.zeros of 17 MB cost 2 ms per track here (freed
        # buffers come back from the heap and must be cleared), and untouched pages stay unmapped.
        self._buf = np.empty((channels, _CTX + 2 * self._min_region), dtype=np.float32)
        self._buf[:, :_CTX] = 0.0
        self._fill = _CTX

    def feed(self, x: np.ndarray) -> None:
        """Measure the next block of the signal.

        Parameters
        ----------
        x : np.ndarray, shape (channels, n)
            Full-scale float audio at ``sr`` Hz, any ``n >= 0``; float64 is converted to float32. The meter
            keeps no reference to ``x``.

        Raises
        ------
        CratedigError
            Wrong shape, dtype or channel count, or non-finite samples (possibly detected in a later ``feed``
            or in :meth:`result`: short blocks are measured once ``_REGION`` samples are waiting).
        """
        x = np.asarray(x)
        x = x[None, :] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[0] != self.channels or x.dtype.kind != "f":  # cheap: decoders feed ~1000 samples
            raise CratedigError(f"expected float audio of shape ({self.channels}, n), got {x.dtype} {x.shape}")
        x = x.astype(np.float32, copy=False)
        n, waiting = x.shape[1], self._fill - _CTX
        if n < self._min_region:
            self._buf[:, self._fill : self._fill + n] = x
            self._fill += n
            if waiting + n >= self._min_region:
                end = _CTX + (self._fill - 2 * _CTX) // self._unit * self._unit  # keep _CTX samples after it
                self._region(self._buf, _CTX, end)
                self._keep_tail(self._buf[:, end - _CTX : self._fill])
            return
        # Close the waiting region on x's first whole segment at least _CTX samples in (x then holds the context
        # on both sides of that boundary), then measure x in place up to its last whole segment.
        head = -waiting % self._unit
        head += self._unit if head < _CTX else 0
        self._region(
            np.concatenate([self._buf[:, : self._fill], x[:, : head + _CTX]], axis=1), _CTX, _CTX + waiting + head
        )
        end = head + (n - head - _CTX) // self._unit * self._unit
        self._region(x, head, end)
        self._keep_tail(x[:, end - _CTX :])

    def result(self) -> Loudness:
        """Figures of everything fed so far, as :func:`tasks.features.loudness.r128.measure_loudness` gives for it.

        Does not change the meter: feeding may go on, and a later ``result`` covers the longer signal. The
        trailing partial 100 ms segment counts for the true peak only, as in ``measure_loudness``.

        Returns
        -------
        Loudness
            Integrated loudness (LUFS), loudness range (LU), true peak (dBTP), ReplayGain (dB); ``None`` where
            undefined.
        """
        end = copy.copy(self)
        end._energies, end._lengths = list(self._energies), list(self._lengths)
        if self._fill > _CTX:  # the interpolator reads zeros past the end of the signal, as for a whole track
            end._region(self._buf[:, : self._fill], _CTX, self._fill)
        if self._plan is None:
            end._close_rounded_last()
        energies = np.concatenate([np.zeros(0), *end._energies])
        lengths = np.concatenate([np.zeros(0, dtype=np.int64), *end._lengths])
        integrated = _gated_integrated(energies, lengths)
        peak = max(end._peak, end._over)
        return Loudness(
            integrated_lufs=integrated,
            range_lu=_loudness_range(energies, lengths),
            true_peak_dbtp=float(20.0 * np.log10(peak)) if peak > 0.0 else None,
            replaygain_db=None if integrated is None else REPLAYGAIN_REFERENCE_LUFS - integrated,
        )

    # ----------------------------------------------------------------------------------------- internals
    def _keep_tail(self, tail: np.ndarray) -> None:
        # tail: _CTX samples of context, then the samples still waiting (fewer than a segment + _CTX).
        self._buf[:, : tail.shape[1]] = tail.copy()  # may overlap the buffer it comes from
        self._fill = tail.shape[1]

    def _region(self, w: np.ndarray, lo: int, hi: int) -> None:
        # Measure w[:, lo:hi]; lo sits on a segment boundary of the whole signal, w holds _CTX samples of context
        # before lo and after hi (or ends at hi at the end of the signal).
        x = w[:, lo:hi]
        if self._plan is not None:
            energies, peaks, _, self._state = _segment_pass(x, self._plan, self._state)
            lengths = np.full(len(energies), self._plan.seg, dtype=np.int64)
        else:
            energies, lengths = self._sosfilt_segments(x)
            peaks = block_peaks(x, self._coarse)
        if not np.all(np.isfinite(energies)):
            raise CratedigError("non-finite samples")
        self._energies.append(energies)
        self._lengths.append(lengths)
        self._pos += hi - lo
        self._search(w, lo, hi, peaks)

    def _sosfilt_segments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Segment i spans [round(i * step), round((i + 1) * step)) of the whole signal, as in _sosfilt_pass.
        step, n = self.sr * SEGMENT_S, x.shape[1]
        y, self._state = scipy.signal.sosfilt(self._sos, x[self._keep], axis=-1, zi=self._state)
        index = np.arange(self._closed, self._closed + int(n / step) + 3)
        bounds = np.round(index * step).astype(np.int64)
        bounds = bounds[: 1 + np.searchsorted(bounds[1:], self._pos + n, side="right")]
        cuts = bounds[1:] - self._pos  # the boundaries in (pos, pos + n]: each closes a segment
        sums = self._g @ np.add.reduceat(np.square(y), np.concatenate([[0], cuts[cuts < n]]), axis=-1)
        sums[0] += self._open
        self._open = 0.0 if len(cuts) and cuts[-1] == n else float(sums[-1])
        self._closed += len(cuts)
        return sums[: len(cuts)], np.diff(bounds)

    def _close_rounded_last(self) -> None:
        # _sosfilt_pass's boundaries are round(arange(0, n + 1, step)): the last may round to n + 1 and then
        # closes a segment one sample short. Do the same.
        step, i = self.sr * SEGMENT_S, self._closed + 1
        if i * step < self._pos + 1 and round(i * step) > self._pos:
            self._energies.append(np.array([self._open]))
            self._lengths.append(np.array([round(i * step) - round((i - 1) * step)]))

    def _search(self, w: np.ndarray, lo: int, hi: int, peaks: np.ndarray) -> None:
        # true_peak_linear's search on one region with thresholds from the signal so far (see the module doc).
        region_peak = float(peaks.max(initial=0.0))
        if not np.isfinite(region_peak):
            raise CratedigError("non-finite samples")
        self._peak = max(self._peak, region_peak)
        if region_peak == 0.0:
            return
        flat = peaks.ravel()
        top = np.concatenate([self._top, flat])
        self._top = np.partition(top, -_MAX_COARSE)[-_MAX_COARSE:] if len(top) > _MAX_COARSE else top
        floor = self._peak * 10.0 ** (-TRUE_PEAK_MARGIN_DB / 20.0)
        level = max(floor, float(self._top.min())) if len(self._top) == _MAX_COARSE else floor
        cand = np.flatnonzero(flat >= level)
        tied = len(cand) > _MAX_COARSE  # only ties at `level` (a clipped master): measure_loudness's choice among
        if tied:  # them is arbitrary too; then take its caps, per region
            cand = cand[np.argpartition(flat[cand], -_MAX_COARSE)[-_MAX_COARSE:]]
        if not len(cand):
            return
        channels, blocks = np.divmod(cand, peaks.shape[1])
        starts = lo + blocks * self._coarse
        idx = starts[:, None] + np.arange(self._coarse)
        samples = np.where(idx < hi, w[channels[:, None], np.minimum(idx, hi - 1)], 0.0)  # a last partial block
        fine = np.abs(samples).reshape(len(cand), -1, self._fine).max(axis=-1)
        which, sub = np.nonzero(fine >= floor)
        if tied and len(which) > TRUE_PEAK_MAX_BLOCKS:
            top = np.argpartition(fine[which, sub], -TRUE_PEAK_MAX_BLOCKS)[-TRUE_PEAK_MAX_BLOCKS:]
            which, sub = which[top], sub[top]
        if len(which):
            over = interpolated_peak(w, channels[which], starts[which] + sub * self._fine, self._fine)
            self._over = max(self._over, over)
