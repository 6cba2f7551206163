"""Synthetic participants: frames built through the LiveKit SDK itself, with flash/beep
sync markers at known instants (``inspect`` measures A/V offset from them).

Used by ``make demo``, the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from livekit import rtc

from recorder_agent import ParticipantRecording

VBT = rtc.VideoBufferType
TS = rtc.TrackSource
DARK, FLASH = 40, 235  # luma of normal and flash frames
RED_YUV = (81, 90, 240)  # BT.601 limited-range red
RATE = 48_000
AUDIO_FRAME = 480  # 10 ms, what LiveKit's AudioStream delivers
AUDIO_LEAD_MS = 100  # how far ahead of video a Publisher queues its audio


def now_us() -> int:
    return time.monotonic_ns() // 1000


def yuv_frame(
    w: int, h: int, yuv: tuple[int, int, int], buffer_type: int = VBT.I420
) -> rtc.VideoFrame:
    """A flat-colour frame of any buffer type. Planar types are filled plane by plane
    through the SDK's own plane layout (``get_plane``); packed RGB types come from the
    SDK's own I420 conversion."""
    y, u, v = yuv
    if buffer_type in (VBT.RGBA, VBT.BGRA, VBT.ARGB, VBT.ABGR, VBT.RGB24):
        return yuv_frame(w, h, yuv).convert(buffer_type)
    size = {VBT.I420: 1.5, VBT.I420A: 2.5, VBT.I422: 2, VBT.I444: 3, VBT.I010: 3, VBT.NV12: 1.5}
    cw, ch = (w + 1) // 2, (h + 1) // 2
    length = {
        VBT.I420: w * h + 2 * cw * ch,
        VBT.I420A: 2 * w * h + 2 * cw * ch,
        VBT.I422: w * h + 2 * cw * h,
        VBT.I444: 3 * w * h,
        VBT.I010: 2 * w * h + 4 * cw * ch,
        VBT.NV12: w * h + 2 * cw * ch,
    }[buffer_type]
    assert buffer_type in size
    frame = rtc.VideoFrame(w, h, buffer_type, bytearray(length))
    if buffer_type == VBT.I010:
        values = [y << 2, u << 2, v << 2]
        for i, val in enumerate(values):
            np.frombuffer(frame.get_plane(i), np.uint16)[:] = val
    elif buffer_type == VBT.NV12:
        np.frombuffer(frame.get_plane(0), np.uint8)[:] = y
        uv = np.frombuffer(frame.get_plane(1), np.uint8)
        uv[0::2], uv[1::2] = u, v
    else:
        for i, val in enumerate([y, u, v, 255]):
            plane = frame.get_plane(i)
            if plane is not None:
                np.frombuffer(plane, np.uint8)[:] = val
    return frame


def luma_frame(w: int, h: int, luma: int) -> rtc.VideoFrame:
    return yuv_frame(w, h, (luma, 128, 128))


