"""One participant's recording: frames in, a growing MPEG-TS file and its manifest out.

The producer (the room's asyncio loop) only appends to bounded queues. A worker thread
owned by the session does everything else, in order: validate and convert frames, place
them on the timeline, encode, mux and write. A failure in one session never reaches
another: each has its own thread, encoders, muxer and file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import av
import numpy as np
from livekit import rtc

from .canvas import CanvasFitter, Size, choose_canvas
from .config import RecorderConfig
from .encoders import AudioEncoder, VideoEncoder, start_offset, video_settings
from .frames import AudioConverter, BadFrame, audio_samples, video_to_av
from .manifest import Manifest, utc_iso
from .muxer import TsMuxer
from .naming import claim_recording_path
from .sink import FileSink, SegmentSink, SinkError
from .timeline import VIDEO_CLOCK, AudioTimeline, VideoTimeline
from .upload import UploadQueue

log = logging.getLogger("recorder_agent")

_IDLE_TICK = 0.1  # seconds the worker waits for input before it checks the clocks
_GAP_EVENT_US = 500_000  # gaps at least this long become manifest events


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread (and the encoder threads it starts, which inherit it)
    yield to the SDK's real-time threads. Under CPU load WebRTC's 10 ms audio pump
    otherwise falls behind and audio reaches us ~40 ms late against video (measured)."""
    if nice and sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def monotonic_us() -> int:
    """The clock of LiveKit's ``VideoFrameEvent.timestamp_us`` (CLOCK_MONOTONIC)."""
    return time.monotonic_ns() // 1000


@dataclass(frozen=True)
class RecordingInfo:
    """Who is recorded. All strings are untrusted; they are sanitized for paths."""

    room: str
    identity: str
    participant_sid: str = ""
    name: str = ""
    kind: str = ""
    label: str = ""  # appended to the file name, e.g. "screen"

    @property
    def stem(self) -> str:
        return f"{self.identity}-{self.label}" if self.label else self.identity


class RecordingState(StrEnum):
    RECORDING = "recording"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass
class RecordingStats:
    """Counters of one recording; read them from any thread via ``snapshot()``."""

    video_frames_in: int = 0
    audio_frames_in: int = 0
    video_frames_encoded: int = 0
    video_frames_repeated: int = 0
    audio_seconds: float = 0.0
    silence_seconds: float = 0.0
    media_seconds: float = 0.0
    bytes_written: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        out = asdict(self)
        out["dropped"] = dict(self.dropped)
        return out


class _Video:
    __slots__ = ("frame", "pushed", "rotation", "ts")

    def __init__(self, frame: rtc.VideoFrame, ts: int, rotation: int, pushed: int) -> None:
        self.frame, self.ts, self.rotation, self.pushed = frame, ts, rotation, pushed


class _Audio:
    __slots__ = ("frame", "pushed", "start")

    def __init__(self, frame: rtc.AudioFrame, start: int, pushed: int) -> None:
        self.frame, self.start, self.pushed = frame, start, pushed


class _Control:
    __slots__ = ("args", "kind", "pushed")

    def __init__(self, kind: str, *args: Any) -> None:
        self.kind, self.args, self.pushed = kind, args, monotonic_us()


