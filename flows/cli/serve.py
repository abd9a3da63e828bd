"""``cratedig serve``: the reanalysis deployment of a library on a schedule (see :mod:`flows.schedule`)."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Optional

import typer

from flows.cli.app import CatalogOpt, app, out
from flows.cli.errors import UsageError
from flows.cli.options import bpm_range_opt, check_run_paths, file_timeout_opt, workers_option
from flows.schedule import DEFAULT_CRON, api_url, check_cron, parse_interval, serve_reanalysis


@app.command()
def serve(
    path: Path = typer.Argument(..., exists=True, file_okay=False, help="Library folder."),
    catalog: Path = CatalogOpt,
    cron: Optional[str] = typer.Option(None, "--cron", help=f'Cron schedule (default "{DEFAULT_CRON}").'),
    interval: Optional[str] = typer.Option(None, "--interval", help="Or an interval: 3600, 30m, 6h, 1d."),
    timezone: Optional[str] = typer.Option(None, "--timezone", help="Time zone of --cron (default: local)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", callback=workers_option, help="Worker processes, at least 1 (default: all)."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Files per Prefect task (default: ~8 batches per worker, 4-64)."
    ),
    parquet_dir: Optional[Path] = typer.Option(None, "--parquet-dir", help="Parquet export folder."),
    bpm_range: Optional[tuple[float, float]] = bpm_range_opt(None, "Preferred tempo range, BPM (default 70 180)."),
    file_timeout: Optional[float] = file_timeout_opt(None, "Wall-clock limit per file, s (default 600)."),
    name: Optional[str] = typer.Option(
        None,
        "--name",
        help="Deployment name (default after the schedule, library and catalog: nightly-reanalysis-music-1a2b3c4d...).",
    ),
) -> None:
    """Serve the reanalysis deployment of PATH on a schedule (needs a Prefect server: `cratedig server start`)."""
    if cron is not None and interval is not None:
        raise UsageError("give --cron or --interval, not both")
    try:
        every = parse_interval(interval) if interval is not None else None
        if timezone is not None:
            zoneinfo.ZoneInfo(timezone)
        if cron is not None:
            check_cron(cron)
    except zoneinfo.ZoneInfoNotFoundError:
        raise UsageError(f"unknown time zone {timezone!r} (examples: UTC, Europe/Paris)") from None
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    if not api_url():
        raise UsageError(
            "PREFECT_API_URL is not set: start a server first (`cratedig server start`, or `prefect server start` "
            "and export PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    from flows.schedule import deployment_name

    # What analyze refuses at once, serve refuses before it registers: each scheduled run would fail on it.
    check_run_paths(path, catalog, parquet_dir)

    out.print(
        f"serving reanalyze/{name or deployment_name(cron, every, path, catalog)} for {path.resolve()} "
        f"({'every ' + interval if interval else 'cron ' + (cron or DEFAULT_CRON)}); a line per run below; "
        "Ctrl-C stops and pauses the schedule",
        markup=False,
        highlight=False,
    )
    serve_reanalysis(
        path,
        catalog_path=catalog,
        parquet_dir=parquet_dir,
        workers=workers,
        batch_size=batch_size,
        bpm_range=bpm_range,
        file_timeout_s=file_timeout,
        cron=cron,
        interval=every,
        timezone=timezone,
        name=name,
    )
