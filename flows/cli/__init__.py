"""The ``cratedig`` command line (typer + rich): one module per command group, all on :data:`app`.

Settings are read here (options, environment) and passed down; the work is in :mod:`flows` and :mod:`tasks`.
"""

from __future__ import annotations

from flows.cli import analyze, catalog, curate, demo, export, serve, server, similar, sql, tags  # noqa: F401  (each module adds its commands to app)
from flows.cli.app import app

__all__ = ["app"]
