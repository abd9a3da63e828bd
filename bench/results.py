"""``bench/RESULTS.md``: each benchmark rewrites its own section with what it printed, the date and the machine.

A section lies between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; one that is not there yet is
appended. Figures live here and in the git history of this file, never in docstrings.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")


class _Tee(io.TextIOBase):
    """Writes go to the terminal and into a buffer."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream, self.buffer_ = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.buffer_.write(text)

    def flush(self) -> None:
        self.stream.flush()


def machine() -> str:
    """One line on where the figures were measured: CPU model, cores, Python."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, body: str, *, path: Path = RESULTS) -> None:
    """Replace (or append) section ``name`` of ``path`` with ``body`` (markdown)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + f"\n\n{block}\n"
    path.write_text(text if text.endswith("\n") else text + "\n")


@contextlib.contextmanager
def recording(name: str, title: str, *, section: str | None = None) -> Iterator[None]:
    """Print as usual; on success, write everything printed to section ``section`` (default ``name``, the
    benchmark's module) of ``bench/RESULTS.md``."""
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = tee.stream
    command = "python -m bench." + name + "".join(f" {a}" for a in sys.argv[1:])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = f"## {title}\n\n`{command}` — {when}, {machine()}\n\n```\n{tee.buffer_.getvalue().rstrip()}\n```"
    write_section(section or name, body)
