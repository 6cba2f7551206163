"""A real livekit-server and the real worker, started as users start it: by default the
Dockerfile's command, `python -m livekit.agents start agent.py` (what `lk agent start`
runs); tests/e2e/test_runners.py covers the other runners.

The server is the one `make test` builds (.cache/bin/livekit-server); a missing server
fails the suite, it never skips. Run under tests/netns.sh: nothing can leave the
machine, whatever ICE tries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from livekit import api, rtc

from demo import devserver
from demo.testsignal import Publisher

ROOT = Path(__file__).resolve().parents[2]
HTTP_URL = devserver.URL.replace("ws://", "http://")


def tail(path: Path, lines: int = 40, width: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as e:
        return f"<{e}>"
    return "\n".join(line if len(line) <= width else line[:width] + " …" for line in text)


@dataclass
class Server:
    log: Path
    proc: subprocess.Popen

    def describe(self) -> str:
        return f"--- livekit-server log tail ({self.log}) ---\n{tail(self.log)}"


@dataclass
class Worker:
    out: Path
    log: Path
    proc: subprocess.Popen
    server: Server
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return (
            f"--- worker log tail ({self.log}) ---\n{tail(self.log, 60)}\n{self.server.describe()}"
        )

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")

    def recordings(self, room: str) -> list[Path]:
        return sorted((self.out / room).glob("*.ts")) if (self.out / room).exists() else []

    def manifests(self, room: str) -> list[dict]:
        folder = self.out / room
        paths = sorted(folder.glob("*.json")) if folder.exists() else []
        return [json.loads(p.read_text()) for p in paths]

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := check():
                return result
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.describe()}")

    def wait_finished(self, room: str, count: int, timeout: float = 30) -> list[dict]:
        def done() -> list[dict] | None:
            ms = [m for m in self.manifests(room) if m["state"] != "recording"]
            return ms if len(ms) >= count else None

        return self.wait_for(done, timeout, f"{count} finished manifests in {room}")  # type: ignore[return-value]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"worker did not exit {timeout} s after signal {sig}\n{self.describe()}")


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if os.environ.get("RECORDER_NETNS") != "1" and os.environ.get("CI"):
        pytest.fail("end-to-end tests must run under tests/netns.sh (make test does)")
    folder = tmp_path_factory.mktemp("livekit")
    try:
        proc = devserver.start(devserver.find_binary(ROOT), folder)
    except devserver.DevServerError as e:
        pytest.fail(f"{e}\n{tail(folder / 'server.log')}")
    server = Server(folder / "server.log", proc)
    yield server
    devserver.stop(server.proc)  # a test may have restarted it


LIVEKIT_START = ["-m", "livekit.agents", "start", "agent.py"]


def start_worker(
    server: Server,
    out: Path,
    args: list[str] | None = None,
    ready: str = "registered worker",
    **env: str,
) -> Worker:
    """The worker as ``python <args>`` (default: ``LIVEKIT_START``), once it logged
    ``ready``."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "worker.log"
    defaults = {
        "RECORDER_PROGRESS_INTERVAL": "2",
        "RECORDER_TRACK_END_GRACE": "2",
        # Publishers, server and worker share 2 cores here: CPU is often at 100 %, and
        # a room created while the only worker reports itself full is never dispatched.
        "RECORDER_LOAD_THRESHOLD": "2",
        "RECORDER_HTTP_PORT": "0",  # several workers at once
        "RECORDER_DRAIN_TIMEOUT": "5",  # teardown must not wait for rooms a failed test left
    }
    full_env = devserver.worker_env(out, **{**defaults, **env})
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, *(args or LIVEKIT_START)],
            cwd=ROOT,
            env=full_env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(out, log, proc, server, env)
    worker.wait_for(lambda: worker.logged(ready), 60, f"the worker to log {ready!r}")
    return worker


