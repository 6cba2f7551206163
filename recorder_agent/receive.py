"""What the SDK hands over per subscribed track: frames, with nothing dropped unseen,
and how long each stream waited inside the receiver.

Why, measured with livekit 1.1.21:

* The SDK's native video queue defaults to **one** frame (``queue_size_frames`` unset
  means "latest only"), and ``VideoStream(capacity=n)`` adds a Python ring that drops
  its oldest frame when full. A browser run logged ``native video stream queue
  overflow`` in 7 of 11 runs while our manifest said nothing was dropped. The native
  queue is unbounded here, and never fills: each frame goes on into its recording's
  bounded inbox as the SDK hands it over, and the inbox counts every frame it drops.
* Video's ``timestamp_us`` is libwebrtc's render time, audio's clock is NetEq's
  playout: each carries its own receive delay (see recording/latency.py). The delays
  are read from the inbound-rtp stats, four times a second, for each recording that
  has both audio and video. The stats' ``estimated_playout_timestamp`` (the sender's
  NTP time of what plays now, which would give the exact relation) is 0 for both
  kinds in this SDK: measured over 76 readings of a browser publisher.
* Audio frames carry no time, so each is stamped when the SDK hands it over: in the
  FFI's callback, on the SDK's thread, not when the event loop gets to it. A job
  process starved beside a CPU hog ran its event loop seconds behind; stamped there,
  its backlog looked like a gap, got silence, and was then trimmed as early (3.1-6.3 s
  of 17-19 s in every room of one burst).
* The SDK hands audio over in ``AUDIO_FRAME_MS`` frames, which its native stream joins
  from libwebrtc's 10 ms ones, not in those 10 ms frames: every frame is one FFI event
  (a protobuf message, a ctypes call under the GIL, a handle to release) and one inbox
  message. Five rooms of two voices (per-thread CPU over 12 s, alternated twice): the
  worker tree 0.046 cores per participant with 10 ms frames, 0.031 with 100 ms beside
  the Python SDK's publishers; 0.024-0.027 and 0.018-0.021 beside cheap ones. The SDK's
  tokio threads, which run the callback, went from 0.030 to 0.011 per room. The cost:
  when a track ends, the SDK drops the part of a frame it has not filled, up to 90 ms
  of its last audio.
* Frames go from that callback straight into the recording (``AudioFeed``,
  ``VideoFeed``). Through ``rtc.AudioStream`` every 10 ms frame woke the event loop
  once per audio stream of the process (each stream's subscriber sees every audio
  event, so N streams cost N² wake-ups). A job process recording two voices spent
  0.135 cores in its Python threads that way, 0.077 without the loop (per-thread CPU
  over 15 s, 5 such rooms). Video through ``rtc.VideoStream`` waited for the loop
  too: a loop more than ``gap_fill_delay`` behind had its file repeat the last picture,
  and the real frames that came after it were then refused as late.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from livekit import rtc
from livekit.rtc._ffi_client import FfiClient, FfiHandle
from livekit.rtc._proto import audio_frame_pb2, ffi_pb2, video_frame_pb2

from .log import logger as log
from .recording import ParticipantRecording
from .recording.latency import BufferStats, average_delay_us

AUDIO_FRAME_MS = 100  # audio handed over per FFI event (the SDK joins its 10 ms frames)
STATS_TICK_S = 0.25  # a reading per recording with video, four times a second


class Feed:
    """One SDK native stream whose frames go into a recording from the SDK's callback
    thread, through the process's one ``_Router``: no event-loop hop, no per-stream
    subscriber on the FFI queue. ``cancel`` stops it at once."""

    def __init__(self, request: ffi_pb2.FfiRequest, rec: ParticipantRecording) -> None:
        self._rec = rec
        self._failed = False
        self._router = _frame_router()
        with self._router.lock:  # no frame of the new stream is seen before it is ours
            response = FfiClient.instance.request(request)
            stream = getattr(response, request.WhichOneof("message")).stream
            self._handle = FfiHandle(stream.handle.id)
            self._router.feeds[self._handle.handle] = self

    def take(self, received: Any) -> None:
        """One ``frame_received`` of this stream, in the SDK's callback: into the
        recording, or counted (and logged once per stream) if it cannot be read."""
        try:
            self.push(received)
        except Exception:
            self._rec.stats.count_drop("unreadable_frame")
            if not self._failed:
                self._failed = True
                log.exception("stream %d: a frame could not be read", self._handle.handle)

    def push(self, received: Any) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop: no frame reaches the recording after this returns."""
        self._router.drop(self._handle.handle)
        self._handle.dispose()


