"""recorder_agent: record every LiveKit participant into a crash-safe MPEG-TS file.

Inside your own agent (see examples/voice_agent.py)::

    from recorder_agent import RoomRecorder, attach_services

    attach_services(server, RecorderConfig(upload_url="s3://bucket/calls"))  # main process

    @server.rtc_session()
    async def entrypoint(ctx: JobContext) -> None:
        recorder = RoomRecorder(ctx.room, upload_url="s3://bucket/calls", record_self=True)
        ctx.add_shutdown_callback(recorder.aclose)
        await ctx.connect()
        recorder.start()

The core, usable on its own::

    rec = ParticipantRecording(RecorderConfig(), RecordingInfo("room", "alice"))
    rec.push_video(video_frame, timestamp_us)   # rtc.VideoFrame, any buffer type
    rec.push_audio(audio_frame)                 # rtc.AudioFrame, stamped on arrival
    await rec.aclose("participant_left")

Importing the package starts nothing: LiveKit imports it in every job process too.
It loads livekit-agents only for the worker-side names (see plugin.py).
"""

import sys
from typing import Any

from .config import ConfigError, RecorderConfig
from .recording import ParticipantRecording, RecordingInfo, RecordingState, RecordingStats
from .room import RoomRecorder
from .version import __version__

__all__ = [
    "ConfigError",
    "ParticipantRecording",
    "RecorderConfig",
    "RecordingInfo",
    "RecordingState",
    "RecordingStats",
    "RoomRecorder",
    "WorkerServices",
    "__version__",
    "attach_services",
]


def __getattr__(name: str) -> Any:
    """The worker-side names load livekit-agents (~80 MB) only when asked for."""
    if name in ("attach_services", "WorkerServices"):
        from . import services

        return getattr(services, name)
    raise AttributeError(f"module 'recorder_agent' has no attribute {name!r}")


if "livekit.agents" in sys.modules:  # an agent's process: register at once (plugin.py)
    from .plugin import register

    register()
