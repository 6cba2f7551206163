"""How long each stream waited inside the receiver, and the shift that cancels the
difference. Pure: the room polls ``track.get_stats()`` and passes the numbers down.

Why: both streams are stamped on the receiver's monotonic clock, but at the end of two
different buffers. Video's ``timestamp_us`` is libwebrtc's render time (packet arrival
+ jitter delay + decode + 10 ms render delay); audio's sample clock is NetEq's playout
(arrival + NetEq delay). Measured on 2026-11-26 with a Python publisher, NetEq held
60 ms in the first second and 30 ms from the fifth on, while video held about 20 ms:
the markers moved 24 ms over those seconds. No RTP or sender time reaches Python (no
RTP timestamp, no NTP, nothing at all on audio frames), so the best one clock left is
*arrival at the receiver*: each stream minus its own measured delay. The inbound-rtp
stats give that delay as cumulative sums; the difference of two snapshots is the
average over the interval.

Audio keeps its sample clock (gap-free by construction); video moves by
``audio delay − video delay``. A reading averages the last interval (a quarter second),
so video frames wait in a ``DelayLine`` (at most ``MAX_HOLD_US``, 8-12 frames) for the
reading that covers the audio played with them: that audio arrived with the frame and
leaves NetEq the shift later. Measured beside stress-ng --cpu 1 on 2 cores, browser
files (VP8, H.264, mute; tests/e2e/test_browser.py), largest error per marker:

| reading used | files | after 3 s | first markers |
|---|---|---|---|
| the last one before the frame (as first built) | 16 VP8 | 10.5 ms (CI: 51) | 47-53 ms in 3 |
| the one over the frame's arrival | 25 | 56 ms in 1 | 101 ms in 1 |
| the one over the audio heard with it (this) | 30 | 18 ms | 27-54 ms in 6 |

Replayed on 35 traces, after a job process stalled 0.26 s (NetEq then held 300 ms
more) the three gave 270, 216 and 19 ms at the next marker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

RENDER_DELAY_US = 10_000  # libwebrtc's fixed render delay, part of video's render time
# A measured difference beyond this is taken as nonsense. NetEq held 740 ms (video 185)
# after a job process starved for 0.75 s beside stress-ng --cpu 2: a real difference.
MAX_SHIFT_US = 2_000_000
MAX_HOLD_US = 400_000  # longest a video frame waits for its reading (one per 0.25 s)
# How long the first frames wait for the first reading. Video comes from the SDK's
# thread (receive.py), but readings come through the job's event loop, which is busiest
# setting the room up: beside stress-ng --cpu 1, a first flash 0.06 s into a file left
# unshifted after MAX_HOLD_US was 111.6 ms off. Only until the file opens: before, no
# picture is placed (not even black), so none can overtake the frames waiting.
FIRST_HOLD_US = 2_000_000


@dataclass(frozen=True)
class BufferStats:
    """One snapshot of a track's cumulative inbound-rtp counters (seconds, counts)."""

    jitter_buffer_delay_s: float
    emitted: int
    decode_time_s: float = 0.0  # video only
    decoded: int = 0


def average_delay_us(before: BufferStats, after: BufferStats, video: bool) -> int | None:
    """Mean time an item spent in the receiver between two snapshots (µs), or None when
    nothing came out in between.

    >>> a, b = BufferStats(1.0, 100), BufferStats(1.3, 110)
    >>> average_delay_us(a, b, video=False)
    30000
    >>> average_delay_us(BufferStats(0, 0, 0, 0), BufferStats(0.2, 10, 0.01, 10), video=True)
    31000
    """
    emitted = after.emitted - before.emitted
    if emitted <= 0:
        return None
    delay = (after.jitter_buffer_delay_s - before.jitter_buffer_delay_s) / emitted
    if video:
        decoded = after.decoded - before.decoded
        if decoded > 0:
            delay += (after.decode_time_s - before.decode_time_s) / decoded
        return round(delay * 1e6) + RENDER_DELAY_US
    return round(delay * 1e6)


