"""Settings read in one place: environment defaults for a quiet, offline Prefect, and cratedig's paths.

Imported (via ``flows/__init__``) before Prefect, so the environment is set before Prefect reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Prefect environment cratedig runs with unless the user set otherwise: no telemetry, no network.
PREFECT_ENV_DEFAULTS: dict[str, str] = {
    "DO_NOT_TRACK": "1",  # SDK telemetry off
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # server telemetry off
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",  # rows go to the catalog, not to result files
    "PREFECT_TASKS_REFRESH_CACHE": "false",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
}

#: The repository's ``data/`` folder: default home of the demo library, catalog and Parquet export.
DATA_DIR: Path = Path(os.environ.get("CRATEDIG_DATA", Path(__file__).resolve().parent.parent / "data"))
DEFAULT_CATALOG: Path = DATA_DIR / "catalog.duckdb"
DEFAULT_DEMO_LIBRARY: Path = DATA_DIR / "demo"
#: Where ``cratedig server start`` records the local Prefect server it started (its log goes beside it).
SERVER_STATE: Path = Path(os.environ.get("CRATEDIG_SERVER_STATE", DATA_DIR / "prefect-server.json"))


def configure_prefect_env(**overrides: str) -> None:
    """Apply :data:`PREFECT_ENV_DEFAULTS` (without overriding the user's own settings) and ``overrides``."""
    for key, value in PREFECT_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.update(overrides)


def default_parquet_dir(catalog: str | Path) -> Path:
    """Parquet export folder of a catalog: ``parquet/`` beside ``catalog.duckdb``, ``NAME_parquet/`` beside a
    catalog of any other name (``NAME.duckdb``), so that two catalogs in one folder never overwrite each other's."""
    path = Path(catalog).resolve()
    return path.parent / ("parquet" if path.name == DEFAULT_CATALOG.name else f"{path.stem}_parquet")


def default_workers() -> int:
    """All cores."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
