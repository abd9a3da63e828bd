"""``cratedig sql``, the similarity commands' headers and outputs, and the catalog read by the oldest DuckDB client
the README names (installed from PyPI into a throwaway virtual environment)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.similarity.families import build_family_catalog

#: The oldest DuckDB the README says reads the catalog (1.0 cannot deserialise its macros).
OLDEST_DUCKDB = "1.1.3"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return build_family_catalog(tmp_path_factory.mktemp("similarity"))[0]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_sql_as_json_csv_and_table(catalog):
    q = "SELECT status, count(*) AS n FROM tracks GROUP BY ALL ORDER BY 1"
    as_json = invoke("sql", q, "--catalog", str(catalog), "--json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert rows and set(rows[0]) == {"status", "n"}
    as_csv = invoke("sql", q, "--catalog", str(catalog), "--csv")
    assert list(csv.DictReader(io.StringIO(as_csv.stdout))) == [{k: str(v) for k, v in r.items()} for r in rows]
    table = invoke("sql", q, "--catalog", str(catalog))
    assert table.exit_code == 0 and "analyzed" in table.stdout and f"{len(rows)} row" in table.stdout


def test_sql_has_the_macros_even_where_the_catalog_lacks_them(catalog, tmp_path):
    q = "SELECT count(*) AS n FROM similar_tracks('1', k := 3)"
    assert json.loads(invoke("sql", q, "--catalog", str(catalog), "--json").stdout) == [{"n": 3}]
    bare = tmp_path / "bare.duckdb"
    shutil.copy(catalog, bare)
    con = duckdb.connect(str(bare))
    con.execute("DROP MACRO TABLE similar_tracks")
    con.close()
    assert json.loads(invoke("sql", q, "--catalog", str(bare), "--json").stdout) == [{"n": 3}]  # TEMP macros


def test_sql_calls_this_cratedigs_macros_over_a_catalogs_older_ones(catalog, tmp_path):
    # `sql` installed its macros only in a catalog that had none: one written by an older cratedig kept its rules
    # (there, 'Am' was no key) until its next write.
    old = tmp_path / "old.duckdb"
    shutil.copy(catalog, old)
    con = duckdb.connect(str(old))
    con.execute("CREATE OR REPLACE MACRO cratedig_camelot_code(c) AS 24")
    con.close()
    q = "SELECT cratedig_camelot_code('Am') AS code, cratedig_camelot_compatible('Am', '8A') AS ok"
    assert json.loads(invoke("sql", q, "--catalog", str(old), "--json").stdout) == [{"code": 14, "ok": True}]


def test_sql_on_a_catalog_without_an_index_and_on_another_programs_file(catalog, tmp_path):
    # A catalog older than the similarity index still answers plain SQL (and has the rule macros); a DuckDB file
    # of another program is refused as one (exit 4), not with an error about cratedig's own macros.
    old = tmp_path / "old.duckdb"
    shutil.copy(catalog, old)
    con = duckdb.connect(str(old))
    con.execute("DROP MACRO TABLE similar_tracks")
    con.execute("DROP TABLE similarity_index")
    con.close()
    q = "SELECT count(*) > 0 AS some, cratedig_camelot_compatible('8A', '9A') AS rule FROM tracks"
    res = invoke("sql", q, "--catalog", str(old), "--json")
    assert res.exit_code == 0 and json.loads(res.stdout) == [{"some": True, "rule": True}], res.output
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE foo (x INTEGER)").close()
    for command in (["sql", "SELECT * FROM foo"], ["status"]):
        res = invoke(*command, "--catalog", str(other))
        assert res.exit_code == 4 and "is not a cratedig catalog" in " ".join(res.output.split()), res.output


def test_sql_json_is_json_whatever_the_values(catalog):
    q = (
        "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, 1.50::DECIMAL(4, 2) AS c, '\\x00\\xff'::BLOB AS d, "
        "[1.0, 'nan'::DOUBLE] AS e"
    )
    res = invoke("sql", q, "--catalog", str(catalog), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == [
        {"a": None, "b": None, "c": 1.5, "d": "00ff", "e": [1.0, None]}
    ]


def test_sql_csv_cells_of_lists_structs_and_blobs_are_json_and_hex(catalog):
    # Python's repr (single quotes, b'...') is no format another tool reads; bpm_candidates is a list of structs.
    q = "SELECT [1, 2] AS l, {'bpm': 120.5, 'score': 0.25} AS st, '\\x00\\xff'::BLOB AS b, NULL AS n"
    res = invoke("sql", q, "--catalog", str(catalog), "--csv")
    assert res.exit_code == 0, res.output
    (row,) = csv.DictReader(io.StringIO(res.stdout))
    assert json.loads(row["l"]) == [1, 2] and json.loads(row["st"]) == {"bpm": 120.5, "score": 0.25}
    assert row["b"] == "00ff" and row["n"] == ""
    (cands,) = csv.DictReader(
        io.StringIO(
            invoke("sql", "SELECT bpm_candidates FROM features LIMIT 1", "--catalog", str(catalog), "--csv").stdout
        )
    )
    assert {"bpm", "score"} <= set(json.loads(cands["bpm_candidates"])[0])


def test_sql_streams_every_row_of_a_large_result_and_refuses_several_statements(catalog):
    q = "SELECT range AS n FROM range(25000)"  # more rows than one chunk
    as_csv = invoke("sql", q, "--catalog", str(catalog), "--csv")
    assert as_csv.stdout.splitlines() == ["n", *map(str, range(25000))]
    assert [r["n"] for r in json.loads(invoke("sql", q, "--catalog", str(catalog), "--json").stdout)] == list(
        range(25000)
    )
    # DuckDB would run both and show the second's rows only, silently.
    res = invoke("sql", "SELECT 1 AS a; SELECT 2 AS b", "--catalog", str(catalog), "--csv")
    assert res.exit_code == 2 and "one statement at a time" in res.output, res.output


def test_sql_is_read_only_and_errors_are_one_line(catalog):
    before = json.loads(invoke("sql", "SELECT count(*) AS n FROM tracks", "--catalog", str(catalog), "--json").stdout)
    for bad in ("DELETE FROM tracks", "SELEC 1", "SELECT * FROM no_such_table"):
        result = invoke("sql", bad, "--catalog", str(catalog))
        assert result.exit_code == 2 and "error: SQL error:" in result.output, result.output
        assert "Traceback" not in result.output
    for empty in ("", "  ", " -- only a comment"):  # nothing to run is a mistake, not a success
        result = invoke("sql", empty, "--catalog", str(catalog))
        assert result.exit_code == 2 and "no SQL statement" in result.output, result.output
    after = json.loads(invoke("sql", "SELECT count(*) AS n FROM tracks", "--catalog", str(catalog), "--json").stdout)
    assert after == before


def test_sql_touches_nothing_outside_the_catalog(catalog, tmp_path):
    out = tmp_path / "leak.csv"
    for bad in (f"COPY (SELECT 1) TO '{out}'", f"SELECT * FROM read_csv('{catalog}')", "INSTALL httpfs", "LOAD httpfs"):
        result = invoke("sql", bad, "--catalog", str(catalog))
        assert result.exit_code == 2 and "error: SQL error:" in result.output, (bad, result.output)
    assert not out.exists()
    again = invoke("sql", "SET enable_external_access = true", "--catalog", str(catalog))
    assert again.exit_code == 2, again.output


def test_sql_shows_control_characters_in_values(catalog):
    table = invoke("sql", "SELECT chr(27) || '[2J' || chr(10) || 'x' AS s", "--catalog", str(catalog))
    assert table.exit_code == 0 and "\\x1b[2J\\x0ax" in table.stdout and "\x1b" not in table.stdout, table.stdout
    as_json = invoke("sql", "SELECT chr(27) AS s", "--catalog", str(catalog), "--json")
    assert json.loads(as_json.stdout) == [{"s": "\x1b"}]  # machine output keeps the value itself


def test_sql_csv_on_a_terminal_shows_control_characters_and_redirected_keeps_them(catalog):
    # CSV to a terminal wrote a tag's escape sequences raw: they retitled the window and rang the bell.
    import pty

    q = "SELECT 'a' || chr(27) || ']0;pwned' || chr(7) || 'b' AS s"
    main, child = pty.openpty()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "sql", q, "--catalog", str(catalog), "--csv"],
        stdout=child,
        stderr=subprocess.PIPE,
        cwd=repo,
        env=env,
        timeout=120,
    )
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in shown and b"\x07" not in shown and b"a\\x1b]0;pwned\\x07b" in shown, shown
    redirected = invoke("sql", q, "--catalog", str(catalog), "--csv")
    assert redirected.stdout.splitlines()[1] == "a\x1b]0;pwned\x07b"  # data keeps the text as stored


def test_similar_names_its_seed_and_m3u_errors_are_one_line(catalog):
    con = duckdb.connect(str(catalog), read_only=True)
    track_id, path, title = con.execute("SELECT track_id, path, title FROM tracks ORDER BY track_id LIMIT 1").fetchone()
    con.close()
    shown = invoke("similar", path, "--catalog", str(catalog), "-k", "3")
    header = " ".join(shown.stdout.split())
    assert shown.exit_code == 0 and f"similar to {title}" in header and f"id {track_id})" in header, shown.stdout
    if os.access("/sys", os.F_OK):
        refused = invoke("similar", path, "--catalog", str(catalog), "--m3u", "/sys/set.m3u")
        assert refused.exit_code == 5 and "error: cannot write /sys/set.m3u" in refused.output, refused.output
        assert "Traceback" not in refused.output


def _old_duckdb_python() -> Path:
    """A virtual environment with duckdb==OLDEST_DUCKDB from PyPI, built once per machine (~10 s)."""
    root = Path(tempfile.gettempdir()) / f"cratedig-duckdb-{OLDEST_DUCKDB}-py{sys.version_info[0]}{sys.version_info[1]}"
    python = root / "bin" / "python"
    if not (root / ".ready").exists():
        shutil.rmtree(root, ignore_errors=True)
        venv.create(root, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"duckdb=={OLDEST_DUCKDB}"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        (root / ".ready").touch()
    return python


@pytest.mark.slow
def test_the_oldest_named_duckdb_reads_the_catalog(catalog):
    code = (
        "import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(json.dumps([duckdb.__version__, c.execute('SELECT count(*) FROM features').fetchone()[0], "
        "c.execute(\"SELECT count(*) FROM similar_tracks('1', k := 3)\").fetchone()[0]]))"
    )
    done = subprocess.run([str(_old_duckdb_python()), "-c", code, str(catalog)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    version, n_features, n_similar = json.loads(done.stdout)
    con = duckdb.connect(str(catalog), read_only=True)
    assert version == OLDEST_DUCKDB and n_features == con.execute("SELECT count(*) FROM features").fetchone()[0] > 0
    assert n_similar == 3
    con.close()


def test_sql_similar_tracks_refuses_bad_arguments_as_python_does(catalog):
    # Before, harmonic := NULL acted as true, metric := NULL as cosine, k := 2.7 as 3, and an unknown metric
    # passed whenever the seed was unknown too.
    for args, why in (
        ("'1', harmonic := NULL", "harmonic must be true or false"),
        ("'1', metric := NULL", "metric must be cosine or euclidean"),
        ("'999999', metric := 'manhattan'", "metric must be cosine or euclidean"),
        ("'1', k := 2.7", "k must be a whole number"),
        ("'1', k := -1", "k must be a whole number"),
        ("'1', k := 0", "k must be a whole number"),  # returned no rows, exit 0
        ("'1', bpm_window := -5", "bpm_window must be a number of at least 0"),
        ("'1', bpm_window := 'nan'::DOUBLE", "bpm_window must be a number of at least 0"),  # filtered nothing
    ):
        res = invoke("sql", f"SELECT * FROM similar_tracks({args})", "--catalog", str(catalog))
        assert res.exit_code == 2 and why in " ".join(res.output.split()), (args, res.output)
    ok = invoke(
        "sql",
        "SELECT count(*) AS n FROM similar_tracks('1', k := 3.0, harmonic := false)",
        "--catalog",
        str(catalog),
        "--json",
    )
    assert json.loads(ok.stdout) == [{"n": 3}], ok.output


def test_a_reader_that_stops_early_is_no_error(catalog):
    """`cratedig sql ... --csv | head -1`: no error line and no traceback, exit 141 (128 + SIGPIPE)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sql", "SELECT * FROM range(1000000)", "--csv", "--catalog", str(catalog)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout.readline() == b"range\n"
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err


