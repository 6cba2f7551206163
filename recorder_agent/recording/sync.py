"""The A/V timing policy of one file: which instant each frame gets, and what fills
the holes. Pure: it returns steps for the recording to carry out, and does no I/O.

All times are µs on the producer's clock (``time.monotonic`` for LiveKit frames);
media time 0 is the first instant the recording saw (``Origin``).

* Video pts come from frame timestamps, already shifted by the receiver's audio delay
  minus its video delay (latency.py); audio pts from the sample count, re-anchored to
  arrival when they drift apart (timeline.py).
* Audio that comes late waits for the frames after it: they tell a gap (silence) from
  a delivery stall (no silence); see timeline.py. Audio on time is written at once.
* When one stream stops, the other keeps the file moving ``fill_delay`` behind the
  newest media: silence is written, or the last picture repeated. With no input at
  all, audio is filled later (``IDLE_AUDIO_US``). A hole of 0.5 s or more becomes a
  manifest event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..util import VIDEO_CLOCK
from .timeline import AudioPlacement, AudioTimeline, VideoTimeline

GAP_EVENT_US = 500_000  # filled holes at least this long become manifest events
# With no input at all, audio is filled only this far behind, and not at all while an
# audio track is subscribed: its audio never pauses (NetEq conceals, a muted one is
# silence), so no input means the job process stalled, and the backlog comes at once
# afterwards. Silence already written for it made the timeline trim as much real audio
# (stalls of 0.26-0.75 s beside stress-ng --cpu 2 against a 0.5 s fill delay; event
# loops 2-3.8 s behind in a burst of 10 voice rooms against this 2 s one).
IDLE_AUDIO_US = 2_000_000


@dataclass(frozen=True)
class Origin:
    """Media time 0: the first frame's timestamp, and when it was pushed."""

    media_us: int
    pushed_us: int

    def elapsed_us(self, at_pushed: int) -> int:
        """Wall time since the first frame was pushed (µs, never negative)."""
        return max(0, at_pushed - self.pushed_us)


@dataclass(frozen=True)
class PlacePicture:
    pts: int
    frame: Any  # the picture, opaque here
    rotation: int


@dataclass(frozen=True)
class RepeatPicture:
    pts: int


@dataclass(frozen=True)
class WriteSamples:
    block: np.ndarray  # planar float32 at the output rate


@dataclass(frozen=True)
class WriteSilence:
    samples: int


@dataclass(frozen=True)
class Gap:
    kind: str  # "audio_gap" or "video_gap"
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Trimmed:
    samples: int  # cut from an audio frame's start: it came earlier than its place
    overlap: bool  # more than an anchor correction: it overlapped the audio before it


Step = PlacePicture | RepeatPicture | WriteSamples | WriteSilence | Gap | Trimmed


