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
"""

import threading

from livekit.agents import Plugin

from .config import ConfigError, RecorderConfig
from .log import logger
from .recording import ParticipantRecording, RecordingInfo, RecordingState, RecordingStats
from .room import RoomRecorder
from .services import WorkerServices, attach_services
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


class RecorderPlugin(Plugin):
    """Registered with livekit-agents: the worker logs it, and its forkserver preloads
    the package, so job processes start with PyAV and numpy already imported."""

    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


if threading.current_thread() is threading.main_thread():  # livekit-agents requires it
    Plugin.register_plugin(RecorderPlugin())
