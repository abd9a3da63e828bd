"""cratedig against a real ``prefect server start``: runs, task runs, artifacts, tags, the library lock,
``prefect deploy`` of prefect.yaml, and a served schedule that re-analyses a changed library by itself.

One server on a free loopback port for the module (fresh PREFECT_HOME and SQLite database in tmp), started
and stopped here. Flows run in subprocesses whose environment points at it, as ``cratedig`` would; this
process only reads back through the Prefect client. Every process started here is stopped, with its
children, before the module ends.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from flows.server import healthy
from tests.conftest import LIBRARY_SPECS, write_library
from tests.processes import alive, free_port, start, stop, wait_for

pytestmark = pytest.mark.prefect_server

REPO = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 240.0  # a cold start is 10-20 s on an idle machine; far more on a loaded one
RUN_TIMEOUT_S = 300.0
DEPLOYMENT_NAME = "nightly-reanalysis"
DEPLOYMENT = f"reanalyze/{DEPLOYMENT_NAME}"
#: `cratedig serve --interval 5s` names its deployment after the schedule, the library and the catalog.
SERVED_PREFIX = "reanalyze/reanalysis-every-5s-"
#: Two short clean songs (cheap codecs) plus write_library's HTML-as-mp3, empty flac and jpg.
SONGS = {fmt: dataclasses.replace(LIBRARY_SPECS[fmt], duration_s=10.0) for fmt in ("flac", "wav")}


# ------------------------------------------------------------------------------------------------ server


@dataclasses.dataclass
class Server:
    url: str  # the API URL: http://127.0.0.1:<port>/api
    client_env: dict[str, str]
    tmp: Path
    proc: subprocess.Popen
    log: Path

    def wait_healthy(self) -> None:
        wait_for(
            "prefect server start",
            lambda: healthy(self.url),
            SERVER_START_TIMEOUT_S,
            proc=self.proc,
            log=self.log,
            every_s=0.5,
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """A ``prefect server start`` that is starting: ``wait_healthy()`` before talking to it. Not waiting here
    lets the library and the first flow subprocess get ready (imports) while the server boots."""
    tmp = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base |= {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server_env = base | {
        "PREFECT_HOME": str(tmp / "server-home"),  # its SQLite database lives here
        "PREFECT_SERVER_UI_ENABLED": "false",  # the API is what is tested; skip the UI build
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",  # schedule the served deployment's runs at once
    }
    url = f"http://127.0.0.1:{port}/api"
    client_env = base | {
        "PREFECT_API_URL": url,
        "PREFECT_HOME": str(tmp / "client-home"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    log = tmp / "server.log"
    proc = start(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        server_env,
        log,
        cwd=tmp,
    )
    try:
        yield Server(url=url, client_env=client_env, tmp=tmp, proc=proc, log=log)
    finally:
        family = (
            [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
            if proc.poll() is None
            else [proc.pid]
        )
        stop(proc, signal.SIGINT)
        assert not alive(family), "the Prefect server left processes behind"


@pytest.fixture(scope="module")
def client(server):
    """A synchronous Prefect client of the test server (this process never runs flows)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server.wait_healthy()
    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        with get_client(sync_client=True) as c:
            yield c


# ------------------------------------------------------------------------------------------ a library run

DRIVER = textwrap.dedent('''
    """Run ``reanalyze`` twice against the server: once for real, once while the library's slot is held."""
    import json, os, sys, time, urllib.request
    import flows  # cratedig's Prefect settings before Prefect

    def wait_for_server(deadline_s):
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(os.environ["PREFECT_API_URL"] + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        sys.exit("no Prefect server")

    def main():
        from prefect.concurrency.sync import concurrency
        from flows.libraries import library_limit_name
        from flows.reanalyze import reanalyze

        library, catalog, deadline_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
        wait_for_server(deadline_s)  # it boots while this process imports
        started = time.perf_counter()
        state = reanalyze(library, catalog_path=catalog, workers=1, batch_size=2, return_state=True)
        out = {"seconds": time.perf_counter() - started, "state": state.type.value, "message": state.message,
               "flow_run_id": str(state.state_details.flow_run_id),
               "summary": state.result() if state.is_completed() else None}
        with concurrency(library_limit_name(library), occupy=1, strict=True):
            busy = reanalyze(library, catalog_path=catalog, workers=1, lock_wait_s=1, return_state=True)
        out["busy"] = {"state": busy.type.value, "message": busy.message,
                       "flow_run_id": str(busy.state_details.flow_run_id)}
        print("RESULT " + json.dumps(out, default=str), flush=True)

    if __name__ == "__main__":  # the analysis pool spawns processes that re-import this file
        main()
''')


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("served") / "Server Music"
    write_library(root, SONGS)
    return root


