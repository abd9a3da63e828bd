"""A progress hook the CLI installs around a flow call (flow parameters must stay serialisable)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


class ProgressReporter(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, result: dict) -> None: ...


class _Silent:
    def start(self, total: int) -> None:
        pass

    def advance(self, result: dict) -> None:
        pass


_current: ProgressReporter = _Silent()


def current() -> ProgressReporter:
    return _current


@contextmanager
def reporting(reporter: ProgressReporter) -> Iterator[None]:
    """Install ``reporter`` for flows run inside the ``with`` block."""
    global _current
    previous, _current = _current, reporter
    try:
        yield
    finally:
        _current = previous