class AudioFeed(Feed):
    """An audio track's frames, ``AUDIO_FRAME_MS`` each, stamped as they are handed over."""

    def __init__(
        self, track: rtc.Track, rec: ParticipantRecording, sample_rate: int, channels: int
    ) -> None:
        req = ffi_pb2.FfiRequest()
        new = req.new_audio_stream
        new.track_handle = track._ffi_handle.handle
        new.sample_rate = sample_rate
        new.num_channels = channels
        new.queue_size_frames = 0
        new.frame_size_ms = AUDIO_FRAME_MS
        new.type = audio_frame_pb2.AudioStreamType.AUDIO_STREAM_NATIVE
        super().__init__(req, rec)

    def push(self, received: Any) -> None:
        self._rec.push_audio(rtc.AudioFrame._from_owned_info(received.frame))  # stamped now


class VideoFeed(Feed):
    """A video track's decoded frames, each with its render time, all of them: the
    native queue is unbounded (the SDK's default keeps one frame and drops the rest
    with a log line only), and the callback moves each frame on as it comes."""

    def __init__(self, track: rtc.Track, rec: ParticipantRecording) -> None:
        req = ffi_pb2.FfiRequest()
        new = req.new_video_stream
        new.track_handle = track._ffi_handle.handle
        new.type = video_frame_pb2.VideoStreamType.VIDEO_STREAM_NATIVE
        new.normalize_stride = True
        new.queue_size_frames = 0
        super().__init__(req, rec)

    def push(self, received: Any) -> None:
        frame = rtc.VideoFrame._from_owned_info(received.buffer)
        self._rec.push_video(frame, received.timestamp_us, received.rotation)


class _Router:
    """The FFI queue's filter for every ``Feed`` of the process, run in the SDK's
    callback. Events of streams that are not ours (an agent's own ``rtc.AudioStream``
    or ``rtc.VideoStream``) are left to their subscribers; frames that come for a
    stream after its feed was cancelled are released, until its end-of-stream."""

    CLOSING_KEPT = 1024  # cancelled streams whose end-of-stream has not come yet

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.feeds: dict[int, Feed] = {}
        self._closing: dict[int, None] = {}  # insertion-ordered set
        # Bound to the creator's loop, which never sees an item: the filter queues none.
        FfiClient.instance.queue.subscribe(asyncio.get_running_loop(), filter_fn=self._route)

    def drop(self, handle: int) -> None:
        with self.lock:
            if self.feeds.pop(handle, None) is not None:
                self._closing[handle] = None
                if len(self._closing) > self.CLOSING_KEPT:
                    del self._closing[next(iter(self._closing))]

    def _route(self, event: Any) -> bool:
        """The queue's filter: handle our streams' events, and never queue anything.
        Under the lock, so that ``drop`` waits for a frame being pushed."""
        which = event.WhichOneof("message")
        owned = _OWNED.get(which)
        if owned is None:
            return False
        ev = getattr(event, which)
        handle = ev.stream_handle
        try:
            with self.lock:
                feed = self.feeds.get(handle)
                if ev.HasField("frame_received"):
                    if feed is not None:
                        feed.take(ev.frame_received)
                    elif handle in self._closing:
                        FfiHandle(getattr(ev.frame_received, owned).handle.id).dispose()
                elif ev.HasField("eos"):
                    self.feeds.pop(handle, None)
                    self._closing.pop(handle, None)
        except Exception:  # never into the SDK's thread; the queue would deliver it
            log.exception("frame of stream %d not recorded", handle)
        return False


# The field of a frame_received that owns the SDK's buffer, by event kind.
_OWNED = {"audio_stream_event": "frame", "video_stream_event": "buffer"}
_router: _Router | None = None
_router_lock = threading.Lock()


def _frame_router() -> _Router:
    """The process's one router (jobs may run as threads of one process)."""
    global _router
    with _router_lock:
        if _router is None:
            _router = _Router()
        return _router


class DelayProbe:
    """Reads one recording's audio and video inbound stats and passes the receive
    delays (and the frames the receiver dropped) down to the recording.

    ``counted`` (track sid → frames dropped already counted) is the room's, shared by
    the probes of successive recordings: a recording counts the receiver's drops from
    its own start, on every video track it has had."""

    def __init__(self, rec: ParticipantRecording, counted: dict[str, int]) -> None:
        self.rec = rec
        self._last: dict[str, BufferStats] = {}  # track sid → previous snapshot
        self._counted = counted
        self._dropped = 0

    async def read(self, audio: rtc.Track | None, video: rtc.Track) -> None:
        """One reading; without an audio track, only the drops are counted."""
        delays = {}
        for kind, track in (("audio", audio), ("video", video)):
            if track is None:
                continue
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
                self.count_drops(track.sid, inbound.frames_dropped)
        # Sent even when unknown: video frames wait for the reading's time (latency.py).
        if audio is not None:
            self.rec.set_receive_delays(delays.get("audio"), delays.get("video"))

    def count_drops(self, sid: str, total: int) -> None:
        """The track's lifetime count, less what was counted before (a resubscribed
        track's count starts again from 0)."""
        before = self._counted.get(sid, 0)
        self._counted[sid] = total
        new = total - before if total >= before else total
        if new > 0:
            self._dropped += new
            self.rec.stats.count_drop("receiver_dropped", self._dropped)


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
