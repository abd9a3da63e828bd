"""Serve the ``reanalyze`` flow as the ``nightly-reanalysis`` deployment on a schedule.

``flow.serve`` registers the deployment with the Prefect server named by ``PREFECT_API_URL`` and then
polls it for scheduled runs, running each in a subprocess of this one. Stopping it (Ctrl-C) pauses the
schedule. ``prefect.yaml`` declares the same deployment for ``prefect deploy`` and a process work pool.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.settings import DEFAULT_CATALOG

#: Name of the default (nightly) deployment (prefect.yaml declares the same one).
DEPLOYMENT_NAME = "nightly-reanalysis"

#: Schedule used when neither ``--cron`` nor ``--interval`` is given: every night at 03:00.
DEFAULT_CRON = "0 3 * * *"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


#: The longest interval a schedule may have, s (a year and a day).
MAX_INTERVAL_S = 366 * 86400


def parse_interval(text: str) -> timedelta:
    """``'90'``, ``'90s'``, ``'15m'``, ``'6h'`` or ``'1d'`` as a :class:`~datetime.timedelta` (bare numbers are s):
    a whole number of seconds from 1 s to :data:`MAX_INTERVAL_S`, else :class:`ValueError`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    seconds = float(match[1]) * _UNITS[match[2] or "s"] if match else 0.0
    if not (1 <= seconds <= MAX_INTERVAL_S and seconds == int(seconds)):
        raise ValueError(
            f"not an interval: {text!r} (a whole number of seconds from 1 s to 366 d; examples: 3600, 30s, 15m, 6h, 1d)"
        )
    return timedelta(seconds=int(seconds))


#: Cron's nicknames that Prefect takes (``@reboot`` it does not).
_NICKNAMES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


def check_cron(text: str) -> str:
    """``text`` if it is a five-field cron schedule (or a nickname such as ``@daily``) that fires, else
    :class:`ValueError` saying why. Prefect takes a sixth field as seconds (``0 3 * * * *`` runs 60 times a
    night) and accepts dates that never come."""
    fields = text.split()
    if len(fields) != 5 and not (len(fields) == 1 and fields[0].lower() in _NICKNAMES):
        raise ValueError(
            f"not a cron schedule: {text!r} has {len(fields)} fields; cron has five (minute hour day month "
            'weekday), e.g. "0 3 * * *"'
        )
    from prefect.schedules import Cron

    try:
        Cron(text)
    except ValueError:
        raise ValueError(
            f"not a cron schedule: {text!r} (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6; "
            'e.g. "0 3 * * *")'
        ) from None
    try:
        from prefect._vendor.croniter import croniter  # what Prefect's scheduler runs on
    except ImportError:  # (a Prefect that vendors no croniter: its own checks above stand)
        return text
    try:
        croniter(text, datetime.now()).get_next(datetime)
    except Exception:  # croniter's CroniterBadDateError: no date matches
        raise ValueError(f'cron {text!r} never fires: no date matches it (e.g. "0 3 * * *")') from None
    return text


def deployment_name(
    cron: str | None, interval: timedelta | None, library: str | Path | None = None, catalog: str | Path | None = None
) -> str:
    """The deployment's name after its schedule: ``nightly-reanalysis`` (a daily cron between 00:00 and 06:59,
    the default), ``daily-reanalysis``, ``reanalysis-every-6h`` (an interval) or ``scheduled-reanalysis``;
    with ``library`` (and ``catalog``, default :data:`DEFAULT_CATALOG`), followed by
    :func:`flows.libraries.served_key`: ``nightly-reanalysis-my-music-1a2b3c4d``."""
    if interval is not None:
        seconds = interval.total_seconds()
        unit = next(u for u in "dhms" if seconds % _UNITS[u] == 0)
        base = f"reanalysis-every-{int(seconds // _UNITS[unit])}{unit}"
    else:
        fields = (cron or DEFAULT_CRON).split()
        if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() and fields[2:] == ["*", "*", "*"]:
            base = DEPLOYMENT_NAME if int(fields[1]) < 7 else "daily-reanalysis"
        else:
            base = "scheduled-reanalysis"
    if library is None:
        return base
    from flows.libraries import served_key

    return f"{base}-{served_key(library, catalog or DEFAULT_CATALOG)}"


def local_timezone() -> str:
    """The IANA name of this machine's time zone (``TZ``, else ``/etc/localtime``), ``'UTC'`` if unknown.

    Cron schedules are evaluated in this zone, so ``0 3 * * *`` means 03:00 on the wall clock, not in UTC.
    """
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(os.path.realpath("/etc/localtime").split("zoneinfo/", 1)[1])
    except (OSError, IndexError):
        pass
    for name in candidates:
        try:
            if name and zoneinfo.ZoneInfo(name):
                return name
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return "UTC"


def api_url() -> str | None:
    """The Prefect API this process talks to (``PREFECT_API_URL``, from the environment or the profile)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def serve_reanalysis(
    library: str | Path,
    *,
    catalog_path: str | Path = DEFAULT_CATALOG,
    parquet_dir: str | Path | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    bpm_range: tuple[float, float] | None = None,
    file_timeout_s: float | None = None,
    cron: str | None = None,
    interval: timedelta | None = None,
    timezone: str | None = None,
    name: str | None = None,
) -> None:
    """Serve :func:`flows.reanalyze.reanalyze` for ``library`` on a schedule until interrupted.

    Exactly one of ``cron`` and ``interval`` may be given; neither means :data:`DEFAULT_CRON`. The
    deployment (named by :func:`deployment_name` after the schedule, the library and the catalog, unless
    ``name`` is given) carries the library, catalog and
    worker count (and the bpm range and per-file timeout when given) as default parameters and the tags
    ``cratedig`` and ``library:<slug>``. Blocks.
    """
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType

    from flows.libraries import library_tags
    from flows.reanalyze import reanalyze

    if cron and interval:
        raise ValueError("give --cron or --interval, not both")
    timezone = timezone or local_timezone()
    schedule = (
        Interval(interval, timezone=timezone) if interval is not None else Cron(cron or DEFAULT_CRON, timezone=timezone)
    )
    library = Path(library).resolve()
    parameters: dict[str, Any] = {
        "library": str(library),
        "catalog_path": str(Path(catalog_path).resolve()),
        "workers": workers,
        "batch_size": batch_size,
    }
    if bpm_range is not None:
        parameters["bpm_range"] = [float(bpm_range[0]), float(bpm_range[1])]
    if file_timeout_s is not None:
        parameters["file_timeout_s"] = float(file_timeout_s)
    if parquet_dir is not None:
        parameters["parquet_dir"] = str(Path(parquet_dir).resolve())
    # A module entrypoint: the runner's subprocesses import the installed package, wherever they start.
    reanalyze.serve(
        name=name or deployment_name(cron, interval, library, catalog_path),
        schedule=schedule,
        parameters=parameters,
        tags=library_tags(library),
        limit=1,
        pause_on_shutdown=True,
        description=f"Incremental re-analysis of {library} into {parameters['catalog_path']}",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
