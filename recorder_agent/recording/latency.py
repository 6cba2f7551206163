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
``audio delay − video delay``: later at once (NetEq's delay climbs fast in the first
second), earlier only a little per frame, never back past the frame before.
"""

from __future__ import annotations

from dataclasses import dataclass

RENDER_DELAY_US = 10_000  # libwebrtc's fixed render delay, part of video's render time
SLEW_US_PER_FRAME = 2_000  # how far the applied shift moves per video frame
MAX_SHIFT_US = 500_000  # a measured difference beyond this is taken as nonsense


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


class VideoShift:
    """The shift added to video timestamps: up to its target at once (a frame can always
    move later), down to it a little per frame.

    >>> s = VideoShift()
    >>> s.set_delays(audio_us=60_000, video_us=20_000)
    >>> s.next(0)
    40000
    >>> s.set_delays(audio_us=30_000, video_us=20_000)
    >>> [s.next(ts) for ts in (33_000, 66_000, 67_000)]  # the last came 1 ms later
    [38000, 36000, 35500]
    >>> s.set_delays(audio_us=80_000, video_us=20_000)
    >>> s.next(100_000)
    60000
    """

    def __init__(self) -> None:
        self.target_us: int | None = None
        self.applied_us = 0
        self._last_ts: int | None = None

    def set_delays(self, audio_us: int, video_us: int) -> None:
        diff = audio_us - video_us
        if abs(diff) > MAX_SHIFT_US:
            return
        if self.target_us is None:
            self.applied_us = diff
        self.target_us = diff

    def next(self, ts: int) -> int:
        """The shift for the video frame stamped ``ts``: it never gives back more than
        half the time since the frame before, so the order of frames holds."""
        gap = SLEW_US_PER_FRAME if self._last_ts is None else (ts - self._last_ts) // 2
        self._last_ts = ts
        if self.target_us is not None:
            down = max(0, min(SLEW_US_PER_FRAME, gap))
            self.applied_us = max(self.target_us, self.applied_us - down)
        return self.applied_us