def camera_like(w: int, h: int, n: int) -> list[np.ndarray]:
    """I420 buffers with moving gradients and noise: a camera, roughly, for x264."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(n):
        y = ((xx + 4 * i) % 256 * 0.6 + (yy + 2 * i) % 256 * 0.3).astype(np.uint8)
        y = (y + rng.integers(0, 12, (h, w), dtype=np.uint8)).astype(np.uint8)
        uv = np.full(2 * (w // 2) * (h // 2), 128, np.uint8)
        frames.append(np.concatenate([y.reshape(-1), uv]))
    return frames


def tone(n: int, offset: int, amplitude: float, freq: float = 1000.0) -> np.ndarray:
    t = (np.arange(n) + offset) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


@dataclass
class MarkedSignal:
    """A synthetic participant's media, 30 fps video and 10 ms audio frames, with markers.

    Video frames are dark, white during the 66 ms after each marker; audio is a quiet
    tone, loud during the 100 ms after each marker. ``frames(until)`` continues from
    where the last call stopped; a stream switched off (``video``/``audio`` False) skips
    ahead, as a mute does.
    """

    width: int = 320
    height: int = 240
    fps: int = 30
    markers: Sequence[float] = ()
    video: bool = True
    audio: bool = True
    _vi: int = 0  # index of the next video frame
    _ai: int = 0  # index of the next audio frame

    @property
    def position(self) -> float:
        """Media time reached so far, in seconds."""
        return max(self._vi / self.fps, self._ai * AUDIO_FRAME / RATE)

    def frames(self, until: float) -> Iterator[tuple[float, rtc.VideoFrame | rtc.AudioFrame]]:
        """(media time, frame) for every frame before ``until``, in time order."""
        while True:
            tv = self._vi / self.fps
            ta = self._ai * AUDIO_FRAME / RATE
            if min(tv if self.video else math.inf, ta if self.audio else math.inf) >= until - 1e-9:
                break
            if self.video and (tv <= ta or not self.audio):
                flash = any(0 <= tv - m < 2 / self.fps for m in self.markers)
                self._vi += 1
                yield tv, luma_frame(self.width, self.height, FLASH if flash else DARK)
            else:
                loud = any(0 <= ta - m < 0.1 for m in self.markers)
                samples = tone(AUDIO_FRAME, self._ai * AUDIO_FRAME, 0.5 if loud else 0.005)
                self._ai += 1
                yield ta, rtc.AudioFrame(samples.tobytes(), RATE, 1, AUDIO_FRAME)
        if not self.video:
            self._vi = math.ceil(until * self.fps - 1e-9)
        if not self.audio:
            self._ai = math.ceil(until * RATE / AUDIO_FRAME - 1e-9)


class Participant(MarkedSignal):
    """Feeds a ``ParticipantRecording`` directly, timestamps simulated from ``start_us``.

    >>> p = Participant(rec, now_us(), markers=[1.0])
    >>> p.feed(5.0)        # as fast as the recording takes it
    """

    def __init__(self, rec: ParticipantRecording, start_us: int, **signal: Any) -> None:
        super().__init__(**signal)
        self.rec, self.start_us = rec, start_us

    def feed_realtime(self, until: float, step: float = 0.1) -> Iterator[float]:
        """Feed at the pace of the wall clock, ``step`` at a time; yields media time fed."""
        t = self.position
        while t < until - 1e-9:
            t = min(until, t + step)
            self.feed(t, drain_every=0)
            yield t
            time.sleep(max(0.0, self.start_us / 1e6 + t - time.monotonic()))

    def feed(self, until: float, drain_every: float = 0.5) -> None:
        """Push everything up to ``until`` seconds. With ``drain_every``, waits for the
        recording that often (media seconds) so that nothing is dropped."""
        next_drain = self.position + drain_every
        for t, frame in self.frames(until):
            ts = self.start_us + round(t * 1e6)
            if isinstance(frame, rtc.VideoFrame):
                self.rec.push_video(frame, ts)
            else:
                self.rec.push_audio(frame, ts)
            if drain_every and t >= next_drain:
                assert self.rec.drain(60), "recording did not keep up"
                next_drain += drain_every


class Publisher(MarkedSignal):
    """Publishes the signal into a LiveKit room through ``rtc.VideoSource`` and
    ``rtc.AudioSource``, at the pace of the wall clock.

    >>> pub = Publisher(markers=[2.0, 4.0])
    >>> await pub.publish(room)            # camera + microphone
    >>> await pub.stream(6.0)              # six seconds of media, in real time
    """

    def __init__(self, **signal: Any) -> None:
        super().__init__(**signal)
        self.t0 = 0.0
        self.publications: dict[str, rtc.LocalTrackPublication] = {}

    async def publish(self, room: rtc.Room, screen: bool = False) -> None:
        # Audio goes AUDIO_LEAD ahead into a queue twice that size, which the SDK drains
        # at 10 ms a tick: a publisher that stalls (a busy machine) never runs it dry,
        # so audio never falls behind video for good, and media time t of both streams
        # leaves at the same instant.
        self._audio_src = rtc.AudioSource(RATE, 1, queue_size_ms=2 * AUDIO_LEAD_MS)
        if self.video:
            await self.publish_video(room, screen)
        if self.audio:
            track = rtc.LocalAudioTrack.create_audio_track("audio", self._audio_src)
            source = TS.SOURCE_SCREENSHARE_AUDIO if screen else TS.SOURCE_MICROPHONE
            opts = rtc.TrackPublishOptions(source=source)
            self.publications["audio"] = await room.local_participant.publish_track(track, opts)
        self.t0 = time.monotonic() - self.position

    async def publish_video(self, room: rtc.Room, screen: bool = False) -> None:
        """Publish the video track: in ``publish``, or later for a camera turned on
        mid-call (with ``video`` then set, so that ``stream`` sends it)."""
        self._video_src = rtc.VideoSource(self.width, self.height)
        track = rtc.LocalVideoTrack.create_video_track("video", self._video_src)
        opts = rtc.TrackPublishOptions(source=TS.SOURCE_SCREENSHARE if screen else TS.SOURCE_CAMERA)
        self.publications["video"] = await room.local_participant.publish_track(track, opts)

    def restart_clock(self) -> None:
        """Take now as the current media time: after waiting between ``publish`` and
        ``stream``, the first frames go out at their pace rather than all at once."""
        self.t0 = time.monotonic() - self.position

    async def stream(self, until: float) -> None:
        lead = AUDIO_LEAD_MS / 1000
        pending: list[tuple[float, int, rtc.VideoFrame | rtc.AudioFrame]] = []
        for seq, (t, frame) in enumerate(self.frames(until)):
            at = t - lead if isinstance(frame, rtc.AudioFrame) else t
            heapq.heappush(pending, (at, seq, frame))
            while pending and pending[0][0] <= t - lead:  # no later frame goes sooner
                await self._send(*heapq.heappop(pending))
        while pending:
            await self._send(*heapq.heappop(pending))

    async def _send(self, at: float, _seq: int, frame: rtc.VideoFrame | rtc.AudioFrame) -> None:
        await asyncio.sleep(max(0.0, self.t0 + at - time.monotonic()))
        if isinstance(frame, rtc.VideoFrame):
            self._video_src.capture_frame(frame)
        else:
            await self._audio_src.capture_frame(frame)
