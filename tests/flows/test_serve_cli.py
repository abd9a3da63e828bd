"""``cratedig serve``'s options and schedule parsing, without a Prefect server (the served deployment itself is
tested against a real server in test_prefect_server.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import schedule as serve
from flows.cli import app


def test_serve_command_line():
    assert serve.DEPLOYMENT_NAME == "nightly-reanalysis"
    assert [serve.parse_interval(t) for t in ("90", "30s", "15m", "6h", "1d")] == [
        timedelta(seconds=90),
        timedelta(seconds=30),
        timedelta(minutes=15),
        timedelta(hours=6),
        timedelta(days=1),
    ]
    for bad in ("", "0", "5x", "-3m"):
        with pytest.raises(ValueError):
            serve.parse_interval(bad)
    runner = CliRunner()
    usage = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert usage.exit_code == 0 and "--cron" in usage.output and "--interval" in usage.output
    here = str(Path(__file__).resolve().parents[2])
    assert runner.invoke(app, ["serve", here, "--cron", "0 3 * * *", "--interval", "1h"]).exit_code == 2
    assert runner.invoke(app, ["serve", here, "--interval", "soon"]).exit_code == 2
    assert runner.invoke(app, ["serve", here, "--timezone", "Mars/Olympus_Mons"]).exit_code == 2
    for good in ("0 3 * * *", "*/15 2-5 * * MON-FRI", "0 3 29 2 *", "0 4 1 JAN *", "@daily", "@hourly"):
        assert serve.check_cron(good) == good
    for bad in ("0 3 * * * *", "0 3 31 2 *", "@reboot", "", "61 * * * *"):
        with pytest.raises(ValueError):
            serve.check_cron(bad)
