"""The standalone recording worker: dispatched into every room (or, with
``RECORDER_AGENT_NAME``, into the rooms an app asks for), records everyone.

``server`` is module-level: LiveKit's runners (``lk agent dev|start``, ``python -m
livekit.agents start agent.py``) import the entry file and take its ``AgentServer``, and
job processes import it again for the entrypoint. Nothing here starts at import; the
uploader, metrics and crash recovery start once, in the main process
(services.py).
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from livekit import api
from livekit.agents import (
    AgentServer,
    AutoSubscribe,
    JobContext,
    JobRequest,
    WorkerPermissions,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import is_given
from livekit.agents.utils.http_server import HttpServer

from .config import RecorderConfig
from .log import logger as log
from .ops.reconcile import RECORDER_ROLE, ROLE_ATTRIBUTE, first_recorder
from .room import RoomRecorder
from .services import WorkerServices
from .util import limit_malloc_arenas, printable

config = RecorderConfig.from_env()

limit_malloc_arenas()  # before any recording thread; job processes inherit it
# livekit-agents preloads its local VAD and end-of-turn models into every worker that
# runs jobs in threads: 244 MB of weights (its ipc/_preload.py) that a recorder never
# uses. The idle worker held 547 MB PSS with them.
os.environ.setdefault("LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE", "0")
# Its event-loop watchdog ticks every 20 ms in every job process (a heartbeat on the
# loop and a thread). A recorder's loop carries no audio (receive.AudioFeed): warn at
# 250 ms, which ticks every 50 ms.
os.environ.setdefault("LIVEKIT_AGENTS_LOOP_BLOCK_WARN_MS", "250")

if os.environ.pop("LIVEKIT_AGENT_NAME", None):
    # LiveKit's own variable would turn automatic dispatch off unasked; on-demand
    # recording is RECORDER_AGENT_NAME, which says what it does.
    log.warning(
        "ignoring LIVEKIT_AGENT_NAME: set RECORDER_AGENT_NAME for on-demand recording "
        "(explicit dispatch); without it the recorder is dispatched to every room"
    )

# A deleted room sends the job both the room's disconnect (ROOM_DELETED) and a job
# termination. When the termination wins, the framework disconnects the room itself
# and the room's own disconnect is lost: wait this long for it before shutting down.
ROOM_END_WAIT = 2.0
DUPLICATE_RECHECK_S = 2.0

services = WorkerServices(config, reconcile=True)


class RecorderServer(AgentServer):
    """An ``AgentServer`` whose health-check HTTP server (``RECORDER_HTTP_PORT``) also
    answers ``GET /recordings``. livekit-agents 1.8 builds that server inside ``run()``
    and freezes its routes before any event fires; the one moment to add a route is
    when ``run()`` stores it as ``_http_server``, which this property intercepts
    (tested in tests/e2e/test_control.py)."""

    def _get_effective_load(self) -> float:
        """The load with one more room: LiveKit takes a room while this is under the
        threshold and reports the worker full from it on, so a worker never takes the
        room that would pass its threshold (with the load alone, two workers of a fleet
        each took a burst's rooms up to 0.95-1.0). Rooms not measured yet count too:
        those accepted but not running, and those running whose recording has not begun
        (their process starts, or nobody published yet). LiveKit's guess for them is the
        load per running job, or, with none running, the threshold over the idle process
        count: a burst of rooms into an idle worker read as full after two. Here each
        counts the measured load per recording job, and at least
        ``RECORDER_ROOM_COST_CORES``; a room that turns out dearer shows in the load
        within seconds."""
        measured = services.stats.measured_jobs
        unmeasured = self._reserved_slots + max(0, len(self.active_jobs) - measured)
        per_job = max(self._worker_load / measured if measured else 0.0, services.stats.room_prior)
        return self._worker_load + (unmeasured + 1) * per_job

    async def drain(self, timeout: NotGivenOr[int | None] = NOT_GIVEN) -> None:
        """LiveKit's drain, with a wait that yields. In livekit-agents 1.8.9 it loops
        ``for proc in procs: await proc.join()`` over the processes with a job: a process
        that has exited returns from ``join`` at once but stays listed until the pool's
        monitor task runs, which that loop never lets happen. A worker told to stop just
        as a room ended spun there at 100% CPU for good, deaf to its own drain timeout
        (3 of about 15 runs of ``bench.e2e_voice``; py-spy: ``SupervisedProc.join`` under
        ``AgentServer.drain``)."""
        timeout = timeout if is_given(timeout) else self._drain_timeout
        async with self._lock:
            if self._draining:
                return
            log.info("draining worker (timeout %s s)", timeout)
            self._draining = True
            await self._update_worker_status()

            async def _drain() -> None:
                await asyncio.gather(*self._job_lifecycle_tasks, return_exceptions=True)
                while procs := [p for p in self._proc_pool.processes if p.running_job]:
                    await asyncio.gather(*(p.join() for p in procs), return_exceptions=True)
                    await asyncio.sleep(0.1)  # the pool's monitor unlists exited ones

            await asyncio.wait_for(_drain(), timeout or None)

    @property
    def _http_server(self) -> HttpServer | None:
        return self.__dict__.get("_recorder_http_server")

    @_http_server.setter
    def _http_server(self, http: HttpServer | None) -> None:
        if http is not None:
            http.app.router.add_get("/recordings", _get_recordings)
        self.__dict__["_recorder_http_server"] = http


async def _get_recordings(request: web.Request) -> web.Response:
    status, body = services.recordings(request.headers.get("Authorization"))
    return web.json_response(body, status=status)


server = RecorderServer(
    shutdown_process_timeout=config.shutdown_timeout,
    drain_timeout=config.drain_timeout,
    load_threshold=config.load_threshold,
    load_fnc=services.stats.load,
    port=config.http_port,
    # Warm jobs in dev mode too (LiveKit's dev default is none): spawning a process for
    # the first room took 5.3 s under `lk agent dev`, the first 5 s of the call.
    num_idle_processes=config.idle_processes,
    # A recorder only listens, and stays out of the participant list like Egress does.
    permissions=WorkerPermissions(
        can_publish=False,
        can_publish_data=False,
        can_subscribe=True,
        can_update_metadata=False,
        hidden=True,
    ),
)
services.attach(server)


async def accept(request: JobRequest) -> None:
    """Join marked as a recorder, so that no recorder ever records another."""
    services.accepted(request.room.name)
    await request.accept(attributes={ROLE_ATTRIBUTE: RECORDER_ROLE})


async def room_ended(ctx: JobContext) -> None:
    """Before the framework disconnects the room: see ``ROOM_END_WAIT``."""
    if (recorder := ctx.proc.userdata.get("recorder")) is not None:
        await recorder.wait_for_room_end(ROOM_END_WAIT)


async def _second_recorder(ctx: JobContext) -> bool:
    """Whether a recorder joined this room before ours, asked twice: a recorder still
    listed from a room instance that closed a moment ago is gone at the second look."""
    request = api.ListParticipantsRequest(room=ctx.room.name)
    for attempt in range(2):
        try:
            listed = await ctx.api.room.list_participants(request)
        except Exception as e:  # record: a duplicate recorder is cheaper than a gap
            log.warning("could not list room %s: %s", printable(ctx.room.name), e)
            return False
        if first_recorder(list(listed.participants), ctx.room.local_participant.identity):
            return False
        if attempt == 0:
            await asyncio.sleep(DUPLICATE_RECHECK_S)
    return True


# No agent name: automatic dispatch into every new room; a name: explicit dispatch only.
@server.rtc_session(agent_name=config.agent_name, on_request=accept, on_session_end=room_ended)
async def record_room(ctx: JobContext) -> None:
    recorder = ctx.proc.userdata["recorder"] = RoomRecorder(ctx.room, config)
    ctx.add_shutdown_callback(recorder.aclose)
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_ALL)
    # Two dispatches at once (two workers' room checks, ops/reconcile.py) make two
    # recorders: the one that joined second leaves before it records anything.
    if await _second_recorder(ctx):
        log.info("room %s already has a recorder: this one leaves", printable(ctx.room.name))
        ctx.shutdown("another recorder joined first")
        return
    log.info("recording room %s into %s", printable(ctx.room.name), config.output_dir)
    recorder.start()
