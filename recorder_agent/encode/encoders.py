"""H.264 (libx264) and AAC-LC encoders, each owning one stream of the TS muxer.

The AAC encoder runs on the recording's worker thread. libx264 gets a thread of its
own, so that the worker prepares the next picture and encodes audio while x264 works
(PyAV releases the GIL inside both): serially, at 360p, the recording ran at 0.55-0.64
of raw x264's speed.

FFmpeg cannot change a libx264 preset in place, so a new preset (graceful overload, see
recording/quality.py) is a new encoder on the same stream: it starts with an IDR frame
that carries its own SPS/PPS, which TS readers take in-band (ffmpeg decodes and remuxes
such a file without a warning).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from ..config import RecorderConfig
from ..output.muxer import TsMuxer
from ..util import AAC_FRAME, VIDEO_CLOCK, BadFrame
from .canvas import Size


def video_settings(config: RecorderConfig) -> dict[str, Any]:
    """The libx264 settings, as recorded in the manifest."""
    rate = {"bitrate": config.video_bitrate} if config.video_bitrate else {"crf": config.video_crf}
    return {
        "codec": "h264",
        "encoder": "libx264",
        "preset": config.x264_preset,
        "tune": config.x264_tune,
        "gop_frames": max(1, round(config.gop_seconds * config.nominal_fps)),
        "threads": config.x264_threads,
        **rate,
    }


def start_offset(config: RecorderConfig) -> int:
    """90 kHz ticks by which every stream is shifted so that none starts below zero.

    The AAC encoder's first packet (its priming) has pts -1024 samples; a negative pts
    would wrap around the 33-bit TS clock. Shifting both streams by that much keeps
    them aligned and the file starting at 0.
    """
    return AAC_FRAME * VIDEO_CLOCK // config.audio_sample_rate


def configure_x264(ctx: Any, config: RecorderConfig, canvas: Size, preset: str = "") -> None:
    """Set up an unopened libx264 context: 90 kHz pts, nominal frame rate (x264's rate
    control needs it: without it, it takes 1/time_base as the rate), GOP, quality;
    ``preset`` overrides the configured one."""
    settings = video_settings(config)
    ctx.width, ctx.height = canvas.width, canvas.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, VIDEO_CLOCK)
    ctx.framerate = Fraction(config.nominal_fps)
    ctx.gop_size = settings["gop_frames"]
    ctx.thread_count = config.x264_threads
    options = {"preset": preset or config.x264_preset, "tune": config.x264_tune}
    if config.video_bitrate:
        ctx.bit_rate = config.video_bitrate
        options.update(maxrate=str(config.video_bitrate), bufsize=str(config.video_bitrate))
    else:
        options["crf"] = str(config.video_crf)
    ctx.options = options


@dataclass(frozen=True, slots=True)
class _Picture:
    frame: av.VideoFrame
    pts: int


@dataclass(frozen=True, slots=True)
class _Preset:
    name: str


class VideoEncoder:
    """libx264 on a fixed canvas, in its own thread; frames carry 90 kHz pts.

    ``submit`` hands a picture over (blocking only while ``depth`` pictures wait) and
    the thread muxes the packets itself. Pictures must not be modified once submitted.
    ``set_preset`` switches libx264's preset from the next picture on; ``busy_s`` is
    the wall time spent encoding and muxing so far.
    A picture libx264 refuses is counted in ``rejected`` and skipped; a write error
    stops the thread and is raised by the next ``submit``, ``sync`` or ``flush``.

    The thread inherits the creating thread's scheduling priority (Linux threads do).
    """

    _STOP = None

    def __init__(
        self,
        muxer: TsMuxer,
        config: RecorderConfig,
        canvas: Size,
        keyframe_every: int = 0,
        depth: int = 2,
    ) -> None:
        """``keyframe_every`` (90 kHz ticks, 0 = off) forces a keyframe at each multiple,
        so that HLS segments can be cut there."""
        self._config, self._canvas = config, canvas
        self._offset = start_offset(config)
        self._keyframe_every = keyframe_every
        self._next_keyframe = 0
        self._muxer = muxer
        self.stream = muxer.add_stream("libx264", rate=config.nominal_fps)
        self.stream.time_base = Fraction(1, VIDEO_CLOCK)
        self._ctx = self.stream.codec_context  # replaced by a preset switch
        configure_x264(self._ctx, config, canvas)
        self._ctx.open()
        self._preset = config.x264_preset
        self._time_base = self._ctx.time_base
        self.busy_s = 0.0  # written by the thread only
        self.rejected: list[str] = []  # appended by the thread, taken by the owner
        self._error: BaseException | None = None
        self._queue: queue.Queue[_Picture | _Preset | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="x264", daemon=True)
        self._thread.start()

    def submit(self, frame: av.VideoFrame, pts: int) -> None:
        self._raise_error()
        self._queue.put(_Picture(frame, pts))

    def set_preset(self, preset: str) -> None:
        """Encode the pictures submitted from now on with ``preset``."""
        self._raise_error()
        self._queue.put(_Preset(preset))

    def sync(self) -> None:
        """Wait until every submitted picture is encoded and muxed."""
        self._queue.join()
        self._raise_error()

    def flush(self) -> None:
        """Encode what is queued, drain libx264, mux the rest, stop the thread."""
        self.stop()
        self._raise_error()
        self._muxer.write(self._encode(None))

    def stop(self) -> None:
        """Stop the thread after what is queued (without draining libx264)."""
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not self._STOP:
            try:
                if self._error is None:
                    match item:
                        case _Picture(frame, pts):
                            t0 = time.perf_counter()
                            self._picture(frame, pts)
                            self.busy_s += time.perf_counter() - t0
                        case _Preset(name):
                            self._switch(name)
            except (av.FFmpegError, BadFrame) as e:  # refused by libx264 or the muxer
                self.rejected.append(repr(e))
            except BaseException as e:  # disk errors (SinkError) and bugs: the owner decides
                self._error = e
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _picture(self, frame: av.VideoFrame, pts: int) -> None:
        if self._keyframe_every and pts >= self._next_keyframe:
            frame.pict_type = PictureType.I
            self._next_keyframe = (pts // self._keyframe_every + 1) * self._keyframe_every
        else:
            frame.pict_type = PictureType.NONE
        frame.pts = pts + self._offset
        frame.time_base = self._time_base
        self._muxer.write(self._encode(frame))

    def _switch(self, preset: str) -> None:
        """A new libx264 with ``preset``; the old one is drained into the stream first
        (zerolatency holds no frames back: with B-frames, the new encoder's first
        timestamps would fall behind the old one's, which config.py refuses). If the new
        one cannot be opened, the old one stays."""
        if preset == self._preset:
            return
        ctx = av.CodecContext.create("libx264", "w")
        configure_x264(ctx, self._config, self._canvas, preset)
        ctx.open()
        tail = self._encode(None)  # the old one is done after this, whatever the muxer says
        self._ctx, self._preset = ctx, preset
        self._muxer.write(tail)

    def _encode(self, frame: av.VideoFrame | None) -> list[av.Packet]:
        packets = self._ctx.encode(frame)
        for packet in packets:
            packet.stream = self.stream
        return packets

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


class AudioEncoder:
    """AAC-LC at a fixed rate and layout. Takes float samples already on the timeline,
    cuts them into 1024-sample AAC frames and stamps pts from the sample count."""

    def __init__(self, muxer: TsMuxer, config: RecorderConfig) -> None:
        self.rate = config.audio_sample_rate
        self.channels = config.audio_channels
        self.layout = "mono" if self.channels == 1 else "stereo"
        self.stream = muxer.add_stream("aac", rate=self.rate, layout=self.layout)
        ctx = self.stream.codec_context
        ctx.bit_rate = config.audio_bitrate
        ctx.time_base = Fraction(1, self.rate)
        ctx.options = {"aac_coder": config.aac_coder}
        self.stream.time_base = Fraction(1, self.rate)
        ctx.open()
        self._pending = np.zeros((self.channels, 0), dtype=np.float32)
        self._next_pts = AAC_FRAME  # see start_offset()

    def write(self, samples: np.ndarray) -> list[av.Packet]:
        """Append planar float32 ``samples`` (channels x n); encode each full AAC frame."""
        self._pending = np.concatenate((self._pending, samples), axis=1)
        packets: list[av.Packet] = []
        while self._pending.shape[1] >= AAC_FRAME:
            packets += self._encode(self._pending[:, :AAC_FRAME])
            self._pending = self._pending[:, AAC_FRAME:]
        return packets

    def write_silence(self, count: int) -> Iterator[av.Packet]:
        """Encode ``count`` samples of silence lazily, a chunk at a time: a gap may last
        hours, and the muxer should take its packets as they come."""
        while count > 0:
            n = min(count, 64 * AAC_FRAME)
            yield from self.write(np.zeros((self.channels, n), dtype=np.float32))
            count -= n

    def flush(self) -> list[av.Packet]:
        """Encode what is pending, padded with silence to a whole AAC frame (FFmpeg's
        encoder turns a lone frame of a few samples into a packet decoders reject)."""
        packets: list[av.Packet] = []
        if self._pending.shape[1]:
            pad = AAC_FRAME - self._pending.shape[1]
            packets = self._encode(np.pad(self._pending, ((0, 0), (0, pad))))
        self._pending = self._pending[:, :0]
        return packets + self.stream.encode(None)

    def _encode(self, block: np.ndarray) -> list[av.Packet]:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), "fltp", self.layout)
        frame.sample_rate = self.rate
        frame.pts = self._next_pts
        frame.time_base = Fraction(1, self.rate)
        self._next_pts += block.shape[1]
        return self.stream.encode(frame)
