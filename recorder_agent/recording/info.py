"""Who a recording is of, what state it is in, and its counters."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..util import printable


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

    @property
    def shown(self) -> str:
        """The stem as logs show it (control characters escaped)."""
        return printable(self.stem)


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
    video_frames_thinned: int = 0  # left out on purpose: above the nominal or a lowered rate
    quality: str = ""  # x264 preset @ frame rate now ("" without video encoding)
    quality_level: int = 0  # 0: full quality; n: n steps down (recording/quality.py)
    quality_steps: int = 0
    audio_seconds: float = 0.0
    silence_seconds: float = 0.0
    audio_trimmed_seconds: float = 0.0  # received audio cut as earlier than its place
    media_seconds: float = 0.0
    bytes_written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    # The producer (event loop) and the recording's thread both count drops.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_drop(self, reason: str, n: int | None = None) -> None:
        """One more ``reason`` (or set it to ``n``), from any thread."""
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1 if n is None else n

    def drops(self) -> int:
        with self._lock:
            return sum(self.dropped.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
            out["dropped"] = dict(self.dropped)
        return out


@dataclass(frozen=True)
class RecordingStatus:
    """One recording's numbers at one moment, as the worker publishes them."""

    room: str
    participant: str  # identity and label: the file's stem
    identity: str
    path: str | None  # the media (file or playlist), once claimed
    state: str
    bytes_written: int
    video_frames_encoded: int  # repeats included
    video_frames_thinned: int
    frames_dropped: int
    audio_trimmed_seconds: float
    errors: int
    media_seconds: float
    fps: float  # real video frames per second since the previous status
    encoder_lag_seconds: float
    queue_depth: int
    quality: str
    quality_level: int
    quality_steps: int

    @classmethod
    def of(
        cls,
        info: RecordingInfo,
        state: RecordingState,
        stats: RecordingStats,
        path: Path | None,
        fps: RateMeter,
        lag_seconds: float,
        queue_depth: int,
    ) -> RecordingStatus:
        return cls(
            room=info.room,
            participant=info.stem,
            identity=info.identity,
            path=None if path is None else str(path),
            state=state.value,
            bytes_written=stats.bytes_written,
            video_frames_encoded=stats.video_frames_encoded + stats.video_frames_repeated,
            video_frames_thinned=stats.video_frames_thinned,
            frames_dropped=stats.drops(),
            audio_trimmed_seconds=round(stats.audio_trimmed_seconds, 3),
            errors=1 if state is RecordingState.FAILED else 0,
            media_seconds=stats.media_seconds,
            fps=fps.rate(stats.video_frames_encoded),
            encoder_lag_seconds=lag_seconds,
            queue_depth=queue_depth,
            quality=stats.quality,
            quality_level=stats.quality_level,
            quality_steps=stats.quality_steps,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RateMeter:
    """A counter's rate per second between two readings.

    >>> meter = RateMeter(); meter.rate(0)
    0.0
    """

    def __init__(self) -> None:
        self._mark = (time.monotonic(), 0)

    def rate(self, count: int) -> float:
        now = time.monotonic()
        then, before = self._mark
        self._mark = (now, count)
        return round((count - before) / (now - then), 1) if now > then else 0.0
