"""What the SDK hands over per subscribed track: frames, with nothing dropped unseen,
and how long each stream waited inside the receiver.

Why, measured with livekit 1.1.21:

* The SDK's native video queue defaults to **one** frame (``queue_size_frames`` unset
  means "latest only"), and ``VideoStream(capacity=n)`` adds a Python ring that drops
  its oldest frame when full. A browser run logged ``native video stream queue
  overflow`` in 7 of 11 runs while our manifest said nothing was dropped. Both SDK
  queues are unbounded here: a consumer only moves a frame into its recording's
  bounded inbox, which counts every frame it drops.
* Video's ``timestamp_us`` is libwebrtc's render time, audio's clock is NetEq's
  playout: each carries its own receive delay (see recording/latency.py). The delays
  are read from the inbound-rtp stats, four times a second, for each recording that
  has both audio and video. The stats' ``estimated_playout_timestamp`` (the sender's
  NTP time of what plays now, which would give the exact relation) is 0 for both
  kinds in this SDK: measured over 76 readings of a browser publisher.
* Audio frames carry no time, so each is stamped when the SDK hands it over: in the
  FFI's callback, on the SDK's thread (``AudioArrivals``), not when the event loop
  gets to it. A job process starved beside a CPU hog ran its event loop seconds
  behind; stamped there, its backlog looked like a gap, got silence, and was then
  trimmed as early (3.1-6.3 s of 17-19 s in every room of one burst).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import ffi_pb2, video_frame_pb2

from .recording import ParticipantRecording
from .recording.latency import BufferStats, average_delay_us
from .util import monotonic_us

STATS_TICK_S = 0.25  # a reading per recording with audio and video, four times a second
_STREAM_CLOSE_TIMEOUT = 2.0


class _VideoStream(rtc.VideoStream):
    """``rtc.VideoStream`` whose native queue is unbounded (the SDK's default is one
    frame, and it drops the rest with a log line only)."""

    def _create_owned_stream(self) -> Any:
        assert self._track is not None
        req = ffi_pb2.FfiRequest()
        new = req.new_video_stream
        new.track_handle = self._track._ffi_handle.handle
        new.type = video_frame_pb2.VideoStreamType.VIDEO_STREAM_NATIVE
        new.normalize_stride = True
        new.queue_size_frames = 0  # unbounded
        return FfiClient.instance.request(req).new_video_stream.stream


async def consume_video(track: rtc.Track, rec: ParticipantRecording) -> None:
    """Move every decoded frame of ``track`` into ``rec`` until cancelled."""
    stream = _VideoStream(track)
    try:
        async for ev in stream:
            rec.push_video(ev.frame, ev.timestamp_us, ev.rotation)
    finally:
        await _close_stream(stream)


@dataclass(slots=True)
class _Stamps:
    """One stream's stamps: (sequence number, µs) of the frames kept, and the count."""

    kept: deque[tuple[int, int]]
    count: int = 0


