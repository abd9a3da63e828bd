"""Warm worker processes for the CPU-bound analysis, shared by every batch of a run.

Why not Prefect's ProcessPoolTaskRunner: under the ephemeral server each of its workers starts a server of
its own (~9 s each here). Prefect runs one task per batch in threads; the batch task hands its files to
this pool of plain Python processes, which never import Prefect, stay alive across batches (numba and
librosa warm), and isolate crashes: a worker that dies fails only the file it was on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable

from tasks.audio.validate import MAX_BYTES
from tasks.constants import BPM_RANGE
from tasks.vocabulary import Reason, TrackStatus

#: Default wall-clock limit for one file, s (a 2-hour mix analyses in well under a minute).
FILE_TIMEOUT_S: float = 600.0

#: A function with :func:`tasks.features.analyze.analyze_file`'s signature (tests inject one that crashes).
Analyzer = Callable[..., dict[str, Any]]


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
        Wall-clock limit for one file, s.
    """

    bpm_range: tuple[float, float] = BPM_RANGE
    max_bytes: int = MAX_BYTES
    timeout_s: float = FILE_TIMEOUT_S


class _FileTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that no ``except Exception`` on the way swallows it."""


def _alarm(signum, frame):  # pragma: no cover - runs in the worker
    raise _FileTimeout()


def _init_worker() -> None:
    """Worker start-up: one BLAS thread per process (processes are the parallelism), ignore Ctrl-C."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _alarm)
    import tasks.features.analyze  # noqa: F401  (import once, not per file)


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
    """Analyse one planned file (``path``, ``size_bytes``, ``mtime_ns``, ``track_id``) with a time limit.

    ``analyze`` defaults to :func:`tasks.features.analyze.analyze_file`. The limit is enforced with
    ``SIGALRM`` where this runs in a process's main thread (the pool's workers); elsewhere the pool's own
    wait enforces it.
    """
    if analyze is None:
        from tasks.features.analyze import analyze_file as analyze

    timeout_s = options.timeout_s
    use_alarm = multiprocessing.parent_process() is not None
    if use_alarm:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return analyze(
            item["path"],
            item["size_bytes"],
            item["mtime_ns"],
            track_id=item.get("track_id"),
            max_bytes=options.max_bytes,
            bpm_range=options.bpm_range,
        )
    except _FileTimeout:
        return _failure(item, Reason.TIMEOUT, f"exceeded {timeout_s:.0f} s")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)


class AnalysisPool:
    """A pool of ``workers`` warm processes (``workers=0`` runs inline, e.g. on a Dask worker).

    Parameters
    ----------
    workers : int
        Number of processes; 0 analyses in the calling process.
    options : AnalysisOptions
        How each file is analysed, and its time limit.
    analyze : callable, optional
        A module-level function with :func:`tasks.features.analyze.analyze_file`'s signature, run in the
        workers instead of it (tests pass one that crashes on a chosen file).
    """

    def __init__(
        self, workers: int, options: AnalysisOptions = AnalysisOptions(), *, analyze: Analyzer | None = None
    ) -> None:
        self.workers = workers
        self.options = options
        self.analyze = analyze
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # batches run in several Prefect threads

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
                )
            return self._executor

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (for monitoring; empty before the first batch)."""
        with self._lock:
            executor = self._executor
        return sorted(getattr(executor, "_processes", None) or {}) if executor is not None else []

    def _restart(self, broken: ProcessPoolExecutor | None) -> None:
        with self._lock:
            if self._executor is not None and self._executor is broken:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    def _submit(self, item: dict[str, Any]) -> Future:
        return self._pool().submit(analyze_item, item, self.options, self.analyze)

    def analyze_batch(
        self, items: list[dict[str, Any]], on_result: Callable[[dict[str, Any]], None] | None = None
    ) -> list[dict[str, Any]]:
        """Analyse ``items`` and return one result per item, in order; never raises for a bad file."""
        if self.workers == 0:
            results = []
            for item in items:
                results.append(analyze_item(item, self.options, self.analyze))
                if on_result:
                    on_result(results[-1])
            return results
        pool = self._pool()
        try:
            futures = [self._submit(item) for item in items]
            results = []
            for f in futures:
                results.append(f.result())
                if on_result:
                    on_result(results[-1])
            return results
        except BrokenProcessPool:
            # A worker died (segfault, OOM kill). Retry each file of the batch alone so only the culprit fails.
            self._restart(pool)
            return [self._isolated(item, on_result) for item in items]

    def _isolated(self, item: dict[str, Any], on_result, attempts: int = 2) -> dict[str, Any]:
        # Two attempts: a pool broken by another batch's crash must not blame this file.
        for _ in range(attempts):
            pool = self._pool()
            try:
                result = self._submit(item).result()
                break
            except BrokenProcessPool:
                self._restart(pool)
        else:
            result = _failure(item, Reason.WORKER_CRASH, "the worker process died while analysing this file")
        if on_result:
            on_result(result)
        return result

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Dask workers: only the settings travel; each worker analyses inline.
        return {"workers": 0, "options": self.options, "analyze": self.analyze}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["workers"], state["options"], analyze=state["analyze"])

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "AnalysisPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
