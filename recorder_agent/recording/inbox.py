"""What crosses from the producer (the room's event loop) to a recording's thread.

Each message is a small frozen dataclass stamped with when it was pushed (µs,
monotonic); the thread dispatches on its type with ``match``. The inbox is bounded
per lane: a full video lane drops its oldest frame; audio is kept longer, in a larger
lane; control messages are never dropped. Messages are taken in push order.

Audio is bounded and woken by its duration, whatever the size of its frames (the SDK's
come in 100 ms, receive.py; a caller's may be 10 ms). Audio alone wakes the thread once
per ``AUDIO_WAKE_US`` of it, not per frame: a job process recording two voices in 10 ms
frames spent 0.077 cores in its Python threads with a wake-up per frame, 0.068 with one
per 10 (per-thread CPU over 15 s, 5 such rooms). The thread's own tick (0.1 s) bounds
how long a frame waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..util import monotonic_us


def _now() -> int:
    return monotonic_us()


@dataclass(frozen=True, slots=True)
class VideoIn:
    frame: Any  # rtc.VideoFrame; the recording owns it from now on
    ts: int  # µs, monotonic
    rotation: int
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class AudioIn:
    frame: Any  # rtc.AudioFrame
    start: int  # µs, monotonic: when its first sample was heard
    duration: int  # µs of audio it holds
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class TrackAdded:
    sid: str
    kind: str  # "video" or "audio"
    source: str
    width: int = 0  # published size of a video track, when known
    height: int = 0
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class TrackEnded:
    sid: str
    source: str
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Note:
    """An event for the manifest (mute, unmute, …) at the current media time."""

    kind: str
    details: dict[str, Any]
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class ReceiveDelays:
    """How long audio and video waited inside the receiver since the last reading,
    None where unknown (see latency.py); ``pushed`` is when it was taken."""

    audio_us: int | None
    video_us: int | None
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Drain:
    """Answered (``reached`` set) once everything pushed before it is written."""

    reached: threading.Event
    pushed: int = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class Close:
    reason: str
    pushed: int = field(default_factory=_now)


Message = VideoIn | AudioIn | TrackAdded | TrackEnded | Note | ReceiveDelays | Drain | Close


AUDIO_WAKE_US = 100_000  # audio queued before the thread is woken for it


class Inbox:
    """Bounded lanes between producer and worker, taken in arrival order.

    >>> inbox = Inbox(video_max=2, audio_max_s=30)
    >>> inbox.put(Close("done")); inbox.get(timeout=0).reason
    'done'
    """

    def __init__(self, video_max: int, audio_max_s: float) -> None:
        self._cond = threading.Condition()
        self._lanes: dict[type, deque[tuple[int, Message]]] = {
            VideoIn: deque(),
            AudioIn: deque(),
            object: deque(),  # control
        }
        self._video_max = video_max
        self._audio_max_us = int(audio_max_s * 1e6)
        self._audio_us = 0  # queued audio
        self._audio_unwoken_us = 0  # queued since the thread was last woken
        self._seq = 0
        self._closed = False
        self.dropped = {"video": 0, "audio": 0}

    def put(self, item: Message) -> None:
        """Queue ``item``; after ``close`` a ``Drain`` is answered at once and the rest
        is dropped (nothing will be written any more)."""
        lane = type(item) if type(item) in self._lanes else object
        with self._cond:
            if self._closed:
                if isinstance(item, Drain):
                    item.reached.set()
                return
            queue = self._lanes[lane]
            wake = True
            if isinstance(item, VideoIn) and len(queue) >= self._video_max:
                queue.popleft()
                self.dropped["video"] += 1
            elif isinstance(item, AudioIn):
                while queue and self._audio_us + item.duration > self._audio_max_us:
                    self._audio_us -= queue.popleft()[1].duration  # type: ignore[union-attr]
                    self.dropped["audio"] += 1
                self._audio_us += item.duration
                self._audio_unwoken_us += item.duration
                wake = self._audio_unwoken_us >= AUDIO_WAKE_US
            self._seq += 1
            queue.append((self._seq, item))
            if wake:
                self._audio_unwoken_us = 0
                self._cond.notify()

    def get(self, timeout: float) -> Message | None:
        with self._cond:
            heads = [q for q in self._lanes.values() if q]
            if not heads:
                self._cond.wait(timeout)
                heads = [q for q in self._lanes.values() if q]
                if not heads:
                    return None
            item = min(heads, key=lambda q: q[0][0]).popleft()[1]
            if isinstance(item, AudioIn):
                self._audio_us -= item.duration
            return item

    def close(self) -> None:
        """No more reading: answer the drains still waiting, drop the rest."""
        with self._cond:
            self._closed = True
            for queue in self._lanes.values():
                for _, item in queue:
                    if isinstance(item, Drain):
                        item.reached.set()
                queue.clear()
            self._audio_us = 0

    def depth(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._lanes.values())

    def lag_seconds(self) -> float:
        """How long the oldest waiting item has waited (0: none waits)."""
        with self._cond:
            oldest = min((q[0][1].pushed for q in self._lanes.values() if q), default=None)
        return 0.0 if oldest is None else max(0.0, (_now() - oldest) / 1e6)


class Finished:
    """Set once, by the recording's thread; waited for by threads or event loops.

    >>> done = Finished()
    >>> done.set(); done.is_set()
    True
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed meanwhile
                loop.call_soon_threadsafe(_resolve, fut)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """Wait without blocking the event loop; False on timeout."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return True
            self._waiters.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
