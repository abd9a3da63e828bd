"""Test-only analyzers for the worker pool: one kills its own worker process on a file named ``crash_me*``,
one stops it (``SIGSTOP``, as a debugger, a swapping machine or a stuck driver would) on ``stop_me*``.

Injected with ``AnalysisPool(..., analyze=analyze_or_crash)``; it lives in a module so that spawned workers
can import it by name.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tasks.features.analyze import analyze_file


def analyze_or_crash(path: str, size_bytes: int, mtime_ns: int, **options: Any) -> dict[str, Any]:
    """:func:`~tasks.features.analyze.analyze_file`, except that the process dies (SIGKILL) on ``crash_me*``,
    as it would on a decoder segfault."""
    if Path(path).name.startswith("crash_me"):
        os.kill(os.getpid(), signal.SIGKILL)
    return analyze_file(path, size_bytes, mtime_ns, **options)


def analyze_or_stop(path: str, size_bytes: int, mtime_ns: int, **options: Any) -> dict[str, Any]:
    """:func:`~tasks.features.analyze.analyze_file`, except that the process stops itself (SIGSTOP) on
    ``stop_me*``: only a parent that kills it at the deadline gets the batch back."""
    if Path(path).name.startswith("stop_me"):
        os.kill(os.getpid(), signal.SIGSTOP)
    return analyze_file(path, size_bytes, mtime_ns, **options)


def analyze_or_stop_or_crash(path: str, size_bytes: int, mtime_ns: int, **options: Any) -> dict[str, Any]:
    """Both of the above: stops on ``stop_me*``, dies on ``crash_me*``."""
    if Path(path).name.startswith("stop_me"):
        return analyze_or_stop(path, size_bytes, mtime_ns, **options)
    return analyze_or_crash(path, size_bytes, mtime_ns, **options)


def analyze_or_hog(path: str, size_bytes: int, mtime_ns: int, **options: Any) -> dict[str, Any]:
    """:func:`~tasks.features.analyze.analyze_file`, except that it asks for 8 GiB of address space on
    ``hog_me*`` (never touched: without a cap it succeeds without using memory)."""
    if Path(path).name.startswith("hog_me"):
        import numpy as np

        np.empty(8 * 1024**3, dtype=np.uint8)
    return analyze_file(path, size_bytes, mtime_ns, **options)
