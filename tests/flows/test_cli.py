"""The command line in-process (typer's CliRunner), on catalogs written by the plain store functions: no
Prefect, no subprocess. Whole runs through ``cratedig analyze`` are in test_durability.py."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.catalog.runs import finish_run, start_run
from tasks.catalog.store import open_catalog, store_results
from tasks.constants import ANALYZER_VERSION
from tasks.features.analyze import analyze_file


def cli(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory, format_library):
    """A catalog of the format library's flac and wav songs, its empty flac and its HTML page named .mp3."""
    root, _ = format_library
    files = [p for p in sorted(root.rglob("*")) if p.suffix in (".flac", ".wav") or p.name == "not_audio.mp3"]
    catalog = tmp_path_factory.mktemp("cli") / "catalog.duckdb"
    con = open_catalog(catalog)
    run_id = str(uuid.uuid4())
    start_run(con, run_id, str(root), analyzer_version=ANALYZER_VERSION)
    results = [analyze_file(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    counts = store_results(con, results, run_id)
    finish_run(con, run_id, counts | {"files": len(files)})
    con.close()
    return catalog, counts


def test_help_lists_every_command():
    res = cli("--help")
    assert res.exit_code == 0
    for command in ("analyze", "demo", "status", "rejects", "similar", "mix", "serve"):
        assert command in res.output


def test_status_json_counts_the_catalog(small_catalog):
    catalog, counts = small_catalog
    res = cli("status", "--json", "--catalog", catalog)
    assert res.exit_code == 0, res.output
    status = json.loads(res.stdout)
    assert status["tracks"] == sum(counts.values()) == 4
    assert status["by_status"] == {k: v for k, v in counts.items() if v}
    assert status["features_by_version"] == {str(ANALYZER_VERSION): counts["analyzed"]}
    assert status["features_by_bpm_range"] == {"70-180": counts["analyzed"]}
    text = cli("status", "--catalog", catalog).output
    assert re.search(rf"bpm range 70-180\s*│\s*{counts['analyzed']}\b", text), text
    assert status["last_run"]["status"] == "completed"


def test_status_says_which_older_rows_are_still_current(small_catalog, tmp_path):
    # Rows of a version whose successors changed only ARHYTHMIC tracks' results (or only other ranges') are not
    # all re-analysed (tasks.catalog.scan.plan_scan); status says which are current rather than list them as old.
    import shutil

    import duckdb

    from tasks.catalog.scan import required_version

    floor = required_version(ANALYZER_VERSION, at_default=True, arhythmic=False)
    catalog = tmp_path / "aged.duckdb"
    shutil.copy(small_catalog[0], catalog)
    con = duckdb.connect(str(catalog))
    ids = [r[0] for r in con.execute("SELECT track_id FROM features ORDER BY 1").fetchall()]
    con.execute("UPDATE features SET analyzer_version = ? WHERE track_id = ?", [floor, ids[0]])
    con.execute("UPDATE features SET analyzer_version = ? WHERE track_id = ?", [floor - 1, ids[1]])
    con.close()
    res = cli("status", "--catalog", catalog)
    assert res.exit_code == 0, res.output
    lines = {m[1]: line for line in res.output.splitlines() if (m := re.search(r"analyzer_version (\d+)", line))}
    assert "current" not in lines[str(floor - 1)]
    assert ("(current unless ARHYTHMIC)" in lines[str(floor)]) == (floor < ANALYZER_VERSION)


def test_rejects_json_lists_the_bad_files(small_catalog):
    catalog, _ = small_catalog
    res = cli("rejects", "--json", "--catalog", catalog)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["reason"], r["path"].rsplit("/", 1)[-1]) for r in rows] == [
        ("EMPTY", "empty.flac"),
        ("NOT_AUDIO", "not_audio.mp3"),
    ]


def test_status_without_a_catalog_says_what_to_do(tmp_path):
    res = cli("status", "--catalog", tmp_path / "nothing.duckdb")
    assert res.exit_code == 4  # ExitCode.NOT_A_CATALOG (flows/cli/errors.py)
    assert "no catalog" in res.output and "cratedig analyze" in res.output


def test_analyze_refuses_a_missing_folder_up_front(tmp_path):
    res = cli("analyze", tmp_path / "not-there", "--catalog", tmp_path / "c.duckdb")
    assert res.exit_code == 2
    assert not (tmp_path / "c.duckdb").exists()


def test_an_export_that_cannot_be_written_names_the_file_and_exits_5(small_catalog, tmp_path):
    catalog, _ = small_catalog
    target = tmp_path / "ro" / "x.xml"
    target.parent.mkdir()
    target.parent.chmod(0o500)
    try:
        if os.access(target.parent, os.W_OK):  # root ignores the mode: /sys cannot be written by anyone
            target = Path("/sys/cratedig-test.xml")
        res = cli("export", "rekordbox", target, "--catalog", catalog)
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert res.exit_code == 5, res.output
    assert f"cannot write {target}" in res.output and ".tmp" not in res.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["analyze", "/no/such/folder"], "does not exist"),
        (["similar", "x", "-k", "0"], "-k"),
        (["no-such-command"], "No such command"),
        (["analyze", ".", "--no-such-option"], "No such option"),
    ],
)
def test_a_bad_option_or_argument_is_one_line_and_exit_2(args, says):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr


def test_similar_to_a_rejected_file_says_why_it_has_no_neighbours(small_catalog, format_library):
    catalog, _ = small_catalog
    root, _ = format_library
    res = cli("similar", root / "empty.flac", "--catalog", catalog)
    assert res.exit_code == 1, res.output
    assert "rejected (EMPTY)" in res.output and "cratedig rejects" in res.output


def test_a_run_that_only_recorded_moves_missing_files_or_unreadable_entries_says_so(tmp_path):
    # It said "the catalog is up to date" after marking a file missing.
    from flows.cli.analyze import print_summary
    from flows.cli.app import out

    base = {"files": 3, "to_analyze": 0, "analyzed": 0, "rejected": 0, "failed": 0, "catalog": "c.duckdb"}
    tmp_path = tmp_path.relative_to(tmp_path.parent)  # short enough not to be folded across lines
    for extra, expected in (
        ({"missing": 1, "moved": 0}, "Nothing to analyse; recorded 1 missing."),
        ({"missing": 2, "moved": 1}, "Nothing to analyse; recorded 1 moved and 2 missing."),
        ({"missing": 0, "moved": 0}, "Nothing to analyse: the catalog is up to date."),
        # A run (it has "seconds") stores each unreadable entry (a dangling link) as a reject; the idle path does not
        (
            {"missing": 1, "unreadable": 1, "seconds": 0.4},
            "Nothing to analyse; recorded 1 missing and 1 unreadable entry.",
        ),
        ({"unreadable": 2, "seconds": 0.4}, "Nothing to analyse; recorded 2 unreadable entries."),
        ({"unreadable": 2}, "Nothing to analyse: the catalog is up to date."),
        # A new library of only unreadable entries (a dangling link, a named pipe): no audio, but recorded
        ({"files": 0, "unreadable": 2, "seconds": 0.4}, f"No audio files under {tmp_path}; recorded 2 unreadable"),
        ({"files": 0, "unreadable": 2}, f"No audio files under {tmp_path}."),
    ):
        with out.capture() as captured:
            print_summary(base | extra, tmp_path, tmp_path / "c.duckdb")
        assert expected in " ".join(captured.get().split()), captured.get()
