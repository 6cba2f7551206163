"""The LiveKit worker: dispatched automatically into every room, records everyone.

``server`` is module-level so that job processes (forkserver) can import the
entrypoint. Run it with ``python agent.py dev|start|connect --room R``.
"""

from __future__ import annotations

import logging
import os

from livekit.agents import AgentServer, AutoSubscribe, JobContext, WorkerPermissions

from .config import RecorderConfig
from .room import RoomRecorder

log = logging.getLogger("recorder_agent")

config = RecorderConfig.from_env()

if os.environ.pop("LIVEKIT_AGENT_NAME", None):
    # An agent name turns automatic dispatch off: this worker would record nothing.
    log.warning("ignoring LIVEKIT_AGENT_NAME: the recorder is dispatched to every room")

server = AgentServer(
    shutdown_process_timeout=config.shutdown_timeout,
    drain_timeout=config.drain_timeout,
    load_threshold=config.load_threshold,
    port=config.http_port,
    # A recorder only listens, and stays out of the participant list like Egress does.
    permissions=WorkerPermissions(
        can_publish=False,
        can_publish_data=False,
        can_subscribe=True,
        can_update_metadata=False,
        hidden=True,
    ),
)


@server.rtc_session()  # no agent name: automatic dispatch to every new room
async def record_room(ctx: JobContext) -> None:
    recorder = RoomRecorder(ctx.room, config)
    ctx.add_shutdown_callback(recorder.aclose)
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_ALL)
    log.info("recording room %s into %s", ctx.room.name, config.output_dir)
    recorder.start()
