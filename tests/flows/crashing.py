"""A test-only analyzer for the worker pool: it kills its own worker process on a file named ``crash_me*``.

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
