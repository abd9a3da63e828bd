"""A small pool of worker processes whose deadlines the parent enforces.

Each worker is a plain ``python -m tasks.features.worker_main`` subprocess that runs one job at a time and
talks to the parent over two pipes (pickled messages). The parent keeps the start time of every job: a
worker past its job's deadline is killed (``SIGKILL`` ends a stopped, stuck or swapping process alike),
its job gets a timeout row, and a new worker takes its place. A worker that dies gets a crash row for its
job. The workers stay warm across batches until :meth:`ProcessPool.close`.

Subprocesses rather than :mod:`multiprocessing`: a Dask worker is a daemonic process, which may not start
``multiprocessing`` children, and :class:`concurrent.futures.ProcessPoolExecutor` cannot kill one worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

#: How long a new worker may take to import the analysis and report ready, s (a loaded machine is slow).
STARTUP_TIMEOUT_S: float = 300.0
#: Workers that die before reporting ready, in a row, after which queued jobs fail instead of waiting.
MAX_FAILED_STARTS: int = 3
#: How long :meth:`ProcessPool.close` waits for idle workers to exit before killing them, s.
CLOSE_GRACE_S: float = 5.0
#: Environment of every worker: one BLAS/OpenMP/numba thread per process (the processes are the parallelism).
WORKER_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


@dataclass
class Job:
    """One unit of work: ``payload`` is sent to a worker; ``future`` receives its result (or a failure row)."""

    payload: Any
    timeout_s: float
    future: Future = field(default_factory=Future)
    attempts: int = 0


class _Worker:
    """One subprocess, its two pipe ends, and the job it is running."""

    def __init__(self, argv: list[str]) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [*argv, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                env=os.environ | WORKER_ENV,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.inbox = Connection(from_child_r, writable=False)
        self.outbox = Connection(to_child_w, readable=False)
        self.ready = False
        self.started = time.monotonic()
        self.job: Job | None = None

    def deadline(self) -> float:
        if self.job is None:
            return self.started + STARTUP_TIMEOUT_S if not self.ready else float("inf")
        return self.started + self.job.timeout_s

    def kill(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.inbox.close()
        self.outbox.close()


class ProcessPool:
    """``size`` warm worker processes running ``argv`` (``python -m <module>``); jobs in, results out.

    Parameters
    ----------
    size : int
        Number of worker processes (started on the first job, replaced when one dies or is killed).
    argv : list of str
        The worker's command; the pool appends the two pipe file descriptors. The worker sends ``"ready"``
        once started, then answers each job's payload with one result message.
    on_timeout, on_crash : callable
        ``(payload, detail) -> result``: the row a job gets when its worker was killed at the deadline, or
        died. A crashed job is retried once on a fresh worker first.
    """

    def __init__(
        self, size: int, argv: list[str], *, on_timeout: Callable[[Any, str], Any], on_crash: Callable[[Any, str], Any]
    ) -> None:
        self.size = size
        self.argv = argv
        self.on_timeout = on_timeout
        self.on_crash = on_crash
        self._workers: list[_Worker] = []
        self._queue: deque[Job] = deque()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failed_starts = 0

    # -- the caller's side (any thread)

    def submit(self, payload: Any, timeout_s: float) -> Future:
        job = Job(payload, timeout_s)
        with self._lock:
            if self._closing:
                raise RuntimeError("pool is closed")
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cratedig-pool", daemon=True)
                self._thread.start()
        os.write(self._wake_w, b".")
        return job.future

    def pids(self) -> list[int]:
        with self._lock:
            return sorted(w.proc.pid for w in self._workers if w.proc.poll() is None)

    def close(self) -> None:
        """Ask idle workers to exit, kill any that do not within :data:`CLOSE_GRACE_S` (a stopped one)."""
        with self._lock:
            self._closing = True
            thread = self._thread
        os.write(self._wake_w, b".")
        if thread is not None:
            thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the dispatcher thread

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    closing = self._closing
                if closing:
                    break
                self._dispatch()
                self._wait_once()
        finally:
            self._shutdown()

    def _dispatch(self) -> None:
        with self._lock:
            idle = [w for w in self._workers if w.ready and w.job is None]
            while idle and self._queue:
                self._start_job(idle.pop(), self._queue.popleft())
            if self._failed_starts >= MAX_FAILED_STARTS:  # workers die before they are ready: give up on the jobs
                while self._queue:
                    job = self._queue.popleft()
                    job.future.set_result(self.on_crash(job.payload, "no worker process could start"))
                return
            starting = sum(1 for w in self._workers if not w.ready)
            spawn = min(self.size - len(self._workers), len(self._queue) - starting)
            for _ in range(spawn):
                try:
                    self._workers.append(_Worker(self.argv))
                except OSError as exc:  # cannot start a process at all: fail the waiting jobs, not the thread
                    while self._queue:
                        self._queue.popleft().future.set_exception(exc)
                    break

    def _start_job(self, worker: _Worker, job: Job) -> None:
        job.attempts += 1
        worker.job, worker.started = job, time.monotonic()
        try:
            worker.outbox.send(job.payload)
        except OSError:
            pass  # the worker is dead: its closed pipe reports it in _wait_once

    def _wait_once(self) -> None:
        with self._lock:
            workers = list(self._workers)
        now = time.monotonic()
        next_deadline = min((w.deadline() for w in workers), default=float("inf"))
        timeout = None if next_deadline == float("inf") else max(0.0, next_deadline - now)
        ready = wait([self._wake_r, *(w.inbox for w in workers)], timeout)
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        for worker in workers:
            if worker.inbox in ready:
                try:
                    message = worker.inbox.recv()
                except (EOFError, OSError):
                    self._lost(worker, "the worker process died while analysing this file")
                    continue
                if not worker.ready:
                    worker.ready = True
                    self._failed_starts = 0
                elif worker.job is not None:
                    job, worker.job = worker.job, None
                    job.future.set_result(message)
        now = time.monotonic()
        for worker in workers:
            if worker in self._workers and now >= worker.deadline():
                if worker.job is None:
                    self._lost(worker, "the worker did not start")
                else:
                    self._timed_out(worker)

    def _remove(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.remove(worker)

    def _timed_out(self, worker: _Worker) -> None:
        job = worker.job
        self._remove(worker)
        job.future.set_result(self.on_timeout(job.payload, f"exceeded {job.timeout_s:g} s; the worker was killed"))

    def _lost(self, worker: _Worker, detail: str) -> None:
        job = worker.job
        code = worker.proc.poll()
        self._remove(worker)
        if job is None:
            if not worker.ready:
                self._failed_starts += 1
            return  # died idle or while starting: a new worker replaces it when there is work
        if job.attempts < 2:  # once more on a fresh worker: the crash may not be this file's fault
            with self._lock:
                self._queue.appendleft(job)
            return
        signal = f" (signal {-code})" if code is not None and code < 0 else ""
        job.future.set_result(self.on_crash(job.payload, detail + signal))

    def _shutdown(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers), []
            queued, self._queue = list(self._queue), deque()
        for job in queued:
            job.future.cancel()
        for worker in workers:
            if worker.job is not None:
                worker.job.future.cancel()
            try:
                worker.outbox.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + CLOSE_GRACE_S
        for worker in workers:
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            worker.kill()


def python_module(module: str) -> list[str]:
    """The command that runs ``module`` with this interpreter (``python -m module``)."""
    return [sys.executable, "-m", module]