@pytest.mark.parametrize("command", [["sql", "SELECT 1 AS one"], ["status"], ["status", "--json"]])
def test_a_reader_gone_before_the_first_line_is_no_error_either(catalog, command):
    """`cratedig status | true`: rich's own handling exited 1, which says "failed"."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *command, "--catalog", str(catalog)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    proc.stdout.close()  # before the command has imported anything, let alone printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err


def test_stdout_closed_or_appended_to_by_any_name(catalog, tmp_path):
    """`export ... /dev/stdout >&-`: the next file opened took descriptor 1 (the catalog); it gets /dev/null now.
    `/proc/thread-self/fd/1 >> log`: another name of stdout, still written through it, so it appends."""
    root = Path(__file__).resolve().parents[2]
    before = catalog.read_bytes()
    cli = [sys.executable, "-m", "flows.cli", "export", "rekordbox", "--catalog", str(catalog)]
    shut = subprocess.run(
        [*cli[:5], "/dev/stdout", *cli[5:]],
        cwd=root,
        stderr=subprocess.PIPE,
        pass_fds=(),
        close_fds=True,
        preexec_fn=lambda: os.close(1),
    )
    assert shut.returncode == 0, shut.stderr.decode()[-500:]
    assert catalog.read_bytes() == before
    log = tmp_path / "log.xml"
    log.write_text("PRE\n")
    with open(log, "ab") as appended:
        run = subprocess.run([*cli[:5], "/proc/thread-self/fd/1", *cli[5:]], stdout=appended, cwd=root)
    assert run.returncode == 0 and log.read_text().startswith("PRE\n<?xml")
    assert log.read_text().endswith("</DJ_PLAYLISTS>\n")


def test_an_export_into_the_file_stderr_goes_to_is_still_whole(catalog, tmp_path):
    """`export rekordbox out.xml 2> out.xml`: the file is replaced whole, not written through stderr (which would
    put the "wrote N tracks" line after the XML)."""
    import xml.etree.ElementTree as ET

    out = tmp_path / "out.xml"
    with open(out, "wb") as err:
        run = subprocess.run(
            [sys.executable, "-m", "flows.cli", "export", "rekordbox", str(out), "--catalog", str(catalog)],
            stderr=err,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert run.returncode == 0
    ET.parse(out)  # no junk after the document


def test_a_dash_is_stdout_for_exports_and_playlists(catalog, tmp_path):
    """`export rekordbox -` wrote a file named '-'."""
    for args, start in ((["export", "traktor", "-"], b"<?xml"), (["similar", "id:1", "--m3u", "-"], b"#EXTM3U")):
        run = subprocess.run(
            [sys.executable, "-m", "flows.cli", *args, "--catalog", str(catalog)], capture_output=True, cwd=tmp_path
        )
        assert run.returncode == 0 and run.stdout.startswith(start), run.stderr[-500:]
    assert not (tmp_path / "-").exists()
    # ./- is the file named '-' (a Path reads it as '-'), as for other Unix tools
    args = ["export", "traktor", "./-", "--catalog", str(catalog)]
    run = subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, cwd=tmp_path)
    assert run.returncode == 0 and run.stdout == b"" and (tmp_path / "-").read_bytes().startswith(b"<?xml")


@pytest.mark.parametrize("target", ["/dev/stderr", "/dev/stdout"])
def test_an_export_into_stderr_gets_no_report_line(catalog, target):
    """`export rekordbox /dev/stderr`, or `/dev/stdout 2>&1`: the "wrote N tracks" line went into the XML."""
    both = subprocess.run(
        [sys.executable, "-m", "flows.cli", "export", "rekordbox", target, "--catalog", str(catalog)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert both.returncode == 0 and both.stdout.startswith(b"<?xml"), both.stdout[-300:]
    assert both.stdout.endswith(b"</DJ_PLAYLISTS>\n") and b"wrote " not in both.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_long_query_stops_at_once_on_ctrl_c_or_sigterm(catalog, sig):
    """SIGTERM waited for the end of the query (a minute here), which then failed; Ctrl-C exited 1 ("Query
    interrupted") where every other command's Ctrl-C exits 130."""
    long_query = "SELECT count(*) FROM range(20000000000) t(x) WHERE x % 7 = 3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sql", long_query, "--catalog", str(catalog)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        time.sleep(4)  # the query is running
        assert proc.poll() is None
        proc.send_signal(sig)
        started = time.monotonic()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and b"Traceback" not in err, err[-500:]
        assert time.monotonic() - started < 10
    finally:
        proc.kill()
        proc.wait()