@pytest.fixture(scope="module")
def driven(server, library) -> dict[str, Any]:
    """What the driver subprocess reports: the reanalyze run (and its summary) and the run that found the
    library busy."""
    script = server.tmp / "driver.py"
    script.write_text(DRIVER)
    log = server.tmp / "driver.log"
    proc = start(
        [
            sys.executable,
            str(script),
            str(library),
            str(library.parent / "catalog.duckdb"),
            str(SERVER_START_TIMEOUT_S),
        ],
        server.client_env,
        log,
        cwd=server.tmp,
    )
    try:
        proc.wait(SERVER_START_TIMEOUT_S + RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(
            f"driver did not finish in {SERVER_START_TIMEOUT_S + RUN_TIMEOUT_S:.0f} s\n"
            + log.read_text(errors="replace")[-4000:]
        )
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, server.log.read_text(errors="replace")[-2000:] + text[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def library_slug(library: Path) -> str:
    from flows.libraries import library_slug as slug  # imported here: collecting this module stays cheap

    return slug(library)


def library_limit_name(library: Path) -> str:
    from flows.libraries import library_limit_name as name

    return name(library)


def _flow_run_filter(**kw):
    from prefect.client.schemas import filters

    parts = {}
    if "ids" in kw:
        parts["id"] = filters.FlowRunFilterId(any_=kw["ids"])
    if "parent" in kw:
        parts["parent_flow_run_id"] = filters.FlowRunFilterParentFlowRunId(any_=[kw["parent"]])
    if "deployment" in kw:
        parts["deployment_id"] = filters.FlowRunFilterDeploymentId(any_=[kw["deployment"]])
    return filters.FlowRunFilter(**parts)


def _subflow(client, parent_id: str):
    runs = client.read_flow_runs(flow_run_filter=_flow_run_filter(parent=parent_id))
    assert len(runs) == 1, [r.name for r in runs]
    return runs[0]


def _artifacts(client, flow_run_id) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    return {a.key: a for a in found}


def _table(artifact) -> dict[str, str]:
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["measure"]: row["value"] for row in rows}


def test_reanalyze_and_its_batch_task_runs_complete(driven, client, library):
    assert driven["state"] == "COMPLETED", driven["message"]
    summary = driven["summary"]
    assert (summary["new"], summary["analyzed"], summary["rejected"], summary["failed"]) == (4, 2, 2, 0)
    assert Path(summary["parquet_dir"], "features.parquet").exists()

    parent = client.read_flow_run(driven["flow_run_id"])
    assert parent.state.is_completed()
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    into = f"into {library.parent.name}/catalog.duckdb"
    assert re.fullmatch(rf"reanalyze {library.name} {into} {when}", parent.name), parent.name
    sub = _subflow(client, driven["flow_run_id"])
    assert str(sub.id) == summary["analyze_flow_run_id"]
    assert sub.state.is_completed()
    assert re.fullmatch(rf"analyze {library.name} {into} {when}", sub.name), sub.name
    assert {"cratedig", f"library:{library_slug(library)}"} <= set(sub.tags)

    tasks = client.read_task_runs(flow_run_filter=_flow_run_filter(ids=[sub.id]))
    by_name = {t.name: t for t in tasks}
    batches = sorted(n for n in by_name if n.startswith("batch "))
    assert batches == ["batch 0 (2 files)", "batch 1 (2 files)"], sorted(by_name)
    assert {"store batch 0", "store batch 1"} <= set(by_name)
    assert {"scan library", "refresh similarity index", "export parquet"} <= set(by_name)  # no random suffixes
    assert all(t.state.is_completed() for t in tasks), {t.name: t.state.name for t in tasks}
    assert all(f"library:{library_slug(library)}" in t.tags for t in tasks if t.name.startswith("batch "))


def test_three_artifacts_tell_the_story_of_the_run(driven, client, library):
    sub_id = driven["summary"]["analyze_flow_run_id"]
    found = _artifacts(client, sub_id)
    from flows.artifacts import artifact_key

    progress, summary, rejects = (found.get(artifact_key(library, k)) for k in ("progress", "summary", "rejects"))
    assert progress is not None and summary is not None and rejects is not None, sorted(found)

    assert progress.type == "progress" and float(progress.data) == pytest.approx(100.0)
    table = _table(summary)
    assert summary.type == "table"
    assert (table["files"], table["analyzed"], table["rejected"], table["failed"]) == ("4", "2", "2", "0")
    assert float(table["tracks_per_min"]) > 0
    assert table["rejected/failed: NOT_AUDIO"] == table["rejected/failed: EMPTY"] == "1"
    assert rejects.type == "markdown"
    assert str((library.parent / "catalog.duckdb").resolve()) in rejects.data
    assert re.search(r"\| NOT_AUDIO \| `[^`]*not_audio\.mp3` \|", rejects.data), rejects.data
    assert re.search(r"\| EMPTY \| `[^`]*empty\.flac` \|", rejects.data), rejects.data


def test_run_logs_reach_the_server(driven, client, library):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    sub_id = driven["summary"]["analyze_flow_run_id"]
    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[sub_id, driven["flow_run_id"]])))
    messages = "\n".join(log.message for log in logs)
    assert "4 to analyse in 2 batches on 1 workers" in messages, messages
    assert f"Re-analysed {library.resolve()}: 2 analysed, 2 rejected, 0 failed" in messages, messages