class _Inbox:
    """Bounded queues between producer and worker, taken in arrival order.

    A full video queue drops its oldest frame; audio is kept longer and dropped only
    when its own, larger queue is full. Control items are never dropped.
    """

    def __init__(self, video_max: int, audio_max: int) -> None:
        self._cond = threading.Condition()
        self._queues: dict[str, deque[tuple[int, Any]]] = {
            "video": deque(),
            "audio": deque(),
            "control": deque(),
        }
        self._limits = {"video": video_max, "audio": audio_max, "control": 0}
        self._seq = 0
        self.dropped = {"video": 0, "audio": 0}

    def put(self, lane: str, item: Any) -> None:
        with self._cond:
            queue = self._queues[lane]
            if self._limits[lane] and len(queue) >= self._limits[lane]:
                queue.popleft()
                self.dropped[lane] += 1
            self._seq += 1
            queue.append((self._seq, item))
            self._cond.notify()

    def get(self, timeout: float) -> Any | None:
        with self._cond:
            heads = [q for q in self._queues.values() if q]
            if not heads:
                self._cond.wait(timeout)
                heads = [q for q in self._queues.values() if q]
                if not heads:
                    return None
            return min(heads, key=lambda q: q[0][0]).popleft()[1]

    def depth(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def oldest_pushed(self) -> int | None:
        """When the oldest waiting item was pushed (µs, monotonic), if any waits."""
        with self._cond:
            heads = [q[0][1].pushed for q in self._queues.values() if q]
        return min(heads, default=None)


class ParticipantRecording:
    """Records one participant (or one source of theirs) into one MPEG-TS file.

    Push frames from any thread or the event loop; nothing here blocks on encoding or
    disk. Timestamps are µs on ``time.monotonic``'s clock, as LiveKit gives them.

    >>> rec = ParticipantRecording(RecorderConfig.from_env(), RecordingInfo("room", "alice"))
    >>> async for ev in rtc.VideoStream(track):
    ...     rec.push_video(ev.frame, ev.timestamp_us, ev.rotation)
    >>> rec.push_audio(audio_frame)          # stamped on arrival
    >>> await rec.aclose("participant_left")
    >>> rec.path                             # recordings/room/alice-20261123T204912.123Z.ts
    """

    def __init__(self, config: RecorderConfig, info: RecordingInfo) -> None:
        self.config = config
        self.info = info
        self.stats = RecordingStats()
        self.state = RecordingState.RECORDING
        self.error: str | None = None
        self.path = None  # set by the worker once the file exists
        self.manifest_path = None
        self._created = datetime.now(UTC)
        self._uploads: UploadQueue | None = None
        self._inbox = _Inbox(config.video_queue_frames, config.audio_queue_frames)
        self._done = threading.Event()
        self._bad_input_seen: dict[str, int] = {}
        self._init_worker_state()
        self._thread = threading.Thread(
            target=self._run, name=f"recording:{info.stem[:32]}", daemon=True
        )
        self._thread.start()

    # ----- producer side: never blocks -------------------------------------------------

    def push_video(self, frame: rtc.VideoFrame, timestamp_us: int, rotation: int = 0) -> None:
        """Queue a video frame. The session owns ``frame`` from now on."""
        if self._accepting("video"):
            self.stats.video_frames_in += 1
            self._inbox.put("video", _Video(frame, timestamp_us, rotation, monotonic_us()))

    def push_audio(self, frame: rtc.AudioFrame, timestamp_us: int | None = None) -> None:
        """Queue an audio frame. ``timestamp_us`` is when its first sample was heard;
        by default the frame is taken as having just arrived (now minus its length)."""
        if self._accepting("audio"):
            now = monotonic_us()
            if timestamp_us is None:
                rate = frame.sample_rate or 1
                timestamp_us = now - frame.samples_per_channel * 1_000_000 // rate
            self.stats.audio_frames_in += 1
            self._inbox.put("audio", _Audio(frame, timestamp_us, now))

    def add_track(self, sid: str, kind: str, source: str, width: int = 0, height: int = 0) -> None:
        """Note a track that feeds this recording, for the manifest. A video track's
        published size, when given, sizes the canvas: WebRTC often starts a stream at a
        lower resolution than the publisher's and ramps up."""
        self._inbox.put("control", _Control("track", sid, kind, source, width, height))

    def add_event(self, kind: str, **details: Any) -> None:
        """Record an event (mute, unmute, …) in the manifest at the current media time."""
        self._inbox.put("control", _Control("event", kind, details))

    def close(self, reason: str = "closed") -> None:
        """Ask the worker to finish: drain the queue, flush, finalize. Returns at once."""
        self._inbox.put("control", _Control("close", reason))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the recording is finalized (for threads; use ``aclose`` in async)."""
        return self._done.wait(timeout)

    async def aclose(self, reason: str = "closed", timeout: float | None = None) -> bool:
        """Close and wait for finalization without blocking the event loop (or a thread
        of its executor: many recordings may close at once)."""
        self.close(reason)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if deadline is not None and time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def drain(self, timeout: float | None = None) -> bool:
        """Block until everything pushed so far is encoded and written. For offline
        feeding (tests, benchmarks, file conversion), never from the event loop.
        Returns False on timeout; True at once when the recording has ended."""
        reached = threading.Event()
        self._inbox.put("control", _Control("drain", reached))
        deadline = None if timeout is None else time.monotonic() + timeout
        while not reached.wait(0.05):
            if not self._thread.is_alive():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    @property
    def queue_depth(self) -> int:
        return self._inbox.depth()

    @property
    def lag_seconds(self) -> float:
        """How long the oldest waiting frame has waited for the worker (0: none waits)."""
        oldest = self._inbox.oldest_pushed()
        return 0.0 if oldest is None else max(0.0, (monotonic_us() - oldest) / 1e6)

    def _accepting(self, lane: str) -> bool:
        if self.state is RecordingState.RECORDING:
            return True
        self._count_drop(f"{lane}_after_{self.state.value}")
        return False

    # ----- worker side ------------------------------------------------------------------

    def _run(self) -> None:
        lower_thread_priority(self.config.encoder_nice)
        reason: str | None = None
        try:
            self._start()
            reason = self._loop()
        except OSError as e:  # disk full, permissions, … (SinkError included)
            self._fail(str(e))
        except Exception as e:  # a bug: keep what is written, say so, stop this one only
            log.exception("recording %s crashed", self.path or self.info.stem)
            self._fail(f"internal error: {e!r}")
        finally:
            self._finish(reason or "error")
        if reason is None:
            self._discard_until_close()

    def _init_worker_state(self) -> None:
        """State owned by the worker thread (set here so that every field always exists)."""
        self._sink: FileSink | SegmentSink | None = None
        self._pts0_utc: float | None = None  # wall time (epoch s) of the file's pts 0
        self._manifest: Manifest | None = None
        self._manifest_written = 0.0
        self._muxer: TsMuxer | None = None
        self._video: VideoEncoder | None = None
        self._audio: AudioEncoder | None = None
        self._fitter: CanvasFitter | None = None
        self._vtl: VideoTimeline | None = None
        self._atl: AudioTimeline | None = None
        self._fill_delay = int(self.config.gap_fill_delay * 1e6)
        self._origin: int | None = None
        self._latest_media = 0  # newest media instant seen (µs)
        self._frame_us = 1_000_000 // self.config.nominal_fps
        # The file covers at least this instant (µs): one frame past the origin, or past
        # the last real video frame, so no declared stream ends without a packet.
        self._min_end = 0
        self._origin_pushed = 0  # when the producer pushed the first frame (µs, monotonic)
        self._pending_audio: list[_Audio] = []  # audio waiting for the canvas decision
        # One audio frame of lookahead: its successor tells a gap from a late burst.
        self._held: tuple[_Audio, list[np.ndarray]] | None = None
        self._converter = AudioConverter(self.config.audio_sample_rate, self.config.audio_channels)
        self._last_picture: av.VideoFrame | None = None
        self._size_hint: Size | None = None  # published size of the video track
        self._silence_run = 0  # samples of silence since the last real audio
        self._video_stopped: int | None = None  # pts of the last real frame before repeats

    def _start(self) -> None:
        cfg = self.config
        self._uploads = UploadQueue(cfg.output_dir) if cfg.upload_url else None
        hls = cfg.output_format == "hls"
        claimed = claim_recording_path(
            cfg.output_dir, self.info.room, self.info.stem, self._created, "" if hls else ".ts"
        )
        self.manifest_path = claimed.with_name((claimed.name if hls else claimed.stem) + ".json")
        if hls:
            self._sink = SegmentSink(
                claimed,
                cfg.segment_seconds,
                cfg.fsync_interval,
                origin_utc=lambda: self._pts0_utc,
                on_closed=self._announce,
            )
            self.path = self._sink.path
        else:
            self._sink = FileSink(claimed, cfg.fsync_interval)
            self.path = claimed
        self._manifest = Manifest(
            self.manifest_path,
            cfg.max_manifest_events,
            room=self.info.room,
            participant={
                "identity": self.info.identity,
                "sid": self.info.participant_sid,
                "name": self.info.name,
                "kind": self.info.kind,
            },
            label=self.info.label,
            file=self.path.relative_to(self.manifest_path.parent).as_posix(),
            created_utc=utc_iso(self._created.timestamp()),
            start_utc=None,
            codecs={
                "container": "mpegts",
                "video": video_settings(cfg),
                "audio": {
                    "codec": "aac",
                    "profile": "LC",
                    "sample_rate": cfg.audio_sample_rate,
                    "channels": cfg.audio_channels,
                    "bitrate": cfg.audio_bitrate,
                },
            },
            canvas=None,
        )
        self._write_manifest()
        self._announce(self.manifest_path, "manifest")
        log.info("recording %s -> %s", self.info.stem, self.path)

    def _loop(self) -> str:
        while True:
            item = self._inbox.get(_IDLE_TICK)
            try:
                if item is None:
                    self._on_idle()
                elif isinstance(item, _Video):
                    self._on_video(item)
                elif isinstance(item, _Audio):
                    self._on_audio(item)
                elif item.kind == "close":
                    return self._close(item)
                else:
                    self._on_control(item)
            except BadFrame as e:
                self._bad_input(e.reason, str(e))
            except (av.FFmpegError, ValueError) as e:
                self._bad_input("encode_error", repr(e))
            self._housekeeping()

    # --- media --------------------------------------------------------------------------

    def _set_origin(self, t: int, pushed: int) -> None:
        if self._origin is not None:
            return
        self._origin = self._latest_media = t
        self._origin_pushed = pushed
        self._min_end = t + self._frame_us
        start_utc = time.time() - (monotonic_us() - t) / 1e6
        self._pts0_utc = start_utc - start_offset(self.config) / VIDEO_CLOCK
        self._manifest.data["start_utc"] = utc_iso(start_utc)

    def _seen(self, media_us: int) -> None:
        if media_us > self._latest_media:
            self._latest_media = media_us
            self.stats.media_seconds = self._media_time_s() or 0.0

    def _on_video(self, item: _Video) -> None:
        frame = video_to_av(item.frame, self.config.max_input_dimension)
        self._set_origin(item.ts, item.pushed)
        if self._muxer is None:
            size = Size(frame.width, frame.height).rotated(item.rotation)
            self._open(size)
        assert self._vtl is not None and self._video is not None and self._fitter is not None
        pts = self._vtl.place(item.ts)
        if pts is None:
            raise BadFrame(
                "timestamp_backwards", f"video timestamp {item.ts} µs not after previous"
            )
        self._seen(item.ts)
        self._min_end = item.ts + self._frame_us
        if self._video_stopped is not None:
            self._gap_event("video_gap", pts - self._video_stopped, pts, VIDEO_CLOCK)
            self._video_stopped = None
        self._fill_audio(item.ts - self._fill_delay)
        picture = self._fitter.fit(frame, item.rotation)
        self._last_picture = picture
        self._video.submit(picture, pts)
        self.stats.video_frames_encoded += 1

    def _on_audio(self, item: _Audio) -> None:
        rate, samples = audio_samples(item.frame)
        self._set_origin(item.start, item.pushed)
        if self._muxer is None:
            self._pending_audio.append(item)
            waited = item.start - self._origin >= self.config.layout_wait * 1e6
            if self.config.canvas_width or waited:
                self._open(None)
            return
        if self._converter.key not in (None, (rate, samples.shape[0])):
            self._event("audio_format_change", sample_rate=rate, channels=samples.shape[0])
        converted = self._converter.convert(rate, samples)
        self._release_held(next_start=item.start)
        self._held = (item, converted)

    def _release_held(self, next_start: int | None) -> None:
        if self._held is None:
            return
        item, samples = self._held
        self._held = None
        assert self._atl is not None and self._audio is not None
        if not samples:
            return
        block = np.concatenate(samples, axis=1) if len(samples) > 1 else samples[0]
        placed = self._atl.place(item.start, block.shape[1], next_start)
        block = block[:, placed.trim :]
        if placed.trim:
            self._bad_input("audio_overlap_trimmed", f"{placed.trim} samples")
        self._write_silence(placed.silence)
        self._gap_event(
            "audio_gap",
            self._silence_run,
            self._atl.next_sample - block.shape[1],
            self._audio.rate,
        )
        self._silence_run = 0
        end = item.start + block.shape[1] * 1_000_000 // self._audio.rate
        self._seen(end)
        self.stats.audio_seconds += block.shape[1] / self._audio.rate
        if block.shape[1]:
            self._write(self._audio.write(block))
            self._fill_video(end - self._fill_delay)

    def _open(self, first: Size | None) -> None:
        """Decide the canvas, declare both streams, and replay audio that waited."""
        cfg = self.config
        size = self._size_hint or first
        if (
            size is not None
            and first is not None
            and (size.width > size.height) != (first.width > first.height)
        ):
            size = Size(size.height, size.width)  # the published size, oriented as shown
        if cfg.canvas_width:
            canvas = Size(cfg.canvas_width, cfg.canvas_height)
        elif size is not None:
            canvas = choose_canvas(size, cfg.canvas_max_long, cfg.canvas_max_short)
        else:
            canvas = Size(cfg.fallback_width, cfg.fallback_height)
        assert self._origin is not None
        self._muxer = TsMuxer(self._sink)
        keyframe_every = int(cfg.segment_seconds * VIDEO_CLOCK) if cfg.output_format == "hls" else 0
        self._video = VideoEncoder(self._muxer, cfg, canvas, keyframe_every)
        self._audio = AudioEncoder(self._muxer, cfg)
        self._fitter = CanvasFitter(canvas)
        self._vtl = VideoTimeline(self._origin, int(cfg.video_fill_interval * 1e6))
        self._atl = AudioTimeline(cfg.audio_sample_rate, self._origin)
        self._manifest.data["canvas"] = {"width": canvas.width, "height": canvas.height}
        self._event("started", canvas=f"{canvas.width}x{canvas.height}")
        pending, self._pending_audio = self._pending_audio, []
        for item in pending:
            self._on_audio(item)

    def _fill_audio(self, until: int) -> None:
        """Silence up to ``until`` when no audio is flowing."""
        if self._atl is None:
            return
        if self._held is not None:
            if self._held[0].start >= until:
                return  # audio is flowing
            self._release_held(next_start=None)
        self._write_silence(self._atl.silence_until(until))

    def _write_silence(self, count: int) -> None:
        if count:
            assert self._audio is not None
            self._silence_run += count
            self.stats.silence_seconds += count / self._audio.rate
            self._write(self._audio.write_silence(count))

    def _fill_video(self, until: int) -> None:
        """Repeat the last picture (black before the first) while video has stopped."""
        if self._vtl is None or self._video is None or self._fitter is None:
            return
        last = self._vtl.last_pts
        for pts in self._vtl.repeats_until(until):
            if self._video_stopped is None:
                self._video_stopped = last if last is not None else 0
            picture = self._last_picture or self._fitter.black()
            self._video.submit(picture, pts)
            self.stats.video_frames_repeated += 1

    def _media_now(self, at_pushed: int) -> int:
        """Where the media clock is at the real instant ``at_pushed``: the wall time
        elapsed since the first frame, or the newest media if input ran ahead of it
        (offline feeding)."""
        assert self._origin is not None
        return max(self._latest_media, self._origin + at_pushed - self._origin_pushed)

    def _on_idle(self) -> None:
        if self._origin is None:
            return
        now = self._media_now(monotonic_us())
        if self._muxer is None and now - self._origin >= self.config.layout_wait * 1e6:
            self._open(None)
        self._release_held(next_start=None)
        self._fill_audio(now - self._fill_delay)
        self._fill_video(now - self._fill_delay)

    def _write(self, packets: Iterable[av.Packet]) -> None:
        assert self._muxer is not None
        self._muxer.write(packets)
        self.stats.bytes_written = self._sink.bytes_written

    # --- control, events, bookkeeping --------------------------------------------------

    def _on_control(self, item: _Control) -> None:
        if item.kind == "event":
            kind, details = item.args
            self._event(kind, **details)
        elif item.kind == "track":
            sid, kind, source, width, height = item.args
            track = {"sid": sid, "kind": kind, "source": source}
            if width > 0 and height > 0:
                track.update(width=width, height=height)
                self._size_hint = Size(width, height)
            self._manifest.data["tracks"].append(track)
            self._write_manifest()
        elif item.kind == "drain":
            if self._video is not None:
                self._video.sync()
            item.args[0].set()

    def _media_time_s(self) -> float | None:
        if self._origin is None:
            return None
        return round((self._latest_media - self._origin) / 1e6, 3)

    def _event(self, kind: str, **details: Any) -> None:
        self._manifest.event(kind, self._media_time_s(), **details)
        self._write_manifest()

    def _gap_event(self, kind: str, length: int, end: int, rate: int) -> None:
        """A hole of ``length`` units (of ``rate`` per second) ending at ``end`` was filled."""
        if length * 1_000_000 >= _GAP_EVENT_US * rate:
            self._event(
                kind, start_s=round((end - length) / rate, 3), duration_s=round(length / rate, 3)
            )

    def _bad_input(self, reason: str, detail: str) -> None:
        """Count a dropped or repaired input; log it at 1, 10, 100, … occurrences."""
        self._count_drop(reason)
        n = self._bad_input_seen[reason] = self._bad_input_seen.get(reason, 0) + 1
        if str(n).rstrip("0") == "1":
            log.warning("recording %s: %s (%d so far): %s", self.info.stem, reason, n, detail)
            self._event("bad_input", reason=reason, count=n, detail=detail[:200])

    def _count_drop(self, reason: str) -> None:
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1

    def _housekeeping(self) -> None:
        assert self._sink is not None
        if self._muxer is None:
            self._sink.maybe_fsync()
        else:
            self._muxer.maybe_fsync()
        if self._video is not None:
            while self._video.rejected:
                self._bad_input("encode_error", self._video.rejected.pop(0))
        if time.monotonic() - self._manifest_written >= self.config.manifest_interval:
            self._write_manifest()

    def _write_manifest(self) -> None:
        assert self._manifest is not None
        self._sync_stats()
        self._manifest.data["counters"] = self.stats.snapshot()
        self._manifest.data["state"] = self.state.value
        try:
            self._manifest.write()
        except OSError as e:
            self._bad_input("manifest_write_failed", str(e))
        self._manifest_written = time.monotonic()

    def _sync_stats(self) -> None:
        for lane, n in self._inbox.dropped.items():
            if n:
                self.stats.dropped[f"{lane}_queue_full"] = n
        if self._sink is not None:
            self.stats.bytes_written = self._sink.bytes_written

    # --- the end ------------------------------------------------------------------------

    def _close(self, item: _Control) -> str:
        (reason,) = item.args
        if self._origin is not None:
            end = max(self._media_now(item.pushed), self._min_end)
            if self._muxer is None:
                self._open(None)
            self._release_held(next_start=None)
            self._fill_audio(end)
            self._fill_video(end)
            self._seen(end)
        return reason

    def _finish(self, reason: str) -> None:
        """Flush encoders and muxer, close the file, write the final manifest."""
        if self._sink is None or self._manifest is None:
            self._done.set()
            return
        try:
            if self._muxer is not None and self.state is RecordingState.RECORDING:
                assert self._video is not None and self._audio is not None
                self._video.flush()
                self._write(self._audio.flush())
                self._muxer.close()
        except (SinkError, av.FFmpegError) as e:
            self._fail(f"finalize failed: {e}")
        finally:
            if self._video is not None:
                self._video.stop()  # after a failure: the thread must not outlive us
        try:
            self._sink.close()
        except OSError as e:
            self._fail(f"close failed: {e}")
        if self.state is RecordingState.RECORDING:
            self.state = RecordingState.FINISHED
        if self._sink.bytes_written == 0 and self.path is not None:
            # No media ever arrived: no empty .ts (or an empty HLS folder).
            if isinstance(self._sink, SegmentSink):
                shutil.rmtree(self._sink.folder, ignore_errors=True)
            else:
                self.path.unlink(missing_ok=True)
            self._manifest.data["file"] = None
        elif isinstance(self._sink, FileSink):
            self._announce(self.path, "recording")
        if isinstance(self._sink, SegmentSink):
            self._manifest.data["segments"] = len(self._sink.segments)
        self._manifest.data["end_reason"] = reason if self.error is None else f"error: {self.error}"
        self._manifest.data["ended_utc"] = utc_iso(time.time())
        self._write_manifest()
        self._announce(self.manifest_path, "manifest")
        self._done.set()
        log.info(
            "recording %s finished (%s): %.1f s, %d bytes",
            self.info.stem,
            self._manifest.data["end_reason"],
            self.stats.media_seconds,
            self.stats.bytes_written,
        )

    def _announce(self, path: Path, kind: str) -> None:
        """A file is complete (for now): queue it for upload, if uploading."""
        if self._uploads is None:
            return
        try:
            self._uploads.enqueue(path, kind)
            if kind == "playlist" and self.manifest_path is not None:
                self._uploads.enqueue(self.manifest_path, "manifest")  # live counters
        except OSError as e:  # may run on the encoder thread: log only
            log.error("recording %s: cannot queue %s for upload: %s", self.info.stem, path.name, e)

    def _fail(self, message: str) -> None:
        if self.state is not RecordingState.FAILED:
            log.error("recording %s failed: %s", self.path or self.info.stem, message)
        self.state = RecordingState.FAILED
        self.error = self.error or message

    def _discard_until_close(self) -> None:
        """After a failure: answer drains and the close, drop everything else."""
        self._done.set()
        while True:
            item = self._inbox.get(_IDLE_TICK)
            if isinstance(item, _Control) and item.kind == "drain":
                item.args[0].set()
            elif isinstance(item, _Control) and item.kind == "close":
                return
