"""recorder_agent: record every LiveKit participant into a crash-safe MPEG-TS file.

The core, usable on its own::

    from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo

    rec = ParticipantRecording(RecorderConfig.from_env(), RecordingInfo("room", "alice"))
    rec.push_video(video_frame, timestamp_us)   # rtc.VideoFrame, any buffer type
    rec.push_audio(audio_frame)                 # rtc.AudioFrame, stamped on arrival
    await rec.aclose("participant_left")
"""

from .config import ConfigError, RecorderConfig
from .recording import ParticipantRecording, RecordingInfo, RecordingState, RecordingStats

__all__ = [
    "ConfigError",
    "ParticipantRecording",
    "RecorderConfig",
    "RecordingInfo",
    "RecordingState",
    "RecordingStats",
]