class AvSync:
    """Timing for one file, from the moment its streams exist.

    >>> sync = AvSync(Origin(0, 0), rate=48_000, frame_us=33_333, fill_delay_us=500_000,
    ...               fill_interval_us=1_000_000)
    >>> sync.video(0, frame=None, rotation=0)
    [PlacePicture(pts=0, frame=None, rotation=0)]
    """

    def __init__(
        self,
        origin: Origin,
        rate: int,
        frame_us: int,
        fill_delay_us: int,
        fill_interval_us: int,
        video: bool = True,
    ) -> None:
        self.origin = origin
        self._video = video  # False: an audio-only file, no picture is ever repeated
        self.rate = rate
        self.latest = origin.media_us  # newest media instant seen (µs)
        self._frame_us = frame_us
        self._fill_delay = fill_delay_us
        # The file covers at least this instant: one frame past the origin, or past the
        # last real video frame, so no declared stream ends without a packet.
        self.min_end = origin.media_us + frame_us
        self._vtl = VideoTimeline(origin.media_us, fill_interval_us, frame_us)
        self._atl: AudioTimeline[tuple[int, np.ndarray]] = AudioTimeline(rate, origin.media_us)
        self._silence_run = 0  # samples of silence since the last real audio
        self._video_stopped: int | None = None  # pts of the last real frame before repeats

    @property
    def media_time_s(self) -> float:
        return round((self.latest - self.origin.media_us) / 1e6, 3)

    def media_now(self, at_pushed: int) -> int:
        """The media clock at the real instant ``at_pushed``: wall time since the first
        frame, or the newest media if input ran ahead of it (offline feeding)."""
        return max(self.latest, self.origin.media_us + self.origin.elapsed_us(at_pushed))

    def video(self, ts: int, frame: Any, rotation: int) -> list[Step]:
        """Steps for a video frame stamped ``ts``; BadFrame if it does not move forward."""
        pts = self._vtl.place(ts)
        self._seen(ts)
        self.min_end = ts + self._frame_us
        steps: list[Step] = []
        if self._video_stopped is not None:
            steps += self._gap("video_gap", pts - self._video_stopped, pts, VIDEO_CLOCK)
            self._video_stopped = None
        steps += self._fill_audio(ts - self._fill_delay)
        steps.append(PlacePicture(pts, frame, rotation))
        return steps

    def audio(self, start: int, blocks: list[np.ndarray]) -> list[Step]:
        """Steps for audio heard from ``start`` (converted blocks); late audio waits
        until the frames after it, or a fill, decide where it goes."""
        if blocks:
            block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
            self._atl.push(start, block.shape[1], (start, block))
        return self._release()

    def idle(self, at_pushed: int, audio_live: bool = False) -> list[Step]:
        """No input for a while: fill video up to ``fill_delay`` ago, and audio up to
        ``IDLE_AUDIO_US`` ago unless ``audio_live`` (see there)."""
        now = self.media_now(at_pushed)
        steps = [] if audio_live else self._fill_audio(now - max(self._fill_delay, IDLE_AUDIO_US))
        return steps + self._fill_video(now - self._fill_delay)

    def end_instant(self, at_pushed: int) -> int:
        """Where a file closed at ``at_pushed`` ends (µs)."""
        return max(self.media_now(at_pushed), self.min_end)

    def finish(self, end: int) -> list[Step]:
        """Steps that bring both streams up to ``end`` (see ``end_instant``)."""
        steps = self._release(final=True) + self._fill_audio(end) + self._fill_video(end)
        self._seen(end)
        return steps

    # --- internals ----------------------------------------------------------------------

    def _seen(self, media_us: int) -> None:
        self.latest = max(self.latest, media_us)

    def _release(self, final: bool = False) -> list[Step]:
        """Write the waiting audio whose place is known (all of it when ``final``)."""
        steps: list[Step] = []
        for (start, block), placed in self._atl.release(final):
            steps += self._write(start, block, placed)
        return steps

    def _write(self, start: int, block: np.ndarray, placed: AudioPlacement) -> list[Step]:
        block = block[:, placed.trim :]
        steps: list[Step] = [Trimmed(placed.trim, placed.overlap)] if placed.trim else []
        steps += self._silence(placed.silence)
        n = block.shape[1]
        steps += self._gap("audio_gap", self._silence_run, self._atl.next_sample - n, self.rate)
        self._silence_run = 0
        end = start + n * 1_000_000 // self.rate
        self._seen(end)
        if n:
            steps.append(WriteSamples(block))
            steps += self._fill_video(end - self._fill_delay)
        return steps

    def _fill_audio(self, until: int) -> list[Step]:
        """Silence up to ``until`` when no audio is flowing."""
        steps: list[Step] = []
        if (newest := self._atl.newest_us) is not None:
            if newest >= until:
                return steps  # audio is flowing
            steps = self._release(final=True)
        return steps + self._silence(self._atl.silence_until(until))

    def _silence(self, count: int) -> list[Step]:
        if not count:
            return []
        self._silence_run += count
        return [WriteSilence(count)]

    def _fill_video(self, until: int) -> list[Step]:
        """Repeat the last picture (black before the first) while video has stopped."""
        last = self._vtl.last_pts
        steps: list[Step] = []
        if not self._video:
            return steps
        for pts in self._vtl.repeats_until(until):
            if self._video_stopped is None:
                self._video_stopped = last if last is not None else 0
            steps.append(RepeatPicture(pts))
        return steps

    @staticmethod
    def _gap(kind: str, length: int, end: int, rate: int) -> list[Step]:
        """A hole of ``length`` units (of ``rate`` per second) ending at ``end``."""
        if length * 1_000_000 < GAP_EVENT_US * rate:
            return []
        return [Gap(kind, round((end - length) / rate, 3), round(length / rate, 3))]
