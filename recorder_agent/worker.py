"""The LiveKit worker: dispatched automatically into every room, records everyone.

``server`` is module-level so that job processes (forkserver) can import the
entrypoint. ``run()`` is the main process: it starts the uploader and the metrics
endpoint, which outlive job processes, then LiveKit's CLI
(``python agent.py dev|start|connect --room R``).
"""

from __future__ import annotations

import logging
import os

from livekit.agents import AgentServer, AutoSubscribe, JobContext, WorkerPermissions, cli

from .config import RecorderConfig
from .ops.metrics import WorkerStats, serve_metrics
from .ops.upload import Uploader
from .room import RoomRecorder

log = logging.getLogger("recorder_agent")

config = RecorderConfig.from_env()

# glibc gives every thread that allocates its own malloc arena; each recording has two
# threads, and the arenas cost ~9 MB of RSS per recording (bench/alternatives.py).
# Job processes are started after this line and inherit it.
os.environ.setdefault("MALLOC_ARENA_MAX", "2")

if os.environ.pop("LIVEKIT_AGENT_NAME", None):
    # An agent name turns automatic dispatch off: this worker would record nothing.
    log.warning("ignoring LIVEKIT_AGENT_NAME: the recorder is dispatched to every room")

stats = WorkerStats(config)  # read in the main process only

server = AgentServer(
    shutdown_process_timeout=config.shutdown_timeout,
    drain_timeout=config.drain_timeout,
    load_threshold=config.load_threshold,
    load_fnc=stats.load,
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


def run() -> None:
    """The worker's main process."""
    uploader = None
    if config.upload_url:
        uploader = stats.uploader = Uploader(config).start()
        log.info("uploading recordings to %s", config.upload_url.split("?")[0])
    if config.metrics_port:
        serve_metrics(stats, config.metrics_port)
    try:
        cli.run_app(server)
    finally:
        if uploader is not None:
            # What is still queued stays on disk; the next start sends it.
            uploader.finish(timeout=config.shutdown_timeout)
