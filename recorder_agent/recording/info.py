"""Who a recording is of, what state it is in, and its counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class RecordingInfo:
    """Who is recorded. All strings are untrusted; they are sanitized for paths."""

    room: str
    identity: str
    participant_sid: str = ""
    name: str = ""
    kind: str = ""
    label: str = ""  # appended to the file name, e.g. "screen"

    @property
    def stem(self) -> str:
        return f"{self.identity}-{self.label}" if self.label else self.identity


class RecordingState(StrEnum):
    RECORDING = "recording"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass
class RecordingStats:
    """Counters of one recording; read them from any thread via ``snapshot()``."""

    video_frames_in: int = 0
    audio_frames_in: int = 0
    video_frames_encoded: int = 0
    video_frames_repeated: int = 0
    audio_seconds: float = 0.0
    silence_seconds: float = 0.0
    media_seconds: float = 0.0
    bytes_written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropped"] = dict(self.dropped)
        return out


@dataclass(frozen=True)
class RecordingStatus:
    """One recording's numbers at one moment, as the worker publishes them."""

    room: str
    participant: str
    state: str
    bytes_written: int
    video_frames_encoded: int  # repeats included
    frames_dropped: int
    errors: int
    media_seconds: float
    encoder_lag_seconds: float
    queue_depth: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
