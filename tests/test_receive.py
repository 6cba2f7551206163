"""Audio goes from the SDK's callback straight into the recording (receive.AudioFeed),
with the SDK's real native streams: a local track fed by an ``rtc.AudioSource``. And the
receiver's dropped frames are counted once (receive.DelayProbe)."""

import asyncio
import time

import numpy as np
from livekit import rtc

from recorder_agent.receive import AudioFeed, DelayProbe, VideoFeed, _frame_router
from recorder_agent.recording import RecordingStats
from recorder_agent.util import monotonic_us


class Recipient:
    """What a recording offers a feed: ``push_audio``, from the SDK's thread."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int]] = []  # (value of a 10 ms piece, when pushed)
        self.sizes: list[int] = []  # samples per frame handed over

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        now = monotonic_us()
        self.sizes.append(frame.samples_per_channel)
        pieces = np.frombuffer(frame.data, np.int16)[::480]  # _speak's frames are constant
        self.frames.extend((int(v), now) for v in pieces)


async def _speak(source: rtc.AudioSource, values: range) -> None:
    for value in values:
        frame = rtc.AudioFrame.create(48_000, 1, 480)
        np.frombuffer(frame.data, np.int16)[:] = value
        await source.capture_frame(frame)


async def _until(done, timeout: float = 10.0) -> None:
    """Wait for ``done()`` (the SDK delivers on its own thread), at most ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


def _track() -> tuple[rtc.AudioSource, rtc.LocalAudioTrack]:
    source = rtc.AudioSource(48_000, 1)
    return source, rtc.LocalAudioTrack.create_audio_track("mic", source)


def test_every_frame_reaches_the_recording_in_order_without_the_event_loop():
    async def run() -> None:
        source, track = _track()
        got = Recipient()
        feed = AudioFeed(track, got, 48_000, 1)
        before = monotonic_us()
        await _speak(source, range(1, 21))
        await _until(lambda: any(v == 20 for v, _ in got.frames))
        spoken = [v for v, _ in got.frames if v]
        assert spoken == list(range(1, 21))
        assert set(got.sizes) == {4800}  # the SDK joins 10 ms frames into 100 ms
        assert all(before <= t <= monotonic_us() for _, t in got.frames)
        feed.cancel()

    asyncio.run(run())


def test_nothing_reaches_the_recording_after_cancel_and_the_stream_is_forgotten():
    async def run() -> None:
        source, track = _track()
        got = Recipient()
        feed = AudioFeed(track, got, 48_000, 1)
        await _speak(source, range(1, 11))  # one whole 100 ms frame
        await _until(lambda: any(v == 10 for v, _ in got.frames))
        feed.cancel()
        count = len(got.frames)
        await _speak(source, range(11, 31))
        router = _frame_router()
        await _until(lambda: not router._closing)
        assert len(got.frames) == count
        assert not router.feeds and not router._closing  # its end-of-stream came

    asyncio.run(run())


def test_a_stream_that_is_not_ours_gets_its_own_frames():
    async def run() -> None:
        source, track = _track()
        got = Recipient()
        feed = AudioFeed(track, got, 48_000, 1)
        theirs = rtc.AudioStream(track, sample_rate=48_000, num_channels=1)  # an agent's STT

        async def listen() -> list[int]:
            values: list[int] = []
            async for ev in theirs:
                values.append(int(np.frombuffer(ev.frame.data, np.int16)[0]))
                if values[-1] == 10:
                    return values
            return values

        listener = asyncio.create_task(listen())
        await _speak(source, range(1, 11))
        heard = await asyncio.wait_for(listener, 5)
        assert [v for v in heard if v] == list(range(1, 11))
        # Each stream gets its frames on its own path: the other one's 10th may come first.
        await _until(lambda: any(v == 10 for v, _ in got.frames))
        assert [v for v, _ in got.frames if v] == list(range(1, 11))
        feed.cancel()
        await theirs.aclose()

    asyncio.run(run())


class Counted:
    """What a probe offers drops to: a recording's ``stats``."""

    def __init__(self) -> None:
        self.stats = RecordingStats()


