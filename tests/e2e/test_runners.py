"""Every way of starting the recorder records, against the real server: the LiveKit CLI's
runner (`python -m livekit.agents start agent.py`, what `lk agent start` runs, and with
`--dev --log-level DEBUG`, what `lk agent dev` adds), the Dockerfile's command, the
deprecated `python agent.py start|connect`, and the installed `recorder-agent start`.
The main-process services (upload, metrics, crash recovery) start exactly once, in the
main process."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import urllib.request
from pathlib import Path

import obstore
import pytest

from recorder_agent.ops.upload import open_store

from ..conftest import free_port
from ..test_upload import BUCKET, S3Server, s3_env
from .conftest import LIVEKIT_START, ROOT, create_room, delete_room, publishing, record_and_check


def dockerfile_cmd() -> list[str]:
    [line] = [x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD ")]
    argv = json.loads(line.removeprefix("CMD "))
    assert argv[0] == "python"
    return argv[1:]


RUNNERS = {
    "livekit-agents-start": (LIVEKIT_START, "registered worker"),
    "lk-agent-dev-flags": ([*LIVEKIT_START, "--dev", "--log-level", "DEBUG"], "registered worker"),
    "dockerfile-cmd": (dockerfile_cmd(), "registered worker"),
    "agent-py-start": (["agent.py", "start"], "registered worker"),
    "agent-py-dev": (["agent.py", "dev"], "registered worker"),
    # the installed console script (a Python file: `python SCRIPT start`)
    "recorder-agent-script": (
        [str(Path(sys.executable).with_name("recorder-agent")), "start"],
        "registered worker",
    ),
}


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_each_runner_records(own_worker, runner: str):
    args, ready = RUNNERS[runner]
    worker = own_worker(args=args, ready=ready)
    manifest = record_and_check(worker, f"run-{runner}")
    assert manifest["end_reason"] == "participant_left"
    assert manifest["participant"]["kind"] == "standard"
    assert worker.log.read_text().count("recorder services started") == 1


def test_agent_py_connect_joins_one_room(own_worker):
    room = "run-connect"
    worker = own_worker(
        args=["agent.py", "connect", "--room", room], ready="recorder services started"
    )
    manifest = record_and_check(worker, room, create=False)
    assert manifest["state"] == "finished"


def test_services_run_once_in_the_main_process_under_the_livekit_runner(own_worker, monkeypatch):
    s3 = S3Server(free_port())
    s3.start()
    try:
        aws = s3_env(s3)
        for key, value in aws.items():
            monkeypatch.setenv(key, value)
        metrics = free_port()
        worker = own_worker(
            args=LIVEKIT_START,
            RECORDER_UPLOAD_URL=f"s3://{BUCKET}/calls",
            RECORDER_METRICS_PORT=str(metrics),
            **aws,
        )
        record_and_check(worker, "run-services")
        store = open_store(f"s3://{BUCKET}/calls")

        def uploaded() -> list[str]:
            keys = [o["path"] for batch in obstore.list(store) for o in batch]
            return [k for k in keys if k.startswith("run-services/") and k.endswith(".ts")]

        worker.wait_for(uploaded, 30, "the recording in the bucket")
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
        assert re.search(rb"^recorder_uploaded_objects_total [1-9]", body, re.M), body[:2000]
        started = [
            json.loads(line)
            for line in worker.log.read_text().splitlines()
            if "recorder services started" in line
        ]
        assert len(started) == 1, started
        assert started[0]["pid"] == worker.proc.pid  # the main process, not a job
        jobs = {
            json.loads(line)["pid"]
            for line in worker.log.read_text().splitlines()
            if '"recording room run-services' in line
        }
        assert jobs and worker.proc.pid not in jobs
    finally:
        s3.stop()


def test_room_deleted_while_recording_ends_as_room_closed_under_each_shutdown_order(worker):
    """The job's termination and the room's own disconnect race; both orders must end
    the file as room_closed (measured: 4 of 45 deletions lost the reason before)."""

    async def run() -> None:
        for n in range(3):
            room = f"run-delete-{n}"
            await create_room(room)
            await asyncio.to_thread(
                worker.wait_for, lambda r=room: worker.logged(f"recording room {r} "), 30, room
            )
            r, pub = await publishing(room, "kim")
            await pub.stream(2)
            await delete_room(room)
            await r.disconnect()

    asyncio.run(run())
    for n in range(3):
        [manifest] = worker.wait_finished(f"run-delete-{n}", 1)
        assert manifest["end_reason"] == "room_closed", manifest["end_reason"]


def test_lk_agent_commands_are_the_runner_tested_here():
    """`lk agent start|dev` (LiveKit CLI 2.18) run `python -m livekit.agents start agent.py`,
    dev adding `--dev --log-level DEBUG --cli-addr ADDR`; the README says so."""
    readme = (ROOT / "README.md").read_text()
    assert "lk agent dev" in readme and shlex.join(["python", *LIVEKIT_START]) in readme
