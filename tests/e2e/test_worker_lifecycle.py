"""End to end: the worker's own lifecycle, SIGTERM and kill -9, a full disk, one worker
per test (a module-wide worker would take some of the rooms)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from demo import devserver

from .conftest import ROOT, publishing, room_with_agent
from .test_worker import check_file

FREE_KB = 160  # space left on the small disk as the call starts: a few seconds of it


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


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` at ``path``: a disk that really fills (ENOSPC)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("cannot mount a tmpfs: tests/netns.sh runs the suite as root")
        pytest.skip("mounting a tmpfs needs root (tests/netns.sh as root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_recording_that_fails_on_a_full_disk_goes_on_in_a_new_file_once_there_is_room(
    own_worker, tmp_path
):
    """The disk fills during a call (ENOSPC): that file ends, valid up to there, and
    once space is freed a new file records the rest of the call, its manifest naming
    the file it replaces."""
    with small_disk(tmp_path / "disk", 4096) as disk:
        (disk / "filler").write_bytes(b"\0" * (4096 - FREE_KB) * 1024)
        worker = own_worker(RECORDER_OUTPUT_DIR=str(disk))
        freed_at = left_at = 0.0

        async def run() -> None:
            nonlocal freed_at, left_at
            await room_with_agent(worker, "e2e-disk")
            room, pub = await publishing("e2e-disk", "gina")
            while not worker.logged("failed; a new file in"):
                assert pub.position < 30, f"the disk never filled\n{worker.describe()}"
                await pub.stream(pub.position + 0.5)
            (disk / "filler").unlink()  # the operator (or the uploader) frees space
            freed_at = time.time()
            await pub.stream(pub.position + 8)
            await room.disconnect()
            left_at = time.time()

        asyncio.run(run())
        folder = disk / "e2e-disk"
        worker.wait_for(
            lambda: any(
                json.loads(p.read_text())["state"] == "finished" for p in folder.glob("*.json")
            ),
            30,
            "the new file's final manifest",
        )
        read = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        manifests = {m["file"]: m for m in read}
        [new] = [m for m in manifests.values() if m["state"] == "finished"]
        [event] = [e for e in new["events"] if e["type"] == "replaces_failed"]
        assert "No space left" in event["error"], event
        failed = manifests[event["file"]]  # its final manifest, written once there was room
        assert failed["state"] == "failed" and "No space left" in failed["end_reason"], failed
        assert check_file(folder / failed["file"]) > 1  # valid up to the failure
        duration = check_file(folder / new["file"])
        start = datetime.fromisoformat(new["start_utc"]).timestamp()
        print(f"failed file {failed['counters']['bytes_written']} bytes; new file "
              f"{start - freed_at:.2f} s after the space came back, {duration:.2f} s")  # fmt: skip
        # Tries come 1, 2, 4 … s apart, so the first after the space came back is at most
        # 2 s later (plus the room's quarter-second ticks, late on a busy machine).
        assert start - freed_at <= 4.0, start - freed_at
        assert abs(left_at - start - duration) <= 0.5, (left_at - start, duration)
