"""``cratedig server start|stop|status|env``: a local Prefect server and UI that later commands use by themselves."""

from __future__ import annotations

import typer

from flows.cli.app import app, console, out
from flows.cli.errors import UsageError
from flows.server import DEFAULT_PORT, running_server, start_server, stop_server
from flows.settings import SERVER_STATE

server_app = typer.Typer(help="A local Prefect server and UI on 127.0.0.1, used by later commands automatically.")
app.add_typer(server_app, name="server")


@server_app.command("start")
def start(port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port on 127.0.0.1.")) -> None:
    """Start the server in the background (its log beside the catalog) and wait until it answers."""
    out.print(f"starting Prefect server on 127.0.0.1:{port} ...", markup=False)
    try:
        info = start_server(SERVER_STATE, port=port)
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    state = "already running" if info.get("already") else "running"
    out.print(
        f"Prefect server {state} (pid {info['pid']}): UI {info['ui_url']}, API {info['api_url']}; "
        "cratedig commands use it from now on (`cratedig server stop` to stop it)",
        markup=False,
        highlight=False,
    )


@server_app.command("stop")
def stop() -> None:
    """Stop the server started by `cratedig server start`."""
    info = stop_server(SERVER_STATE)
    out.print("no server was running" if info is None else f"stopped the Prefect server (pid {info['pid']})")


@server_app.command("status")
def status() -> None:
    """Say whether the server runs, where, and its log."""
    info = running_server(SERVER_STATE)
    if info is None:
        out.print("no local Prefect server (start one with `cratedig server start`)")
        raise typer.Exit(1)
    out.print(
        f"Prefect server running (pid {info['pid']}): UI {info['ui_url']}, API {info['api_url']}, log {info['log']}",
        markup=False,
        highlight=False,
    )


@server_app.command("env")
def env() -> None:
    """Print shell exports that point Prefect's own command line at the server, telemetry off:
    `eval "$(cratedig server env)"` before `prefect deployment run ...`."""
    import shlex

    from flows.settings import PREFECT_ENV_DEFAULTS

    info = running_server(SERVER_STATE)
    if info is None:  # on stderr: stdout is for eval
        console.print("no local Prefect server (start one with `cratedig server start`)", markup=False)
        raise typer.Exit(1)
    # Without these, the `prefect` command starts a temporary server of its own, telemetry on.
    exports = {"PREFECT_API_URL": info["api_url"]} | {
        k: PREFECT_ENV_DEFAULTS[k] for k in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED")
    }
    for key, value in exports.items():
        typer.echo(f"export {key}={shlex.quote(value)}")
