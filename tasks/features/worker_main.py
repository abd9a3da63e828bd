"""The worker process of :class:`tasks.features.pool.ProcessPool`: ``python -m tasks.features.worker_main B R W``.

Start-up, outside the analysis code: ignore Ctrl-C (the parent decides), import the analysis once, cap the
address space (``RLIMIT_AS``) at what the imports reserved plus ``B`` bytes, so that a decoding bomb raises
``MemoryError`` in this process and fails one file instead of exhausting the machine, and say ``"ready"``.
Then, for each ``(item, options, analyze)`` message on pipe ``R``, send
:func:`tasks.features.workers.analyze_item`'s row on pipe ``W``. ``None`` or a closed pipe (the parent is
gone) ends it.
"""

from __future__ import annotations

import resource
import signal
import sys
from multiprocessing.connection import Connection


def address_space_bytes() -> int:
    """This process's virtual memory size (``VmSize``), bytes; 0 where ``/proc`` does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def limit_address_space(budget_bytes: int) -> int:
    """Cap this process's address space at its current size plus ``budget_bytes``; returns the cap, bytes.

    A budget of 0 (or no ``/proc``) sets no cap; an existing lower hard limit is kept.
    """
    current = address_space_bytes()
    if budget_bytes <= 0 or current == 0:
        return 0
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = current + budget_bytes if hard == resource.RLIM_INFINITY else min(current + budget_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def main(argv: list[str]) -> int:
    budget = int(argv[1])
    inbox = Connection(int(argv[2]), writable=False)
    outbox = Connection(int(argv[3]), readable=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import tasks.features.analyze  # noqa: F401  (import once, not per file)
    from tasks.features.workers import analyze_item

    limit_address_space(budget)
    try:
        outbox.send("ready")
    except OSError:
        return 0
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return 0
        if message is None:
            return 0
        item, options, analyze = message
        result = analyze_item(item, options, analyze)
        try:
            outbox.send(result)
        except OSError:  # the pool's process is gone (killed, a second Ctrl-C): nobody to answer, nothing to say
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
