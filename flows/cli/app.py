"""The ``cratedig`` typer app and what its commands share: the consoles and the common options."""

from __future__ import annotations

import os

import typer

from flows.cli.errors import CliConsole, OneLineErrors, exit_codes_help
from flows.settings import DEFAULT_CATALOG

# The terminal shows a progress bar and a summary; Prefect's per-task INFO lines stay in the UI and API.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    help="cratedig: turn a music library into a queryable dataset (DuckDB + Parquet).",
    epilog=exit_codes_help(),
)
console = CliConsole(stderr=True, emoji=False)  # ":x:" in a file name or an error is text
out = CliConsole(emoji=False)

CatalogOpt = typer.Option(DEFAULT_CATALOG, "--catalog", help="Catalog file (DuckDB).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


@app.callback()
def main(
    ctx: typer.Context,
    debug: bool = typer.Option(
        False, "--debug", envvar="CRATEDIG_DEBUG", help="Show the traceback of an error (also CRATEDIG_DEBUG=1)."
    ),
) -> None:
    """cratedig: turn a music library into a queryable dataset (DuckDB + Parquet)."""
    OneLineErrors.debug = debug
    if ctx.invoked_subcommand != "server":
        from flows.server import use_running_server
        from flows.settings import SERVER_STATE

        use_running_server(SERVER_STATE)
