"""One timeline per file: where each frame goes, and what fills the holes.

All times in µs on the producer's clock (``time.monotonic`` for LiveKit frames). The
file's zero is the first media instant the recording saw (``origin_us``).

* Video pts come straight from frame timestamps (90 kHz); a timestamp that does not
  move forward is refused.
* Audio pts come from the sample count, so audio is gap-free by construction. Each
  frame's arrival time anchors it. Arrival can only be late, never early, so a frame
  that comes later than its place says is a gap only if the frames after it stay that
  late: a job process starved beside a CPU hog got its audio in pieces, each piece's
  end looked like a gap, and the next piece was then trimmed as early, so each stall
  cost its length twice (4.9 s of 9.3 s in one room of a burst). Such a frame waits
  until the frames after it drain the lateness (no gap: a delivery stall, or an
  event loop's jitter) or the frames arriving ``LOOKAHEAD_US`` (5 s) after it all stay late
  (a gap: silence as long as the least lateness among them). A burst's arrivals span
  no time: a job process busy starting up got 1.5 s of queued audio at once. Audio
  that comes after silence was filled in (no audio was flowing) starts anew: it is
  placed at once, at its arrival.
* A frame that arrives earlier than its place says, by even 2 ms, proves the anchor
  was late (the first frame came through a busy event loop), so the count is trimmed
  back to it. Under a CPU hog the first frame was 20-50 ms late: without this the
  whole file kept that offset. (A burst of queued audio at the very start would be
  trimmed by this rule; the recording moves its origin back before the timeline sees
  it.) Every trimmed sample is counted.
* When a stream stops, the other one keeps the file moving: silence is added, or the
  last picture is repeated, ``fill_delay`` behind the newest media time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..util import AAC_FRAME, VIDEO_CLOCK, BadFrame


def us_to(units_per_s: int, us: int) -> int:
    return us * units_per_s // 1_000_000


T = TypeVar("T")

EARLY_US = 2_000  # arrival this much before the count re-anchors it
# Arrivals after a late frame that stay late: then it is a gap. Within a subscribed
# track the sample count is right unless the SDK's audio device missed its 10 ms
# ticks, while arrival, even stamped in the SDK's callback, came in bursts 1 s apart
# in a starved job process: 1 s took such bursts for gaps (silence, then as much
# trimmed) in 2 of 10 rooms of a burst beside a CPU hog.
LOOKAHEAD_US = 5_000_000
MAX_WAITING_US = 10_000_000  # audio that may wait (a burst's arrivals span no time)


@dataclass
class AudioPlacement:
    silence: int  # samples of silence to write before the frame
    trim: int  # samples to cut from the frame's start
    overlap: bool = False  # the trim is more than an anchor correction: frames overlapped


class AudioTimeline(Generic[T]):
    """Sample-count clock for one output audio stream. Frames wait in it, each with its
    ``item`` (the samples, opaque here), until their place is known.

    >>> tl = AudioTimeline(48_000, origin_us=0)
    >>> tl.push(start_us=0, samples=480, item="a"); tl.release()
    [('a', AudioPlacement(silence=0, trim=0, overlap=False))]
    >>> tl.push(start_us=1_000_000, samples=480, item="b"); tl.release()  # late: it waits
    []
    >>> tl.push(start_us=1_010_000, samples=480, item="c")
    >>> [(item, placed.silence) for item, placed in tl.release(final=True)]  # a 990 ms gap
    [('b', 47520), ('c', 0)]
    >>> tl.push(start_us=1_015_000, samples=480, item="d"); tl.release()  # 5 ms early
    [('d', AudioPlacement(silence=0, trim=240, overlap=False))]
    """

    def __init__(self, sample_rate: int, origin_us: int) -> None:
        self.rate = sample_rate
        self.origin_us = origin_us
        self.next_sample = 0  # pts of the next sample to be written
        # Waiting frames: (start_us, samples, samples pushed before it, item).
        self._waiting: deque[tuple[int, int, int, T]] = deque()
        self._pushed = 0  # samples ever pushed
        # (sample count at arrival - samples pushed before it, samples pushed before it)
        # of waiting frames, increasing: its head gives the least lateness from any
        # waiting frame on in O(1). A rescan per frame cost 0.4 ms each in a 5 s burst.
        self._least: deque[tuple[int, int]] = deque()
        self._after_fill = False  # silence was filled in since the last frame written

    @property
    def newest_us(self) -> int | None:
        """Start of the newest waiting frame (None: none waits)."""
        return self._waiting[-1][0] if self._waiting else None

    def push(self, start_us: int, samples: int, item: T) -> None:
        """A frame of ``samples`` (output rate) heard from ``start_us``; see ``release``."""
        key = self._at(start_us) - self._pushed
        while self._least and self._least[-1][0] >= key:
            self._least.pop()
        self._least.append((key, self._pushed))
        self._waiting.append((start_us, samples, self._pushed, item))
        self._pushed += samples

    def release(self, final: bool = False) -> list[tuple[T, AudioPlacement]]:
        """The waiting frames whose place is known, in order, each with its placement;
        with ``final``, all of them (nothing more will come in time)."""
        out = []
        while self._waiting:
            start_us, samples, before, item = self._waiting[0]
            drift = self._at(start_us) - self.next_sample
            tolerance = max(samples, AAC_FRAME)
            silence = 0
            if drift > tolerance:
                least = self._least[0][0] + before - self.next_sample
                drained = least <= tolerance
                seen = self._pushed - before >= us_to(self.rate, MAX_WAITING_US) or (
                    self._waiting[-1][0] - start_us >= LOOKAHEAD_US
                )
                if not (drained or seen or final or self._after_fill):
                    break
                silence = 0 if drained else least
            self._waiting.popleft()
            if self._least[0][1] == before:
                self._least.popleft()
            early = -drift > us_to(self.rate, EARLY_US)
            trim = min(samples, -drift) if early else 0
            self.next_sample += silence + samples - trim
            self._after_fill = False
            out.append((item, AudioPlacement(silence, trim, overlap=-drift > tolerance)))
        return out

    def _at(self, t_us: int) -> int:
        """The sample count at ``t_us``."""
        return us_to(self.rate, t_us - self.origin_us)

    def silence_until(self, t_us: int) -> int:
        """Samples of silence that bring the stream up to ``t_us`` (0 if already there)."""
        target = self._at(t_us)
        missing = max(0, target - self.next_sample)
        self.next_sample += missing
        self._after_fill = self._after_fill or missing > 0
        return missing

    @property
    def end_us(self) -> int:
        return self.origin_us + self.next_sample * 1_000_000 // self.rate


class VideoTimeline:
    """90 kHz pts for frames, and the instants at which to repeat the last picture.

    The file declares the nominal rate (x264's VUI), and tools that take it at its word
    (``ffmpeg -f null``) put each frame on that rate's ticks: two frames less than a
    nominal frame apart land on one tick and FFmpeg reports "non monotonically
    increasing dts". A browser's 20 fps from a 30 fps camera comes 28-40 ms apart, and
    5-15 ms apart when a busy machine bunches frames. So frames are set at least one
    nominal frame apart, but never more than two frames later than they came. The
    recording's ``quality.Thinner`` at the nominal rate leaves out, before they get
    here, the frames that would have to be later (a long bunch, a stream faster than
    the declared rate); one that still would (after a repeated picture) keeps its own
    time, just after the one before. (A first try that refused such frames here, with
    no rate to judge by, lost a marker flash beside a CPU hog.)

    >>> vt = VideoTimeline(0, 1_000_000, frame_us=33_333)
    >>> vt.place(0), vt.place(10_000), vt.place(20_000), vt.place(100_000)
    (0, 3000, 6000, 9000)
    >>> vt.place(101_000), vt.place(102_000), vt.place(103_000)
    (12000, 15000, 15001)
    """

    def __init__(self, origin_us: int, fill_interval_us: int, frame_us: int = 0) -> None:
        self.origin_us = origin_us
        self.fill_interval = us_to(VIDEO_CLOCK, fill_interval_us)
        self.min_gap = -(-frame_us * VIDEO_CLOCK // 1_000_000)  # rounded up: whole ticks apart
        self.last_pts: int | None = None
        self._last_real: int | None = None  # the last placed frame's own time

    def place(self, timestamp_us: int) -> int:
        """pts for a frame; BadFrame when it does not move forward in time."""
        real = us_to(VIDEO_CLOCK, timestamp_us - self.origin_us)
        if real < 0 or (self._last_real is not None and real <= self._last_real):
            raise BadFrame(
                "timestamp_backwards", f"video timestamp {timestamp_us} µs not after previous"
            )
        pts = real if self.last_pts is None else max(real, self.last_pts + self.min_gap)
        if pts - real > 2 * self.min_gap:
            pts = max(real, self.last_pts + 1)
        self.last_pts, self._last_real = pts, real
        return pts

    def repeats_until(self, t_us: int) -> list[int]:
        """pts of repeated frames needed so no hole before ``t_us`` is longer than the
        fill interval. Starts from the origin when no frame was ever placed."""
        target = us_to(VIDEO_CLOCK, t_us - self.origin_us)
        out: list[int] = []
        nxt = 0 if self.last_pts is None else self.last_pts + self.fill_interval
        while nxt <= target:
            out.append(nxt)
            self.last_pts = self._last_real = nxt
            nxt += self.fill_interval
        return out
