"""Errors in one line: each user-facing failure prints one ``error:`` line and its documented exit code, never a
traceback (``--debug`` shows it); ``cratedig --help`` lists the codes. No Prefect server is started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.errors import EXIT_CODES, ExitCode

#: A folder nobody may write, root included (sysfs refuses new files); a chmod'ed one otherwise would not stop root.
READ_ONLY_DIR = Path("/sys")


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def assert_one_line(result, code: ExitCode, *fragments: str) -> None:
    text = result.output
    assert result.exit_code == code, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, text
    joined = " ".join(text.split())
    for fragment in fragments:
        assert fragment in joined, text


@pytest.fixture()
def not_catalogs(tmp_path) -> dict[str, Path]:
    text = tmp_path / "notes.duckdb"
    text.write_text("my notes, not a database\n")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(os.urandom(4096))
    folder = tmp_path / "folder.duckdb"
    folder.mkdir()
    return {"text": text, "garbage": garbage, "folder": folder}


@pytest.mark.parametrize("kind", ["text", "garbage", "folder"])
@pytest.mark.parametrize("command", ["status", "rejects", "sql", "similar", "analyze"])
def test_not_a_catalog(not_catalogs, tmp_path, kind, command):
    catalog = str(not_catalogs[kind])
    args = {
        "status": ["status"],
        "rejects": ["rejects"],
        "sql": ["sql", "select 1"],
        "similar": ["similar", "x"],
        "analyze": ["analyze", str(tmp_path)],
    }[command]
    assert_one_line(invoke(*args, "--catalog", catalog), ExitCode.NOT_A_CATALOG, "is not a cratedig catalog")


def test_no_catalog_yet(tmp_path):
    assert_one_line(
        invoke("status", "--catalog", str(tmp_path / "none.duckdb")), ExitCode.NOT_A_CATALOG, "no catalog at"
    )
    # Text in a message is text: rich would turn ":x:" into an emoji (seen in /etc/passwd's lines).
    assert_one_line(invoke("status", "--catalog", str(tmp_path / "a:x:b.duckdb")), ExitCode.NOT_A_CATALOG, "a:x:b")


@pytest.mark.skipif(not os.access(READ_ONLY_DIR, os.F_OK), reason="no /sys")
def test_catalog_in_a_read_only_folder(tmp_path):
    (tmp_path / "a.flac").write_bytes(b"")
    result = invoke("analyze", str(tmp_path), "--catalog", str(READ_ONLY_DIR / "catalog.duckdb"))
    assert_one_line(result, ExitCode.NOT_WRITABLE, "cannot write", "catalog.duckdb")


def test_an_export_folder_that_cannot_be_written_is_refused_before_a_run(tmp_path):
    # It failed only at the run's end ("the run failed", exit 1), or, with nothing to analyse, with exit 1.
    library = tmp_path / "lib"
    library.mkdir()
    (library / "a.flac").write_bytes(b"")
    (tmp_path / "f").write_text("a file where a folder should be")
    catalog = str(tmp_path / "c.duckdb")
    result = invoke("analyze", str(library), "--catalog", catalog, "--parquet-dir", str(tmp_path / "f" / "pq"))
    assert_one_line(result, ExitCode.NOT_WRITABLE, "Parquet export", "is not a folder")
    result = invoke("analyze", str(library), "--catalog", catalog, "--parquet-dir", str(tmp_path / ("x" * 300)))
    assert_one_line(result, ExitCode.NOT_WRITABLE, "Parquet export", "longer than")
    (tmp_path / "pq").mkdir()
    (tmp_path / "pq" / "exports").write_text("a file where the exports' folder should be")
    result = invoke("analyze", str(library), "--catalog", catalog, "--parquet-dir", str(tmp_path / "pq"))
    assert_one_line(result, ExitCode.NOT_WRITABLE, "Parquet export", "exports is not a folder")
    if os.access(READ_ONLY_DIR, os.F_OK):  # read-only for root too (a chmod is not)
        result = invoke("analyze", str(library), "--catalog", catalog, "--parquet-dir", str(READ_ONLY_DIR / "pq"))
        assert_one_line(result, ExitCode.NOT_WRITABLE, "Parquet export", "is read-only")
    assert not (tmp_path / "c.duckdb").exists()  # refused before anything was written


def test_bad_cron_and_interval(tmp_path):
    assert_one_line(invoke("serve", str(tmp_path), "--cron", "not a cron"), ExitCode.USAGE, "has 3 fields")
    assert_one_line(invoke("serve", str(tmp_path), "--cron", "61 3 * * *"), ExitCode.USAGE, "minute 0-59")
    # Prefect reads a sixth field as seconds: "0 3 * * * *" would run every second from 03:00 to 03:00:59.
    assert_one_line(invoke("serve", str(tmp_path), "--cron", "0 3 * * * *"), ExitCode.USAGE, "has 6 fields")
    assert_one_line(invoke("serve", str(tmp_path), "--cron", "0 3 31 2 *"), ExitCode.USAGE, "never fires")
    assert_one_line(invoke("serve", str(tmp_path), "--cron", ""), ExitCode.USAGE, "has 0 fields")
    assert_one_line(invoke("serve", str(tmp_path), "--interval", "soon"), ExitCode.USAGE, "not an interval")
    for interval in ("", "0.5s", "1.5s", "0.9", "99999999999d", "367d"):  # (0.5s crashed on the deployment's name)
        assert_one_line(invoke("serve", str(tmp_path), "--interval", interval), ExitCode.USAGE, "not an interval")


def test_bad_dask_address_is_refused_before_anything_starts(tmp_path):
    for address in (
        "notaurl",
        "tcp://host",
        "tcp://127.0.0.1:99999",
        "http://127.0.0.1:8787",
        "ws://h:0",
        "tcp://:8786",
    ):
        result = invoke("analyze", str(tmp_path), "--dask-address", address)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "not a Dask scheduler address" in " ".join(result.output.split()), result.output
        assert "connecting to Prefect" not in result.output and "Traceback" not in result.output


def test_a_dask_address_with_no_scheduler_is_refused_before_anything_starts(tmp_path):
    from tests.processes import free_port

    result = invoke("analyze", str(tmp_path), "--dask-address", f"tcp://127.0.0.1:{free_port()}")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "no Dask scheduler answers" in " ".join(result.output.split()), result.output
    assert "connecting to Prefect" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "catalog.duckdb").exists() and not list(tmp_path.iterdir())


def test_a_dask_address_where_something_else_answers_is_refused_before_anything_starts(tmp_path):
    # Only a TCP connect was checked: a port that sent a banner failed the run with a MemoryError after Prefect's
    # start (Dask read the banner as a message length), and one that said nothing hung it for good.
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def banner() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            conn.close()

    threading.Thread(target=banner, daemon=True).start()
    try:
        result = invoke("analyze", str(tmp_path), "--dask-address", f"tcp://127.0.0.1:{port}")
    finally:
        server.close()
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "no Dask scheduler answers" in " ".join(result.output.split()), result.output
    assert "connecting to Prefect" not in result.output and "Traceback" not in result.output


def test_a_server_that_stopped_answering_is_one_line_that_says_what_to_do():
    import httpx

    from flows.cli.errors import ExitCode, classify

    def wrapped(inner: BaseException) -> BaseException:
        try:
            raise RuntimeError("wrap") from inner
        except RuntimeError as exc:
            return exc

    for exc in (
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError(""),
        RuntimeError("Failed to reach API at http://127.0.0.1:4394/api/"),
        ExceptionGroup("g", [httpx.ConnectError("y")]),
        wrapped(httpx.ConnectError("z")),
    ):
        code, message = classify(exc)
        assert code == ExitCode.ERROR and "cratedig server start" in message and "\n" not in message, exc
    assert "cratedig server start" not in classify(RuntimeError("something else"))[1]


def test_debug_shows_the_traceback(not_catalogs):
    args = ("status", "--catalog", str(not_catalogs["text"]))
    assert "Traceback" in invoke("--debug", *args).output
    assert "Traceback" in invoke(*args, env={"CRATEDIG_DEBUG": "1"}).output


def test_debug_shows_the_traceback_of_an_error_a_command_put_in_words(tmp_path):
    catalog = tmp_path / "c.duckdb"
    assert invoke("sql", "select 1", "--catalog", str(catalog)).exit_code == ExitCode.NOT_A_CATALOG
    from tasks.catalog.store import open_catalog

    open_catalog(catalog).close()
    for args, code in ((("similar", "nosuchthing"), ExitCode.ERROR), (("sql", "SELEC"), ExitCode.USAGE)):
        assert_one_line(invoke(*args, "--catalog", str(catalog)), code)
        result = invoke("--debug", *args, "--catalog", str(catalog))
        assert result.exit_code == code and "Traceback" in result.output, result.output
        assert result.output.rstrip().splitlines()[-1].startswith("error: "), result.output


def test_help_lists_the_exit_codes():
    text = " ".join(invoke("--help").output.split())
    for code in EXIT_CODES:
        assert f"{int(code)} " in text
    assert "Exit codes:" in text and "--debug" in text


def test_analyze_of_an_empty_folder_says_so_at_once(tmp_path):
    # No Prefect server starts: nothing to do is decided from the walk.
    result = invoke("analyze", str(tmp_path / "."), "--catalog", str(tmp_path / "c.duckdb"))
    assert result.exit_code == 0, result.output
    assert "No audio files under" in result.output
    assert not (tmp_path / "c.duckdb").exists()
    # Nothing is left beside the catalog's path (no lock file), and the summary does not name a catalog.
    assert "no catalog written at" in " ".join(result.output.split()) and not list(tmp_path.glob("c.duckdb*"))
    as_json = invoke("analyze", str(tmp_path / "."), "--catalog", str(tmp_path / "c.duckdb"), "--json")
    assert json.loads(as_json.stdout)["catalog"] is None


def test_a_first_run_publishes_its_empty_catalog_before_prefect_starts(tmp_path, monkeypatch):
    # Prefect's embedded server takes 15-45 s to start: readers meanwhile see an empty catalog, not "no catalog".
    import typer

    import flows.cli.analyze
    from tasks.catalog.writer import open_reader
    from tasks.synth.files import write_audio
    from tasks.synth.songs import SongSpec, render_song

    (tmp_path / "music").mkdir()
    song = render_song(SongSpec(bpm=120.0, tonic=0, mode="major", duration_s=8.0, seed=1), sr=22050)
    write_audio(tmp_path / "music" / "a.wav", song, 22050)
    catalog = tmp_path / "new.duckdb"
    seen = []

    def before_prefect(*args, **kwargs):
        con = open_reader(catalog)
        seen.append(con.execute("SELECT count(*) FROM tracks").fetchall()[0][0])
        con.close()
        raise typer.Exit(7)

    monkeypatch.setattr(flows.cli.analyze, "_run_flow", before_prefect)
    assert invoke("analyze", str(tmp_path / "music"), "--catalog", str(catalog)).exit_code == 7
    assert seen == [0]


def test_the_consoles_width_follows_columns_when_it_prints(monkeypatch):
    # rich reads COLUMNS once, when a console is made (at import): with COLUMNS exported, a later value (a test's
    # CliRunner env, a resized terminal's) was ignored, and tables were cut at the first one.
    from flows.cli.errors import CliConsole

    monkeypatch.setenv("COLUMNS", "80")
    console = CliConsole()
    monkeypatch.setenv("COLUMNS", "200")
    assert console.width == 200
    assert CliConsole(width=120).width == 120  # a width given stays


@pytest.mark.parametrize("command", [["--help"], ["analyze", "--help"], []])
def test_help_whose_reader_is_gone_or_that_cannot_be_written(command):
    """`cratedig --help | head`: typer's own rich console exited 1 ("failed"), as `status | head` once did;
    `--help > /dev/full` printed a traceback. No arguments at all print the help too."""
    root = Path(__file__).resolve().parents[2]
    cli = [sys.executable, "-m", "flows.cli", *command]
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    proc.stdout.close()  # before the help is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == ExitCode.BROKEN_PIPE and err == "", err
    with open("/dev/full", "wb") as full:
        done = subprocess.run(cli, stdout=full, stderr=subprocess.PIPE, cwd=root, text=True)
    assert (done.returncode, done.stderr) == (
        ExitCode.NOT_WRITABLE,
        "error: cannot write the output: No space left on device\n",
    )
    # /dev/null from the start is a reader that reads everything (no arguments at all are a usage error)
    assert subprocess.run(cli, stdout=subprocess.DEVNULL, cwd=root).returncode == (0 if command else ExitCode.USAGE)


def test_errors_keep_their_exit_code_when_stderr_cannot_be_written(tmp_path):
    """`2>/dev/full`: the error line is lost, and every error exited 1 (the print raised) instead of its own code."""
    root = Path(__file__).resolve().parents[2]
    missing = str(tmp_path / "none.duckdb")
    with open("/dev/full", "wb") as full:
        for args, code in (
            (["sql", "--bogus"], ExitCode.USAGE),
            (["status", "--catalog", missing], ExitCode.NOT_A_CATALOG),
            (["--debug", "similar", "x", "--catalog", missing], ExitCode.NOT_A_CATALOG),
            (["--help"], ExitCode.NOT_WRITABLE),  # stdout is /dev/full too
        ):
            done = subprocess.run([sys.executable, "-m", "flows.cli", *args], stdout=full, stderr=full, cwd=root)
            assert done.returncode == code, args
        # Nor does a report line that cannot be written fail the work it reports: the export is written, exit 0.
        from tasks.catalog.store import open_catalog

        open_catalog(catalog := tmp_path / "c.duckdb").close()
        out = tmp_path / "out.nml"
        args = ["export", "traktor", str(out), "--catalog", str(catalog)]
        done = subprocess.run([sys.executable, "-m", "flows.cli", *args], stderr=full, cwd=root)
        assert done.returncode == 0 and out.read_bytes().startswith(b"<?xml")


def test_signals_the_caller_ignores_stay_ignored(tmp_path):
    """`nohup cratedig ...`: the entry point took SIGHUP (and an ignored SIGTERM) as Ctrl-C all the same."""
    from tasks.catalog.store import open_catalog

    open_catalog(catalog := tmp_path / "c.duckdb").close()
    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "sys.argv[0] = 'cratedig'\n"
        "import flows.cli.sql as sql\n"
        "real = sql.interrupt.stop_signals_interrupt\n"
        "def hit(con):\n"
        "    import os; os.kill(os.getpid(), signal.SIGHUP); os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(con)\n"
        "sql.interrupt.stop_signals_interrupt = hit\n"
        "from flows.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "sql", "SELECT 42 AS x", "--csv", "--catalog", str(catalog)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert (done.returncode, done.stdout) == (0, "x\n42\n"), done.stderr[-500:]
