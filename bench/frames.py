"""The benchmarks' input: camera-like I420 frames and a tone, pre-generated so that
every candidate gets the same pixels and samples and none pays for making them; and
the fast feeder that pushes them into a recording."""

from __future__ import annotations

import time

import numpy as np
from livekit import rtc

from demo.testsignal import AUDIO_FRAME, RATE, tone
from recorder_agent import ParticipantRecording

FPS = 30

# Items (video and audio frames) a fast feeder lets wait in a recording's queue; under
# the video queue's 30 frames, so nothing is dropped.
BACKLOG = 20


def tone_pcm() -> np.ndarray:
    """10 ms of 48 kHz mono s16 tone, as LiveKit's ``AudioStream`` delivers a frame."""
    return tone(AUDIO_FRAME, 0, 0.2)


def as_rtc(buffers: list[np.ndarray], w: int, h: int) -> list[rtc.VideoFrame]:
    """The buffers as the SDK hands received frames over (views, no copies)."""
    return [rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, memoryview(b)) for b in buffers]


def rtc_tone() -> rtc.AudioFrame:
    return rtc.AudioFrame(tone_pcm().tobytes(), RATE, 1, AUDIO_FRAME)


class FastFeeder:
    """Pushes 30 fps video, with 10 ms audio frames in between, into ``rec`` as fast as
    it takes them: it waits while more than ``BACKLOG`` items queue (back-pressure, as a
    pipe gives; the queue would otherwise drop frames)."""

    def __init__(self, rec: ParticipantRecording, frames: list[rtc.VideoFrame]) -> None:
        self.rec = rec
        self.frames = frames
        self.audio = rtc_tone()
        self.base = time.monotonic_ns() // 1000
        self.pushed = 0  # video frames so far
        self._audio_pushed = 0

    def push(self, n: int) -> None:
        """Push the next ``n`` video frames and the audio up to their end."""
        rec = self.rec
        for i in range(self.pushed, self.pushed + n):
            rec.push_video(self.frames[i % len(self.frames)], self.base + i * 1_000_000 // FPS)
            while self._audio_pushed * 10_000 < (i + 1) * 1_000_000 // FPS:
                rec.push_audio(self.audio, self.base + self._audio_pushed * 10_000)
                self._audio_pushed += 1
            while rec.queue_depth > BACKLOG:
                time.sleep(0.0005)
        self.pushed += n
