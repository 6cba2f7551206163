"""End to end: the worker's own lifecycle, SIGTERM and kill -9, one worker per test."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime

from demo import devserver

from .conftest import ROOT, publishing, room_with_agent
from .test_worker import check_file


def test_sigterm_finalizes_files_and_manifests(own_worker):
    w = own_worker(RECORDER_DRAIN_TIMEOUT="2")

    async def run() -> None:
        await room_with_agent(w, "e2e-sigterm")
        room, pub = await publishing("e2e-sigterm", "leo")
        await pub.stream(4)
        stop = asyncio.get_running_loop().run_in_executor(None, w.stop, signal.SIGTERM)
        await pub.stream(6)  # the participant stays while the worker drains
        assert await stop == 0, w.describe()
        await room.disconnect()

    asyncio.run(run())
    [manifest] = w.manifests("e2e-sigterm")
    assert manifest["state"] == "finished", manifest
    assert manifest["end_reason"] not in (None, "participant_left")
    assert check_file(w.recordings("e2e-sigterm")[0]) > 3


def test_kill_9_leaves_valid_files_up_to_the_kill(own_worker):
    w = own_worker()
    killed_at = 0.0

    async def run() -> None:
        nonlocal killed_at
        await room_with_agent(w, "e2e-kill")
        room, pub = await publishing("e2e-kill", "mia")
        await pub.stream(6)
        os.killpg(w.proc.pid, signal.SIGKILL)  # the worker and its job processes
        killed_at = time.time()
        await room.disconnect()

    asyncio.run(run())
    w.proc.wait()
    [path] = w.recordings("e2e-kill")
    [manifest] = w.manifests("e2e-kill")
    assert manifest["state"] == "recording"  # nobody finalized it
    recorded = killed_at - datetime.fromisoformat(manifest["start_utc"]).timestamp()
    assert check_file(path) >= recorded - 1.0, recorded


def test_server_loss_finalizes_and_the_worker_recovers(own_worker, livekit_server):
    """kill -9 of livekit-server mid-room, then a restart: the recording is finalized
    cleanly (nothing hangs), and the worker records the next room on the new server.

    Runs last in the suite: it restarts the session's server."""
    w = own_worker()
    killed_at = 0.0

    async def record_until_server_dies() -> None:
        nonlocal killed_at
        await room_with_agent(w, "e2e-server-loss")
        room, pub = await publishing("e2e-server-loss", "nia")
        await pub.stream(5)
        livekit_server.proc.kill()
        livekit_server.proc.wait()
        killed_at = time.time()
        await pub.stream(2)  # the publisher goes on into the void
        await asyncio.wait_for(room.disconnect(), 10)

    asyncio.run(record_until_server_dies())
    [manifest] = w.wait_finished("e2e-server-loss", 1, timeout=60)
    assert manifest["state"] == "finished", manifest
    assert manifest["end_reason"], manifest
    recorded = killed_at - datetime.fromisoformat(manifest["start_utc"]).timestamp()
    [path] = w.recordings("e2e-server-loss")
    assert check_file(path) >= recorded - 1.0, (recorded, manifest)
    assert w.proc.poll() is None, "the worker exited when the server went away"

    livekit_server.proc = devserver.start(devserver.find_binary(ROOT), livekit_server.log.parent)

    async def record_after_restart() -> None:
        w.wait_for(lambda: w.log.read_text().count("registered worker") >= 2, 60, "re-register")
        await room_with_agent(w, "e2e-after-restart")
        room, pub = await publishing("e2e-after-restart", "nia")
        await pub.stream(3)
        await room.disconnect()

    asyncio.run(record_after_restart())
    [after] = w.wait_finished("e2e-after-restart", 1)
    assert check_file(w.recordings("e2e-after-restart")[0]) > 1.5, after