class DelayLine(Generic[T]):
    """Video frames wait here for the receive-delay reading that covers the audio played
    with them: audio that arrived with a frame comes out of NetEq the shift later, so
    a frame waits for a reading taken at or after its arrival plus the shift (µs). They
    leave in order, each with its shift. The shift goes up at once
    (a frame can always move later) and down by at most half the time since the frame
    before, so the order of frames holds.

    >>> line = DelayLine(max_hold_us=400_000)
    >>> line.push(0, ts_us=5_000, item="a")  # nobody said readings would come
    [('a', 0)]
    >>> line.expect_readings()
    >>> line.push(100_000, ts_us=105_000, item="b"), line.push(150_000, 155_000, "c")
    ([], [])
    >>> line.reading(200_000, audio_us=60_000, video_us=20_000)
    [('b', 40000), ('c', 40000)]
    >>> line.push(210_000, 215_000, "d"), line.reading(240_000, 60_000, 20_000)  # too early
    ([], [])
    >>> line.reading(450_000, audio_us=30_000, video_us=20_000)  # 60 ms after c: 30 back
    [('d', 10000)]
    >>> line.push(460_000, 465_000, "e"), line.due(now_us=900_000)  # no reading: the newest
    ([], [('e', 10000)])

    The first frames wait ``first_hold_us`` for the first reading instead, until one
    leaves or ``end_first_hold``:

    >>> line = DelayLine(max_hold_us=400_000, first_hold_us=2_000_000)
    >>> line.expect_readings()
    >>> line.push(0, 5_000, "a"), line.due(now_us=1_000_000), line.due(now_us=2_000_000)
    ([], [], [('a', 0)])
    >>> line.push(2_100_000, 2_105_000, "b"), line.due(now_us=2_500_000)  # then the usual
    ([], [('b', 0)])
    """

    def __init__(self, max_hold_us: int, first_hold_us: int = 0) -> None:
        self.max_hold_us = max_hold_us
        self._hold_us = max(max_hold_us, first_hold_us)  # max_hold_us once a frame left
        self._held: deque[tuple[int, int, T]] = deque()  # (arrival, timestamp, frame)
        self._expect = False
        self._audio_us: int | None = None
        self._video_us: int | None = None
        self.applied_us = 0
        self._last_ts: int | None = None

    def expect_readings(self) -> None:
        """Readings will come (the recording has audio and video): frames wait for them."""
        self._expect = self.max_hold_us > 0

    def push(self, arrival_us: int, ts_us: int, item: T) -> list[tuple[T, int]]:
        self._held.append((arrival_us, ts_us, item))
        return [] if self._expect else self.flush()

    def reading(
        self, at_us: int, audio_us: int | None, video_us: int | None
    ) -> list[tuple[T, int]]:
        """A reading taken at ``at_us`` (either delay may be unknown): the frames it
        covers leave with it."""
        if (
            audio_us is not None
            and video_us is not None
            and abs(audio_us - video_us) > MAX_SHIFT_US
        ):
            audio_us = video_us = None  # nonsense: keep what was known
        self._audio_us = self._audio_us if audio_us is None else audio_us
        self._video_us = self._video_us if video_us is None else video_us
        return self._release(at_us, lead=True)

    def end_first_hold(self) -> None:
        """From now on, frames wait ``max_hold`` at most."""
        self._hold_us = self.max_hold_us

    def due(self, now_us: int) -> list[tuple[T, int]]:
        """Frames that waited ``max_hold`` (the first ones: ``first_hold``) leave with
        the newest reading."""
        return self._release(now_us - self._hold_us)

    def flush(self) -> list[tuple[T, int]]:
        return self._release(None)

    def _release(self, arrived_by: int | None, lead: bool = False) -> list[tuple[T, int]]:
        """Frames that arrived by ``arrived_by`` (all: None), less the shift with
        ``lead``."""
        out = []
        while self._held:
            arrival, ts, item = self._held[0]
            wait_for = arrival + (max(0, self.applied_us) if lead else 0)
            if arrived_by is not None and wait_for > arrived_by:
                break
            self._held.popleft()
            out.append((item, self._shift(ts)))
        if out:
            self.end_first_hold()
        return out

    def _shift(self, ts: int) -> int:
        if self._audio_us is not None and self._video_us is not None:
            target = self._audio_us - self._video_us
            if self._last_ts is None:
                self.applied_us = target
            else:
                give_back = max(0, (ts - self._last_ts) // 2)
                self.applied_us = max(target, self.applied_us - give_back)
        self._last_ts = ts
        return self.applied_us
