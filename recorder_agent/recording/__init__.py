"""Recording: one participant's frames in, a file and its manifest out (see recording.py)."""

from .info import RecordingInfo, RecordingState, RecordingStats, RecordingStatus
from .recording import ParticipantRecording

__all__ = [
    "ParticipantRecording",
    "RecordingInfo",
    "RecordingState",
    "RecordingStats",
    "RecordingStatus",
]