@pytest.fixture(scope="module")
def worker(livekit_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker for a module's tests; they use distinct rooms."""
    w = start_worker(livekit_server, tmp_path_factory.mktemp("recordings"))
    yield w
    w.stop()


@pytest.fixture
def own_worker(livekit_server: Server, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """A worker of the test's own, for tests that signal or kill it."""
    started: list[Worker] = []

    def make(folder: str = "recordings", **kw: Any) -> Worker:
        started.append(start_worker(livekit_server, tmp_path / folder, **kw))
        return started[-1]

    yield make
    for w in started:
        if w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGKILL)
            w.proc.wait()


async def join(
    room_name: str, identity: str, kind: str = "standard", **attributes: str
) -> rtc.Room:
    """A test participant. It receives nothing: decoding the others' video would take
    the recorder's share of the 2-core machine."""
    room = rtc.Room()
    token = devserver.token(room_name, identity, kind, **attributes)
    await room.connect(devserver.URL, token, rtc.RoomOptions(auto_subscribe=False))
    return room


async def publishing(
    room_name: str, identity: str, kind: str = "standard", **signal
) -> tuple[rtc.Room, Publisher]:
    """A participant that joined and published camera and microphone (or ``video``/
    ``audio`` False); stream with ``await pub.stream(seconds)``."""
    room = await join(room_name, identity, kind)
    pub = Publisher(**signal)
    await pub.publish(room)
    return room, pub


async def until_recorded(worker: Worker, room: str, identity: str, timeout: float = 15) -> None:
    """Wait until the recorder received ``identity``'s tracks: its manifest lists one
    as soon as the track is subscribed. Under load a track reached the recorder 1.2 s
    after its publisher started (0.7 s to publish, 0.5 s to subscribe)."""
    deadline = time.monotonic() + timeout
    while not any(
        m["participant"]["identity"] == identity and m["tracks"] for m in worker.manifests(room)
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"the recorder never received {identity}'s tracks\n{worker.describe()}")
        await asyncio.sleep(0.05)


async def create_room(name: str) -> None:
    async with api.LiveKitAPI(HTTP_URL, devserver.API_KEY, devserver.API_SECRET) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name=name))


async def delete_room(name: str) -> None:
    async with api.LiveKitAPI(HTTP_URL, devserver.API_KEY, devserver.API_SECRET) as lk:
        await lk.room.delete_room(api.DeleteRoomRequest(room=name))


async def room_with_agent(worker: Worker, name: str) -> None:
    """Create a room through the API and wait until the worker is recording it.

    livekit-server dispatches a room once, at creation, and never to a worker whose
    reported load (machine CPU by default) is 1 or more. On this 2-core machine the
    previous test's publishers can leave it there for a moment: then the room is
    deleted and created again (once), rather than the test failing on the machine.
    """
    for attempt in range(2):
        await create_room(name)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if worker.logged(f"recording room {name} "):
                return
            await asyncio.sleep(0.2)
        if attempt == 0:
            with contextlib.suppress(api.TwirpError):  # already closed when empty
                await delete_room(name)
            await asyncio.sleep(3)
    pytest.fail(f"no agent was dispatched to {name}\n{worker.describe()}")


def record_and_check(
    worker: Worker, room: str, create: bool = True, identity: str = "ada", seconds: float = 4
) -> dict:
    """Create ``room`` (unless the worker joins it by itself), wait for the recorder, have
    ``identity`` publish for ``seconds`` and leave; the manifest of a decoded, valid file."""
    from .test_worker import check_file

    async def run() -> None:
        if create:
            await create_room(room)
        await asyncio.to_thread(
            worker.wait_for, lambda: worker.logged(f"recording room {room} "), 30, "dispatch"
        )
        r, pub = await publishing(room, identity)
        await pub.stream(seconds)
        await r.disconnect()

    asyncio.run(run())
    [manifest] = worker.wait_finished(room, 1)
    [path] = worker.recordings(room)
    assert check_file(path) > seconds - 1
    return manifest
