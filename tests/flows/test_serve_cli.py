"""``cratedig serve``'s options and schedule parsing, without a Prefect server (the served deployment itself is
tested against a real server in test_prefect_server.py)."""

from __future__ import annotations

import os
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


def test_each_library_and_catalog_is_served_under_its_own_deployment(tmp_path):
    # Two libraries served on one schedule shared one deployment: the last to register took the schedule, and the
    # other library was never re-analysed again.
    a, b = tmp_path / "a" / "Music", tmp_path / "b" / "Music"
    every = timedelta(seconds=10)
    names = {
        serve.deployment_name(None, every, a, tmp_path / "a.duckdb"),
        serve.deployment_name(None, every, b, tmp_path / "a.duckdb"),
        serve.deployment_name(None, every, a, tmp_path / "b.duckdb"),
    }
    assert len(names) == 3 and all(n.startswith("reanalysis-every-10s-music-") for n in names)
    assert serve.deployment_name(None, every, a, tmp_path / "a.duckdb") in names  # the same one on every serve
    assert serve.deployment_name(None, None, a, tmp_path / "a.duckdb").startswith("nightly-reanalysis-music-")
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    assert serve.deployment_name(None, None, odd, tmp_path / "a.duckdb").startswith("nightly-reanalysis-caf-")


def test_serve_refuses_what_every_scheduled_run_would_fail_on_before_it_registers(tmp_path, monkeypatch):
    import flows.cli.serve as serve_cli

    served = []
    monkeypatch.setattr(serve_cli, "serve_reanalysis", lambda *a, **k: served.append(a))
    monkeypatch.setattr(serve_cli, "api_url", lambda: "http://127.0.0.1:9/api")  # a server, as far as serve knows
    runner = CliRunner()
    library = tmp_path / "Music"
    library.mkdir()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    res = runner.invoke(app, ["serve", str(library), "--catalog", str(blocker / "c.duckdb"), "--interval", "1h"])
    assert res.exit_code == 5 and "Traceback" not in res.output and len(res.output.splitlines()) == 1, res.output
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/My Mus\xe9c"))
    odd.mkdir()
    res = runner.invoke(app, ["serve", str(odd), "--catalog", str(tmp_path / "c.duckdb"), "--interval", "1h"])
    assert res.exit_code == 2 and "not UTF-8" in res.output and "rename it" in res.output, res.output
    res = runner.invoke(app, ["analyze", str(odd), "--catalog", str(tmp_path / "c.duckdb"), "--workers", "1"])
    assert res.exit_code == 2 and "not UTF-8" in res.output, res.output
    assert served == [] and not (tmp_path / "c.duckdb").exists()