class AudioArrivals:
    """When the SDK handed over each audio frame, per stream, in order.

    A filter on the FFI's event queue runs in the SDK's callback, before the event is
    queued for the event loop; it stamps every audio frame of every stream, so a
    stream's first frame is stamped however soon it comes. A consumer claims its
    stream's stamps and takes them one per frame, by sequence number: a stamp that is
    not there (more than ``KEPT`` frames behind) is reported as None.
    """

    KEPT = 6000  # stamps kept per stream: 60 s of 10 ms frames

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[int, _Stamps] = {}  # by stream handle
        self._claimed: set[int] = set()
        FfiClient.instance.queue.subscribe(filter_fn=self._stamp)

    def _stamp(self, event: Any) -> bool:
        """The queue's filter, on the SDK's thread: stamp, and never queue anything."""
        if event.WhichOneof("message") != "audio_stream_event":
            return False
        ev = event.audio_stream_event
        handle = ev.stream_handle
        with self._lock:
            if ev.HasField("frame_received"):
                stream = self._streams.get(handle)
                if stream is None:
                    stream = self._streams[handle] = _Stamps(deque(maxlen=self.KEPT))
                stream.kept.append((stream.count, monotonic_us()))
                stream.count += 1
            elif ev.HasField("eos") and handle not in self._claimed:
                self._streams.pop(handle, None)  # somebody else's: nobody takes its stamps
        return False

    def claim(self, handle: int) -> None:
        with self._lock:
            self._claimed.add(handle)

    def take(self, handle: int, seq: int) -> int | None:
        """When frame ``seq`` (0 first) of stream ``handle`` was handed over (µs)."""
        with self._lock:
            stream = self._streams.get(handle)
            stamps = stream.kept if stream is not None else None
            while stamps and stamps[0][0] < seq:
                stamps.popleft()
            if stamps and stamps[0][0] == seq:
                return stamps.popleft()[1]
            return None

    def release(self, handle: int) -> None:
        with self._lock:
            self._claimed.discard(handle)
            self._streams.pop(handle, None)


_arrivals: AudioArrivals | None = None


def audio_arrivals() -> AudioArrivals:
    """The process's one ``AudioArrivals`` (created before any stream it must stamp)."""
    global _arrivals
    if _arrivals is None:
        _arrivals = AudioArrivals()
    return _arrivals


async def consume_audio(
    track: rtc.Track, rec: ParticipantRecording, sample_rate: int, channels: int
) -> None:
    """Move every 10 ms of ``track`` into ``rec`` until cancelled, each frame stamped
    when the SDK handed it over (see ``AudioArrivals``)."""
    arrivals = audio_arrivals()
    stream = rtc.AudioStream(track, sample_rate=sample_rate, num_channels=channels)
    handle = stream._ffi_handle.handle
    arrivals.claim(handle)
    try:
        seq = 0
        async for ev in stream:
            rec.push_audio(ev.frame, arrived_us=arrivals.take(handle, seq))
            seq += 1
    finally:
        await _close_stream(stream)
        arrivals.release(handle)  # after the close: no stamp of this stream is left behind


async def _close_stream(stream: rtc.VideoStream | rtc.AudioStream) -> None:
    # A consumer waiting in `async for` is never woken by aclose (livekit 1.1.x):
    # we get here by cancelling the consumer, and bound the wait for the SDK.
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(stream.aclose(), _STREAM_CLOSE_TIMEOUT)


class DelayProbe:
    """Reads one recording's audio and video inbound stats and passes the receive
    delays (and the frames the receiver dropped) down to the recording."""

    def __init__(self, rec: ParticipantRecording) -> None:
        self.rec = rec
        self._last: dict[str, BufferStats] = {}  # track sid → previous snapshot

    async def read(self, audio: rtc.Track, video: rtc.Track) -> None:
        delays = {}
        for kind, track in (("audio", audio), ("video", video)):
            inbound = await _inbound(track)
            if inbound is None:
                continue
            now = BufferStats(
                inbound.jitter_buffer_delay,
                inbound.jitter_buffer_emitted_count,
                inbound.total_decode_time,
                inbound.frames_decoded,
            )
            before = self._last.get(track.sid, BufferStats(0.0, 0))
            self._last[track.sid] = now
            delays[kind] = average_delay_us(before, now, video=kind == "video")
            if kind == "video":
                self.rec.stats.count_drop("receiver_dropped", inbound.frames_dropped)
        # Sent even when unknown: video frames wait for the reading's time (latency.py).
        self.rec.set_receive_delays(delays.get("audio"), delays.get("video"))


async def _inbound(track: rtc.Track) -> Any:
    """The track's inbound-rtp stats, or None (no stats yet, or the track is gone)."""
    try:
        reports = await track.get_stats()
    except Exception:  # the track went away between two readings
        return None
    for report in reports:
        if report.HasField("inbound_rtp"):
            return report.inbound_rtp.inbound
    return None
