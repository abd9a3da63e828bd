"""Warm worker processes for the CPU-bound analysis, shared by every batch of a run.

Why not Prefect's ProcessPoolTaskRunner: under the ephemeral server each of its workers starts a server of
its own (~9 s each here). Prefect runs one task per batch in threads; the batch task hands its files to
this pool of plain Python processes (:mod:`tasks.features.pool`), which never import Prefect, stay alive
across batches (numba and librosa warm), and isolate faults: a worker that dies, or that the parent kills
at the file's deadline, fails only the file it was on.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import Any, Callable

from tasks.audio.validate import MAX_BYTES
from tasks.constants import BPM_LIMITS, BPM_RANGE
from tasks.features.pool import ProcessPool, python_module
from tasks.vocabulary import Reason, TrackStatus

#: Default wall-clock limit for one file, s (a 2-hour mix analyses in well under a minute).
FILE_TIMEOUT_S: float = 600.0
#: Address space a worker may add to what its imports reserved, bytes: ``RLIMIT_AS`` turns a file that needs
#: more into a ``MemoryError`` (one failed file) instead of a machine that swaps. A 2-hour mix needs ~0.5 GB.
MEMORY_BUDGET_BYTES: int = 2 * 1024**3

#: A function with :func:`tasks.features.analyze.analyze_file`'s signature (tests inject one that crashes).
Analyzer = Callable[..., dict[str, Any]]


def check_bpm_range(bpm_range: tuple[float, float]) -> tuple[float, float]:
    """``bpm_range`` as two floats, or ValueError unless ``lo < hi``, both finite and within :data:`BPM_LIMITS`."""
    lo, hi = (float(v) for v in bpm_range)
    if not (BPM_LIMITS[0] <= lo < hi <= BPM_LIMITS[1]):  # NaN fails every comparison
        raise ValueError(
            f"bpm range must be LO HI with {BPM_LIMITS[0]:g} <= LO < HI <= {BPM_LIMITS[1]:g} BPM, got {lo:g} {hi:g}"
        )
    return lo, hi


def check_timeout(timeout_s: float) -> float:
    """``timeout_s`` as a float, or ValueError unless it is a finite number of seconds above 0."""
    timeout_s = float(timeout_s)
    if not (0 < timeout_s < float("inf")):
        raise ValueError(f"file timeout must be a finite number of seconds above 0, got {timeout_s:g}")
    return timeout_s


@dataclass(frozen=True)
class AnalysisOptions:
    """How every file of a run is analysed.

    Attributes
    ----------
    bpm_range : (float, float)
        Preferred tempo range of the octave choice, BPM.
    max_bytes : int
        Files larger than this are rejected ``TOO_LARGE`` unread, bytes.
    timeout_s : float
        Wall-clock limit for one file, s, enforced by the parent (the worker is killed).
    memory_budget_bytes : int
        Address space each worker may allocate beyond its start-up size, bytes (0: no cap).

    Raises
    ------
    ValueError
        A range that is not ``lo < hi`` within :data:`~tasks.constants.BPM_LIMITS`, or a limit that is not > 0.
    """

    bpm_range: tuple[float, float] = BPM_RANGE
    max_bytes: int = MAX_BYTES
    timeout_s: float = FILE_TIMEOUT_S
    memory_budget_bytes: int = MEMORY_BUDGET_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "bpm_range", check_bpm_range(self.bpm_range))
        object.__setattr__(self, "timeout_s", check_timeout(self.timeout_s))


def _failure(item: dict[str, Any], reason: Reason, detail: str) -> dict[str, Any]:
    from tasks.features.analyze import empty_result  # heavy imports stay out of the parent's import of this module

    return empty_result(
        item["path"],
        item["size_bytes"],
        item["mtime_ns"],
        track_id=item.get("track_id"),
        status=TrackStatus.FAILED.value,
        reason=reason.value,
        detail=detail,
    )


def analyze_item(
    item: dict[str, Any], options: AnalysisOptions = AnalysisOptions(), analyze: Analyzer | None = None
) -> dict[str, Any]:
    """Analyse one planned file (``path``, ``size_bytes``, ``mtime_ns``, ``track_id``) in this process.

    ``analyze`` defaults to :func:`tasks.features.analyze.analyze_file`. No time limit here: the pool's
    parent process enforces ``options.timeout_s`` by killing the worker that runs this.
    """
    if analyze is None:
        from tasks.features.analyze import analyze_file as analyze

    try:
        return analyze(
            item["path"],
            item["size_bytes"],
            item["mtime_ns"],
            track_id=item.get("track_id"),
            max_bytes=options.max_bytes,
            bpm_range=options.bpm_range,
        )
    except MemoryError:  # the worker's address-space cap (tasks.features.worker_main) reached outside the decoder
        return _failure(item, Reason.TOO_LARGE, "out of memory: the worker's address-space cap was reached")


def _timeout_row(payload: tuple, detail: str) -> dict[str, Any]:
    return _failure(payload[0], Reason.TIMEOUT, detail)


def _crash_row(payload: tuple, detail: str) -> dict[str, Any]:
    return _failure(payload[0], Reason.WORKER_CRASH, detail)


#: Pools of the processes that unpickled an :class:`AnalysisPool` (Dask workers), one per settings, kept warm
#: for every batch that process runs.
_SHARED: dict[tuple, ProcessPool] = {}
_SHARED_LOCK = threading.Lock()


def _shared_pool(options: AnalysisOptions, analyze: Analyzer | None) -> ProcessPool:
    key = (options, analyze)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = _process_pool(1, options)
            if len(_SHARED) == 1:
                atexit.register(_close_shared)
        return _SHARED[key]


def _close_shared() -> None:
    with _SHARED_LOCK:
        pools = list(_SHARED.values())
        _SHARED.clear()
    for pool in pools:
        pool.close()


def _process_pool(size: int, options: AnalysisOptions) -> ProcessPool:
    return ProcessPool(
        size,
        [*python_module("tasks.features.worker_main"), str(options.memory_budget_bytes)],
        on_timeout=_timeout_row,
        on_crash=_crash_row,
    )


class AnalysisPool:
    """``workers`` warm processes that analyse files, each file under a deadline the parent enforces.

    A file whose worker runs past ``options.timeout_s`` (busy, stuck in C code, stopped, swapping) gets a
    ``TIMEOUT`` row and its worker is killed and replaced; a file whose worker dies (twice: once more on a
    fresh worker) gets ``WORKER_CRASH``. The rest of the batch is unaffected.

    Parameters
    ----------
    workers : int
        Number of processes. 0 is for a pool shipped to Dask: each Dask worker process that runs a batch
        analyses its files in one child process of its own (kept for every later batch), under the same
        deadline; callers see ``workers == 0`` and get no per-file callback across the cluster. A pool of
        0 that is never shipped analyses in the calling process, without deadline or crash isolation (tests
        that patch the analysis; the command line refuses ``--workers 0``).
    options : AnalysisOptions
        How each file is analysed, its time limit and the workers' memory budget.
    analyze : callable, optional
        A module-level function with :func:`tasks.features.analyze.analyze_file`'s signature, run in the
        workers instead of it (tests pass one that crashes or stops on a chosen file).
    """

    def __init__(
        self, workers: int, options: AnalysisOptions = AnalysisOptions(), *, analyze: Analyzer | None = None
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self.options = options
        self.analyze = analyze
        self._own: ProcessPool | None = _process_pool(workers, options) if workers > 0 else None
        self._inline = workers == 0  # until shipped: __setstate__ gives Dask workers a child process each

    def _pool(self) -> ProcessPool:
        return self._own if self._own is not None else _shared_pool(self.options, self.analyze)

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (for monitoring; empty before the first batch)."""
        return self._pool().pids()

    def analyze_batch(
        self, items: list[dict[str, Any]], on_result: Callable[[dict[str, Any]], None] | None = None
    ) -> list[dict[str, Any]]:
        """Analyse ``items`` and return one result per item, in order; never raises for a bad file."""
        if self._inline:
            results = []
            for item in items:
                results.append(analyze_item(item, self.options, self.analyze))
                if on_result:
                    on_result(results[-1])
            return results
        pool = self._pool()
        futures = [pool.submit((item, self.options, self.analyze), self.options.timeout_s) for item in items]
        results = []
        for f in futures:
            results.append(f.result())
            if on_result:
                on_result(results[-1])
        return results

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Dask workers: only the settings travel; each worker process runs its own child.
        return {"options": self.options, "analyze": self.analyze}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(0, state["options"], analyze=state["analyze"])
        self._inline = False

    @classmethod
    def in_child(cls, options: AnalysisOptions, *, analyze: Analyzer | None = None) -> "AnalysisPool":
        """A ``workers == 0`` pool that analyses in this process's warm child (one per process, e.g. a Dask
        worker's), under the parent-enforced deadline; what a pool shipped to Dask becomes."""
        pool = cls(0, options, analyze=analyze)
        pool._inline = False
        return pool

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> "AnalysisPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