def test_a_busy_library_is_not_analysed_twice_at_once(driven, client, library):
    # The driver held the library's slot while a second run started: that run gave up without analysing.
    busy = driven["busy"]
    assert busy["state"] == "CANCELLED" and "catalog busy: another run is analysing" in busy["message"], busy
    assert not client.read_flow_runs(flow_run_filter=_flow_run_filter(parent=busy["flow_run_id"]))
    limit = client.read_global_concurrency_limit_by_name(library_limit_name(library))
    assert (limit.limit, limit.active_slots, limit.active) == (1, 0, True)


def test_prefect_yaml_deploys_nightly_reanalysis_to_a_process_pool(server, client, library):
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    client.create_work_pool(
        WorkPoolCreate(name="cratedig", type="process", base_job_template=ProcessWorker.get_default_base_job_template())
    )
    env = server.client_env | {"PWD": str(REPO), "CRATEDIG_LIBRARY": str(library)}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--name", DEPLOYMENT_NAME],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deployment = client.read_deployment_by_name(DEPLOYMENT)
    assert deployment.entrypoint == "flows/reanalyze.py:reanalyze"
    assert deployment.work_pool_name == "cratedig"
    assert deployment.parameters == {"library": str(library)}
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
    assert "cratedig" in deployment.tags
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]


def test_served_schedule_reanalyses_a_changed_library_by_itself(server, client, driven, library):
    # Change one song after the driver's run; the next scheduled run must re-analyse exactly that one.
    song = next(library.rglob("*.wav"))
    st = song.stat()
    os.utime(song, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    started = datetime.now(timezone.utc)
    from flows.schedule import deployment_name

    served = "reanalyze/" + deployment_name(None, timedelta(seconds=5), library, library.parent / "catalog.duckdb")
    assert served.startswith(SERVED_PREFIX)
    log = server.tmp / "serve.log"
    proc = start(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            str(library),
            "--catalog",
            str(library.parent / "catalog.duckdb"),
            "--interval",
            "5s",
            "--workers",
            "1",
            "--batch-size",
            "2",
        ],
        server.client_env,
        log,
        cwd=server.tmp,
    )
    family: list[int] = []
    try:

        def completed_scheduled_run():
            from prefect.exceptions import ObjectNotFound

            try:
                deployment = client.read_deployment_by_name(served)
            except ObjectNotFound:
                return None
            family.extend(c.pid for c in psutil.Process(proc.pid).children(recursive=True))
            runs = client.read_flow_runs(flow_run_filter=_flow_run_filter(deployment=deployment.id))
            # A run the scheduler has just created may not have a state yet.
            done = [
                r
                for r in runs
                if r.state is not None and r.state.is_completed() and r.auto_scheduled and r.created >= started
            ]
            return (deployment, done[0]) if done else None

        deployment, run = wait_for(
            "a completed scheduled run of the served deployment",
            completed_scheduled_run,
            RUN_TIMEOUT_S,
            proc=proc,
            log=log,
        )
    finally:
        family.append(proc.pid)
        stop(proc)
    assert not alive(family), "cratedig serve left processes behind"

    assert deployment.parameters["library"] == str(library)
    assert [s.schedule.interval.total_seconds() for s in deployment.schedules] == [5.0]
    assert {"cratedig", f"library:{library_slug(library)}"} <= set(run.tags)
    sub = _subflow(client, run.id)
    from flows.artifacts import artifact_key

    table = _table(_artifacts(client, sub.id)[artifact_key(library, "summary")])
    assert (table["changed"], table["analyzed"], table["unchanged"]) == ("1", "1", "3"), table
    assert client.read_deployment(deployment.id).paused  # stopping `serve` pauses its schedule
    assert re.search(r"reanalyze .*: Completed: 1 analyzed, 0 rejected, 0 failed", log.read_text()), log.read_text()