def test_the_receivers_drops_are_counted_once_across_roll_overs_and_new_tracks():
    """Each recording counts the frames the receiver dropped from its own start, on every
    video track it has had; a resubscribed track's count starts from 0 again."""
    counted: dict[str, int] = {}
    first, second = Counted(), Counted()
    probe = DelayProbe(first, counted)
    for total in (0, 3, 5):
        probe.count_drops("TR_v1", total)
    assert first.stats.dropped == {"receiver_dropped": 5}
    probe = DelayProbe(second, counted)  # the file rolled over; same track
    probe.count_drops("TR_v1", 7)
    probe.count_drops("TR_v2", 1)  # the camera was published again
    probe.count_drops("TR_v2", 0)  # and resubscribed: its count restarted
    probe.count_drops("TR_v2", 2)
    assert second.stats.dropped == {"receiver_dropped": 5}
    assert first.stats.dropped == {"receiver_dropped": 5}


class Watcher:
    """What a recording offers a video feed: ``push_video``, from the SDK's thread."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, int]] = []  # (luma, render time, when pushed)

    def push_video(self, frame: rtc.VideoFrame, timestamp_us: int, rotation: int) -> None:
        self.frames.append((frame.data[0], timestamp_us, monotonic_us()))

    def lumas(self) -> list[int]:
        """The frames the test sent: libwebrtc may send a black one of its own first."""
        return [luma for luma, _, _ in self.frames if luma]


def _show(source: rtc.VideoSource, i: int) -> None:
    """The ``i``-th 64x64 frame, its luma ``i * 10``, 33 ms after the one before."""
    frame = rtc.VideoFrame(64, 64, rtc.VideoBufferType.I420, bytearray(64 * 96))
    frame.data[: 64 * 64] = bytes([i * 10]) * (64 * 64)
    source.capture_frame(frame, timestamp_us=i * 33_333)


def test_video_frames_reach_the_recording_while_the_event_loop_is_busy():
    """Each decoded frame goes on from the SDK's callback: a job process whose event loop
    is busy (or starved) still gets its frames in order, each when it comes."""

    async def run() -> None:
        source = rtc.VideoSource(64, 64)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        got = Watcher()
        feed = VideoFeed(track, got)
        started = monotonic_us()
        for i in range(1, 11):  # the loop is blocked for all of it: no await
            _show(source, i)
            time.sleep(0.03)
        deadline = time.monotonic() + 10  # a busy machine: the SDK's thread may lag
        while got.lumas()[-1:] != [100] and time.monotonic() < deadline:
            time.sleep(0.01)
        blocked_until = monotonic_us()
        assert got.lumas() == [i * 10 for i in range(1, 11)]
        assert all(started <= pushed <= blocked_until for luma, _, pushed in got.frames if luma)
        feed.cancel()
        _show(source, 11)
        await asyncio.sleep(0.2)
        assert got.lumas() == [i * 10 for i in range(1, 11)]

    asyncio.run(run())


class Choosy(Watcher):
    """A recording that fails on two frames."""

    def __init__(self) -> None:
        super().__init__()
        self.stats = RecordingStats()

    def push_video(self, frame: rtc.VideoFrame, timestamp_us: int, rotation: int) -> None:
        if frame.data[0] in (20, 30):
            raise ValueError("not this one")
        super().push_video(frame, timestamp_us, rotation)


def test_a_frame_that_cannot_be_taken_is_counted_logged_once_and_the_rest_come(caplog):
    async def run() -> None:
        source = rtc.VideoSource(64, 64)
        track = rtc.LocalVideoTrack.create_video_track("cam", source)
        got = Choosy()
        feed = VideoFeed(track, got)
        for i in range(1, 6):
            _show(source, i)
            await asyncio.sleep(0.03)
        await _until(lambda: got.lumas()[-1:] == [50])
        feed.cancel()
        assert got.lumas() == [10, 40, 50]
        assert got.stats.dropped == {"unreadable_frame": 2}
        assert sum("could not be read" in r.message for r in caplog.records) == 1

    asyncio.run(run())
