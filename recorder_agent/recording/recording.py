"""One participant's recording: frames in, a growing MPEG-TS file and its manifest out.

The producer (the room's asyncio loop) only appends to a bounded inbox. A thread owned
by the recording does everything else, in order: take a message, let the timing
policy (sync.py) say where it goes, hand the steps to the encode stage, write the
manifest. A failure in one recording never reaches another: each has its own thread,
encoders, muxer and file.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RecorderConfig
from ..encode.canvas import Size, decide_canvas
from ..encode.encoders import start_offset
from ..encode.frames import audio_samples, video_to_av
from ..encode.media import MediaEncoder
from ..log import logger as log
from ..output import Output, open_output
from ..util import (
    VIDEO_CLOCK,
    BadFrame,
    lower_thread_priority,
    machine_cpu,
    monotonic_us,
    utc_iso,
)
from . import inbox as msg
from . import sync as step
from .info import RateMeter, RecordingInfo, RecordingState, RecordingStats, RecordingStatus
from .latency import FIRST_HOLD_US, MAX_HOLD_US, DelayLine
from .ledger import Ledger
from .quality import Change, Governor, Thinner, ladder
from .sync import AvSync, Origin, Step

if TYPE_CHECKING:
    from livekit import rtc


_IDLE_TICK = 0.1  # seconds the thread waits for input before it checks the clocks
_ADAPT_EVERY = 0.1  # seconds between two readings for the quality governor


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
        self.path: Path | None = None  # set by the thread once the file exists
        self.manifest_path: Path | None = None
        self._created = datetime.now(UTC)
        self._fps = RateMeter()  # real video frames per second, between two status()
        self._inbox = msg.Inbox(config.video_queue_frames, config.audio_queue_seconds)
        self._done = msg.Finished()
        # Owned by the thread from here on.
        self._output: Output | None = None
        self._ledger: Ledger | None = None
        self._origin: Origin | None = None
        self._start_utc = 0.0  # wall time (epoch s) of media time 0, set with the origin
        self._pts0_utc = 0.0  # and of the file's pts 0
        self._sync: AvSync | None = None  # with the encoders, once the canvas is decided
        self._media: MediaEncoder | None = None
        self._pending_audio: list[msg.AudioIn] = []  # audio waiting for the canvas decision
        self._live_audio: set[str] = set()  # subscribed audio tracks: their audio never pauses
        # Video waits for the receive-delay reading that covers it (latency.py), never
        # past the fill delay: a repeated picture must not overtake a waiting frame.
        hold = min(MAX_HOLD_US, int(config.gap_fill_delay * 0.8e6))
        self._line: DelayLine[msg.VideoIn] = DelayLine(hold, FIRST_HOLD_US)
        # Graceful overload (quality.py), once the encoders run with video.
        self._governor: Governor | None = None
        self._thinner = Thinner(config.nominal_fps)  # or a lowered level's rate
        self._behind_s = 0.0  # worst since the governor's last reading
        self._lateness_min = 0  # least (taken - media time) so far, µs: see _note_lateness
        self._busy_mark = (0.0, 0.0)  # (monotonic s, encoder busy s) at the last reading
        self._adapt_at = 0.0
        self._published: Size | None = None  # published size of the video track
        # A file whose announced tracks (add_track) are all audio at layout_wait is
        # audio-only; a video track announced before that decision keeps the video
        # stream. The lock makes the two exclusive: see want_video().
        self._video_lock = threading.Lock()
        # A SIP participant never publishes video (LiveKit's SIP bridge carries audio and
        # DTMF), so its file is decided at the first frame instead of after layout_wait:
        # a worker killed 2 s into a phone call had nothing of it on disk.
        self._layout_wait_us = 0 if info.kind == "sip" else int(config.layout_wait * 1e6)
        self._announced = False
        self._video_wanted = False
        self.audio_only = False
        self._thread = threading.Thread(
            target=self._run, name=f"recording:{info.stem[:32]}", daemon=True
        )
        self._thread.start()

    # ----- producer side: never blocks -------------------------------------------------

    def push_video(self, frame: rtc.VideoFrame, timestamp_us: int, rotation: int = 0) -> None:
        """Queue a video frame. The recording owns ``frame`` from now on; an audio-only
        file counts it as dropped (see ``want_video``)."""
        if not self.want_video():
            self.stats.count_drop("video_in_audio_only_file")
        elif self._accepting("video"):
            self.stats.video_frames_in += 1
            self._inbox.put(msg.VideoIn(frame, timestamp_us, int(rotation)))

    def push_audio(self, frame: rtc.AudioFrame, timestamp_us: int | None = None) -> None:
        """Queue an audio frame, from any thread. ``timestamp_us`` is when its first
        sample was heard; by default, now minus the frame's length."""
        if self._accepting("audio"):
            now = monotonic_us()
            duration = frame.samples_per_channel * 1_000_000 // (frame.sample_rate or 1)
            if timestamp_us is None:
                timestamp_us = now - duration
            self.stats.audio_frames_in += 1
            self._inbox.put(msg.AudioIn(frame, timestamp_us, duration, now))

    def want_video(self) -> bool:
        """Keep a video stream in this file; False once it was decided audio-only (no
        video track by ``layout_wait``): then video needs a new recording."""
        with self._video_lock:
            self._video_wanted = not self.audio_only
            return self._video_wanted

    def add_track(self, sid: str, kind: str, source: str, width: int = 0, height: int = 0) -> bool:
        """Note a track that feeds this recording, for the manifest. A video track's
        published size, when given, sizes the canvas (see canvas.decide_canvas).
        False, and nothing noted, for a video track when the file is audio-only."""
        if kind == "video" and not self.want_video():
            return False
        self._announced = True
        self._inbox.put(msg.TrackAdded(sid, kind, source, width, height))
        return True

    def end_track(self, sid: str, source: str) -> None:
        """A track that fed this recording is gone (a ``track_ended`` event)."""
        self._inbox.put(msg.TrackEnded(sid, source))

    def add_event(self, kind: str, **details: Any) -> None:
        """Record an event (mute, unmute, …) in the manifest at the current media time."""
        self._inbox.put(msg.Note(kind, details))

    def set_receive_delays(self, audio_us: int | None, video_us: int | None) -> None:
        """How long audio and video waited inside the receiver (jitter buffers, decode)
        since the last reading, None where unknown: video is moved by the difference,
        so both keep one clock."""
        self._inbox.put(msg.ReceiveDelays(audio_us, video_us))

    def close(self, reason: str = "closed") -> None:
        """Ask the thread to finish: drain the inbox, flush, finalize. Returns at once."""
        self._inbox.put(msg.Close(reason))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the recording is finalized (for threads; use ``aclose`` in async)."""
        return self._done.wait(timeout)

    async def aclose(self, reason: str = "closed", timeout: float | None = None) -> bool:
        """Close and wait for finalization without blocking the event loop."""
        self.close(reason)
        return await self._done.wait_async(timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Block until everything pushed so far is encoded and written. For offline
        feeding (tests, benchmarks, file conversion), never from the event loop.
        Returns False on timeout; True at once when the recording has ended."""
        reached = threading.Event()
        self._inbox.put(msg.Drain(reached))
        return reached.wait(timeout)

    @property
    def queue_depth(self) -> int:
        return self._inbox.depth()

    def status(self) -> RecordingStatus:
        """This recording's numbers now, from any thread."""
        lag, depth = self._inbox.lag_seconds(), self.queue_depth
        return RecordingStatus.of(
            self.info, self.state, self.stats, self.path, self._fps, lag, depth
        )

    def _accepting(self, lane: str) -> bool:
        if self.state is RecordingState.RECORDING:
            return True
        self.stats.count_drop(f"{lane}_after_{self.state.value}")
        return False

    # ----- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        reason: str | None = None
        try:
            try:
                self._start()
                reason = self._loop()
            except OSError as e:  # disk full, permissions, … (SinkError included)
                self._fail(str(e))
            except Exception as e:  # a bug: keep what is written, say so, stop this one only
                log.exception("recording %s crashed", self.path or self.info.shown)
                self._fail(f"internal error: {e!r}")
            finally:
                self._finish(reason or "error")
            if reason is None:
                self._discard_until_close()
        finally:  # whatever happened: nobody waits for this recording for ever
            self._done.set()
            self._inbox.close()

    def _start(self) -> None:
        self._output = open_output(self.config, self.info.room, self.info.stem, self._created)
        self.path, self.manifest_path = self._output.path, self._output.manifest_path
        self._ledger = Ledger(
            self.config, self.info, self.stats, self._output, self._created, self._inbox.dropped
        )
        self._ledger.write()
        self._ledger.announce([(self.manifest_path, "manifest")])
        self._ledger.notify("recording_started")
        log.info("recording %s -> %s", self.info.shown, self.path)

    def _loop(self) -> str:
        while True:
            item = self._inbox.get(_IDLE_TICK)
            try:
                if self._dispatch(item):
                    assert isinstance(item, msg.Close)
                    return item.reason
            except ValueError as e:
                self._refused(e)
                if isinstance(item, msg.Close):  # the file still ends, with what it has
                    return item.reason
            self._housekeeping()

    def _refused(self, e: ValueError) -> None:
        """BadFrame, or a frame numpy or FFmpeg refused: counted, and the file goes on."""
        detail = str(e) if isinstance(e, BadFrame) else repr(e)
        self._bad_input(getattr(e, "reason", "encode_error"), detail)

    def _dispatch(self, item: msg.Message | None) -> bool:
        """Handle one message (None: a quiet tick); True when it is the close."""
        match item:
            case None:
                self._on_idle()
            case msg.VideoIn():
                self._note_lateness(item.ts, item.pushed)
                self._set_origin(item.ts, item.pushed)  # audio must not start after it
                self._place_video(self._line.push(item.pushed, item.ts, item))
            case msg.AudioIn():
                self._note_lateness(item.start, item.pushed)
                self._on_audio(item)
            case msg.TrackAdded(sid, kind, source, width, height):
                if width > 0 and height > 0:
                    self._published = Size(width, height)
                self._ledger.manifest.add_track(sid, kind, source, width, height)
                self._ledger.write()
                if kind == "audio":
                    self._live_audio.add(sid)
                if {t["kind"] for t in self._ledger.manifest.tracks} >= {"audio", "video"}:
                    self._line.expect_readings()  # the room reads delays for such a pair
            case msg.TrackEnded(sid, source):
                self._live_audio.discard(sid)
                self._event("track_ended", track_sid=sid, source=source)
            case msg.Note(kind, details):
                self._event(kind, **details)
            case msg.ReceiveDelays(audio_us, video_us, pushed):
                self._place_video(self._line.reading(pushed, audio_us, video_us))
                if audio_us is not None and video_us is not None:
                    self._ledger.manifest.set_receive_delays(audio_us, video_us)
            case msg.Drain(reached):
                try:
                    self._place_video(self._line.flush())
                    if self._media is not None:
                        self._media.sync()  # raises a write error of the x264 thread
                finally:
                    reached.set()
            case msg.Close():
                self._on_close(item)
                return True
        return False

    # --- media --------------------------------------------------------------------------

    def _set_origin(self, t: int, pushed: int) -> None:
        if self._origin is None:
            self._origin = Origin(t, pushed)
            self._set_start_utc(time.time() - (monotonic_us() - t) / 1e6)

    def _set_start_utc(self, start_utc: float) -> None:
        """The wall time of media time 0, and of the file's pts 0 (shifted by the offset)."""
        self._start_utc = start_utc
        self._ledger.manifest.start_utc = utc_iso(start_utc)
        self._pts0_utc = start_utc - start_offset(self.config) / VIDEO_CLOCK

    def _move_origin_back(self, video_at: int | None) -> None:
        """Before anything is written: move the origin back to the earliest media
        instant known, the first video frame's (``video_at``, shifted: a receiver that
        held video longer than audio moves it back) or where the audio that waited
        says it began. Audio is stamped on arrival, and a job process busy
        starting up gets its first second or two of audio from the SDK's queue in one
        burst: stamped all at once, the burst's frames looked early against the first
        one, and the timeline trimmed them as overlap (1.75 s of 6.8 s lost in a burst
        of 10 voice rooms beside a CPU hog). The earliest of (arrival - audio before it)
        is when the first sample was really heard; the wall-clock mapping is kept."""
        heard, earliest = 0, self._origin.media_us
        if video_at is not None:
            earliest = min(earliest, video_at)
        for item in self._pending_audio:
            rate = item.frame.sample_rate or 1
            earliest = min(earliest, item.start - heard)
            heard += item.frame.samples_per_channel * 1_000_000 // rate
        shift = self._origin.media_us - earliest
        if shift > 0:
            self._origin = Origin(earliest, self._origin.pushed_us - shift)
            self._set_start_utc(self._start_utc - shift / 1e6)

    def _place_video(self, released: list[tuple[msg.VideoIn, int]]) -> None:
        """Frames the delay line let go, each with its shift (µs): one refused frame
        does not take the others with it."""
        for item, shift in released:
            try:
                self._on_video(item, shift)
            except ValueError as e:
                self._refused(e)

    def _on_video(self, item: msg.VideoIn, shift: int) -> None:
        if self.audio_only:  # pushed as the file was decided audio-only
            raise BadFrame("video_in_audio_only_file", "this file has no video stream")
        frame = video_to_av(item.frame, self.config.max_input_dimension)  # bad: counted
        ts = item.ts + shift
        if not self._thinner.keep(ts):
            self.stats.video_frames_thinned += 1
            return
        if self._sync is None:
            self._open(Size(frame.width, frame.height).rotated(item.rotation), video_at=ts)
        self._apply(self._sync.video(ts, frame, item.rotation))

    def _on_audio(self, item: msg.AudioIn) -> None:
        rate, samples = audio_samples(item.frame)
        self._set_origin(item.start, item.pushed)
        if self._sync is None:
            self._pending_audio.append(item)
            waited = item.start - self._origin.media_us >= self._layout_wait_us
            if self.config.canvas_width or waited:
                self._open(None)
            return
        if self._media.audio_format not in (None, (rate, samples.shape[0])):
            self._event("audio_format_change", sample_rate=rate, channels=samples.shape[0])
        self._apply(self._sync.audio(item.start, self._media.convert(rate, samples)))

    def _on_idle(self) -> None:
        if self._origin is None:
            return
        now = monotonic_us()
        if self._sync is None and self._origin.elapsed_us(now) >= self._layout_wait_us:
            self._open(None)
        if self._sync is not None:
            self._apply(self._sync.idle(now, audio_live=bool(self._live_audio)))

    def _on_close(self, item: msg.Close) -> None:
        self._place_video(self._line.flush())
        if self._origin is None:
            return
        if self._sync is None:
            self._open(None)
        self._apply(self._sync.finish(self._sync.end_instant(item.pushed)))

    def _open(self, first: Size | None, video_at: int | None = None) -> None:
        """Decide the canvas (none: audio-only), start the encoders, and replay audio
        that waited."""
        cfg = self.config
        with self._video_lock:
            fixed = cfg.canvas_width or not self._output.allows_audio_only
            wanted = self._video_wanted or not self._announced
            self.audio_only = first is None and not wanted and not fixed
        canvas = None if self.audio_only else decide_canvas(cfg, self._published, first)
        if canvas is not None:  # before x264 starts its threads, which inherit it
            lower_thread_priority(cfg.encoder_nice)
        self._move_origin_back(video_at)
        muxer = self._output.open_muxer(self._pts0_utc)
        self._media = MediaEncoder(muxer, cfg, canvas, self._output.keyframe_every)
        self._sync = AvSync(
            self._origin,
            rate=self._media.rate,
            frame_us=1_000_000 // cfg.nominal_fps,
            fill_delay_us=int(cfg.gap_fill_delay * 1e6),
            fill_interval_us=int(cfg.video_fill_interval * 1e6),
            video=canvas is not None,
        )
        self._line.end_first_hold()  # pictures may be placed from now on (latency.py)
        if canvas is None:
            self._event("started", audio_only=True)
        else:
            levels = ladder(cfg.x264_preset, cfg.nominal_fps, cfg.min_fps)
            self.stats.quality = str(levels[0])
            if cfg.adaptive_quality:
                self._governor = Governor(levels)
                self._behind_s = 0.0
            self._ledger.manifest.canvas = {"width": canvas.width, "height": canvas.height}
            self._event("started", canvas=f"{canvas.width}x{canvas.height}")
        pending, self._pending_audio = self._pending_audio, []
        for item in pending:
            self._on_audio(item)

    def _apply(self, steps: list[Step]) -> None:
        """Carry out the timing policy's steps, in order."""
        for todo in steps:
            try:  # one refused step must not drop the rest: the timeline has moved on
                self._apply_one(todo)
            except BadFrame as e:
                self._bad_input(e.reason, str(e))
        self.stats.media_seconds = self._sync.media_time_s
        self.stats.bytes_written = self._output.bytes_written

    def _apply_one(self, todo: Step) -> None:
        media, stats = self._media, self.stats
        match todo:
            case step.PlacePicture(pts, frame, rotation):
                media.picture(frame, rotation, pts)
                stats.video_frames_encoded += 1
                if self._ledger.manifest.first_video_s is None:  # written at once
                    self._ledger.manifest.first_video_s = round(pts / VIDEO_CLOCK, 3)
                    self._ledger.write()
            case step.RepeatPicture(pts):
                media.repeat(pts)
                stats.video_frames_repeated += 1
            case step.WriteSamples(block):
                media.audio(block)
                stats.audio_seconds += block.shape[1] / media.rate
            case step.WriteSilence(count):
                media.silence(count)
                stats.silence_seconds += count / media.rate
            case step.Gap(kind, start_s, duration_s):
                self._event(kind, start_s=start_s, duration_s=duration_s)
            case step.Trimmed(samples, overlap):
                stats.audio_trimmed_seconds += samples / media.rate
                if overlap:
                    self._bad_input("audio_overlap_trimmed", f"{samples} samples")

    # --- graceful overload --------------------------------------------------------------

    def _note_lateness(self, media_us: int, pushed_us: int) -> None:
        """How far behind real time this item is taken: the least of its wait in the
        inbox and how much later than usual it comes relative to its media time. The
        second term keeps offline feeding (tests, conversions: media time running ahead
        of the clock or far behind it) from counting as overload."""
        now = monotonic_us()
        lateness = now - media_us
        if self._origin is None or lateness < self._lateness_min:
            self._lateness_min = lateness
        behind = min(now - pushed_us, lateness - self._lateness_min) / 1e6
        self._behind_s = max(self._behind_s, behind)

    def _adapt(self) -> None:
        """Give the governor a reading, at most every ``_ADAPT_EVERY`` s; take its step."""
        now = time.monotonic()
        if self._governor is None or now < self._adapt_at:
            return
        self._adapt_at = now + _ADAPT_EVERY
        busy_s = self._media.encoder_busy_s
        (then, before), self._busy_mark = self._busy_mark, (now, busy_s)
        busy = min(1.0, (busy_s - before) / (now - then)) if then else 0.0
        change = self._governor.observe(now, self._behind_s, busy, machine_cpu.share())
        self._behind_s = 0.0
        if change is not None:
            self._take(change)

    def _take(self, change: Change) -> None:
        level = change.level
        self._media.set_preset(level.preset)
        if self._thinner.fps != level.fps:
            self._thinner = Thinner(level.fps)
        self.stats.quality, self.stats.quality_level = str(level), change.index
        self.stats.quality_steps += 1
        self._event(
            "quality", direction=change.direction, preset=level.preset, fps=level.fps,
            behind_s=change.behind_s, encoder_busy=change.busy,
        )  # fmt: skip
        say = log.warning if change.direction == "down" else log.info
        say(
            "recording %s: quality %s to %s (%.2f s behind real time, encoder busy %.0f%%)",
            self.info.shown, change.direction, level, change.behind_s, 100 * change.busy,
        )  # fmt: skip

    # --- bookkeeping --------------------------------------------------------------------

    def _media_time_s(self) -> float | None:
        if self._sync is not None:
            return self._sync.media_time_s
        return None if self._origin is None else 0.0

    def _event(self, kind: str, **details: Any) -> None:
        self._ledger.event(kind, self._media_time_s(), **details)

    def _bad_input(self, reason: str, detail: str) -> None:
        if self._ledger is None:
            self.stats.count_drop(reason)
        else:
            self._ledger.bad_input(reason, detail, self._media_time_s())

    def _housekeeping(self) -> None:
        self._place_video(self._line.due(monotonic_us()))
        self._adapt()
        self._output.maybe_fsync()
        self._ledger.announce(self._output.take_finished())
        if self._media is not None:
            for detail in self._media.take_rejected():
                self._bad_input("encode_error", detail)
        self._ledger.maybe_write()

    # --- the end ------------------------------------------------------------------------

    def _finish(self, reason: str) -> None:
        """Flush encoders and muxer, close the files, write the final manifest."""
        if self._ledger is None:  # failed while opening: nothing to finalize
            if self._output is not None:
                with contextlib.suppress(OSError, BadFrame):
                    self._output.close()
            return
        try:
            if self._media is not None and self.state is RecordingState.RECORDING:
                self._media.flush()
        except (OSError, BadFrame) as e:
            self._fail(f"finalize failed: {e}")
        finally:
            if self._media is not None:
                self._media.stop()  # after a failure: the thread must not outlive us
        m = self._ledger.manifest
        if self.state is RecordingState.RECORDING:
            self.state = RecordingState.FINISHED
        # Final before the writer lock goes with the close, so that a worker starting on
        # this disk never takes a recording that ends normally for a crashed one.
        self._ledger.write_final(self.state.value, reason, self.error)
        try:
            self._output.close()
        except (OSError, BadFrame) as e:
            self._fail(f"close failed: {e}")
        if self._output.bytes_written == 0:
            self._output.discard()  # no media ever arrived: no empty .ts or HLS folder
            m.file = None
            self._output.take_finished()
        m.segments = self._output.segments
        self._ledger.write_final(self.state.value, reason, self.error, ended=True)
        self._ledger.finished(self.state.value, self.error, self._output.take_finished())
        self._done.set()
        log.info("recording %s finished (%s): %.1f s, %d bytes", self.info.shown, m.end_reason,
                 self.stats.media_seconds, self.stats.bytes_written)  # fmt: skip

    def _fail(self, message: str) -> None:
        if self.state is not RecordingState.FAILED:
            log.error("recording %s failed: %s", self.path or self.info.shown, message)
        self.state = RecordingState.FAILED
        self.error = self.error or message
        if self._ledger is not None:
            self._ledger.state = self.state.value

    def _discard_until_close(self) -> None:
        """After a failure: answer drains and the close, drop everything else. At the
        close the final manifest is written again: on a full disk the first try failed,
        and the room closes this recording when it starts the next file."""
        while True:
            match self._inbox.get(_IDLE_TICK):
                case msg.Drain(reached):
                    reached.set()
                case msg.Close():
                    if self._ledger is not None:
                        self._ledger.write()
                    return
