"""Options shared by ``analyze`` and ``serve``: their checks, refused before anything starts (exit 2), and the
paths a run needs (refused before Prefect starts or a deployment is registered)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from flows.cli.support import prefect_paths
from tasks.constants import MAX_WORKERS_PER_CORE
from tasks.features.workers import check_bpm_range, check_timeout


def bpm_range_option(value: tuple[float, float] | None) -> tuple[float, float] | None:
    """Typer callback of ``--bpm-range``: a usage error (exit 2) unless finite, within limits and LO < HI."""
    try:
        return None if value is None else check_bpm_range(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def timeout_option(value: float | None) -> float | None:
    """Typer callback of ``--file-timeout``: a usage error (exit 2) unless a finite number of seconds > 0."""
    try:
        return None if value is None else check_timeout(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def bpm_range_opt(default: tuple[float, float] | None, help: str):
    """The ``--bpm-range LO HI`` option (checked by :func:`bpm_range_option`) of ``analyze`` and ``serve``."""
    return typer.Option(default, "--bpm-range", metavar="LO HI", callback=bpm_range_option, help=help)


def file_timeout_opt(default: float | None, help: str):
    """The ``--file-timeout SECONDS`` option (checked by :func:`timeout_option`) of ``analyze`` and ``serve``."""
    return typer.Option(default, "--file-timeout", metavar="SECONDS", callback=timeout_option, help=help)


def workers_option(value: int | None) -> int | None:
    """Typer callback of ``--workers``: at least 1 (each file in its own killable worker process), and at most
    :data:`MAX_WORKERS_PER_CORE` per core (``--workers 500`` started a process per file on 2 cores)."""
    if value is not None and value < 1:
        raise typer.BadParameter(f"must be at least 1, got {value} (each file is analysed in a worker process)")
    cores = os.cpu_count() or 1
    if value is not None and value > MAX_WORKERS_PER_CORE * cores:
        raise typer.BadParameter(
            f"{value} is more than {MAX_WORKERS_PER_CORE} per core ({cores} here): at most "
            f"{MAX_WORKERS_PER_CORE * cores} (the analysis is CPU-bound; leave it out for one per core)"
        )
    return value


def dask_address_option(value: str | None) -> str | None:
    """Typer callback of ``--dask-address``: an address Dask can connect to (``tcp://HOST:PORT``), checked before
    anything starts."""
    if value is None:
        return value
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import get_backend
    except ImportError:  # without the dask extra the run says what to install
        return value
    try:
        scheme, location = parse_address(value)
        get_backend(scheme)  # a scheme Dask can connect with (not http://, the dashboard's)
        if scheme != "inproc":
            host, port = parse_host_port(location)
            if not host:
                raise ValueError("no host")
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
    except ValueError as exc:
        raise typer.BadParameter(f"not a Dask scheduler address: {value!r} ({exc}); e.g. tcp://127.0.0.1:8786")
    if scheme != "inproc":
        why = _scheduler_answers(value)
        if why is not None:
            raise typer.BadParameter(
                f"no Dask scheduler answers at {value} ({why}): start one (`dask scheduler`) or give its address"
            )
    return value


#: How long ``--dask-address`` may take to shake hands with its scheduler, s.
DASK_CHECK_S = 10.0


def _scheduler_answers(address: str) -> str | None:
    """None when a Dask scheduler at ``address`` completes a client's handshake within :data:`DASK_CHECK_S`, else
    why not. Nothing listening failed the run after Prefect's start and 30 s of retries; a port that accepts but is
    no scheduler hung it for good, or failed it with a MemoryError (a banner read as a message length)."""
    import threading

    outcome: list[str | None] = []

    async def identity() -> Any:
        from distributed.comm import connect

        comm = await connect(address, timeout=DASK_CHECK_S / 2)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    def shake() -> None:
        import asyncio

        try:
            reply = asyncio.run(asyncio.wait_for(identity(), DASK_CHECK_S * 0.9))
            is_scheduler = isinstance(reply, dict) and reply.get("type") == "Scheduler"
            outcome.append(None if is_scheduler else "something answers there, but not a Dask scheduler")
        except BaseException as exc:  # whatever the other end makes Dask raise (a banner read as a length...)
            said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            outcome.append(" ".join(said.split())[:160])

    thread = threading.Thread(target=shake, daemon=True)  # a handshake that never ends is left behind
    thread.start()
    thread.join(DASK_CHECK_S)
    return outcome[0] if outcome else f"no handshake within {DASK_CHECK_S:g} s"


def check_run_paths(library: Path, catalog: Path, parquet_dir: Path | None) -> None:
    """Refuse what every run would fail on, before Prefect starts or a deployment is registered: a folder name a
    Prefect run cannot carry (exit 2), a catalog or Parquet folder that cannot be written (exit 5)."""
    from flows.settings import default_parquet_dir
    from tasks.catalog.parquet import check_export_folder
    from tasks.catalog.writer import check_writable

    prefect_paths(library=library, catalog=catalog, **{"Parquet folder": parquet_dir})
    check_writable(catalog)
    check_export_folder(parquet_dir or default_parquet_dir(catalog))
