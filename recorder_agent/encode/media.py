"""The encode stage as one object: pictures and samples in, packets into the muxer.

It puts pictures on the canvas, feeds libx264 (on its own thread) and AAC, converts
audio to the output format, and keeps the last picture for repeats. Everything that
speaks PyAV stays behind it: a refusal by FFmpeg comes out as ``BadFrame``, so the
recording above counts it and goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import av
import numpy as np

from ..config import RecorderConfig
from ..output.muxer import TsMuxer
from ..util import BadFrame
from .canvas import CanvasFitter, Size
from .encoders import AudioEncoder, VideoEncoder
from .frames import AudioConverter


@contextmanager
def _ffmpeg_errors() -> Iterator[None]:
    try:
        yield
    except (av.FFmpegError, ValueError) as e:
        if isinstance(e, BadFrame):
            raise
        raise BadFrame("encode_error", repr(e)) from e


class MediaEncoder:
    """Both encoders of one file, on a fixed canvas; without a canvas, AAC only (a
    participant who publishes no video: no libx264, no black picture).

    >>> enc = MediaEncoder(muxer, config, Size(1280, 720))
    >>> enc.picture(av_frame, rotation=0, pts=0)
    >>> enc.audio(enc.convert(48_000, int16_samples)[0])
    >>> enc.flush()
    """

    def __init__(
        self, muxer: TsMuxer, config: RecorderConfig, canvas: Size | None, keyframe_every: int = 0
    ) -> None:
        self._muxer = muxer
        self._video = VideoEncoder(muxer, config, canvas, keyframe_every) if canvas else None
        self._audio = AudioEncoder(muxer, config)
        self._fitter = CanvasFitter(canvas) if canvas else None
        self._converter = AudioConverter(config.audio_sample_rate, config.audio_channels)
        self._last: av.VideoFrame | None = None
        self.rate = self._audio.rate

    @property
    def audio_format(self) -> tuple[int, int] | None:
        """(rate, channels) of the audio input so far."""
        return self._converter.key

    def picture(self, frame: av.VideoFrame, rotation: int, pts: int) -> None:
        """Fit a new picture onto the canvas and queue it for libx264."""
        assert self._video is not None and self._fitter is not None, "an audio-only file"
        with _ffmpeg_errors():
            self._last = self._fitter.fit(frame, rotation)
        self._video.submit(self._last, pts)

    def repeat(self, pts: int) -> None:
        """The last picture again (black before the first)."""
        assert self._video is not None and self._fitter is not None, "an audio-only file"
        self._video.submit(self._last or self._fitter.black(), pts)

    def set_preset(self, preset: str) -> None:
        """libx264's preset for the pictures from now on (graceful overload)."""
        if self._video is not None:
            self._video.set_preset(preset)

    @property
    def encoder_busy_s(self) -> float:
        """Wall time libx264 has spent encoding (and muxing) so far."""
        return 0.0 if self._video is None else self._video.busy_s

    def convert(self, rate: int, samples: np.ndarray) -> list[np.ndarray]:
        """(channels, n) int16 input → planar float32 blocks at the output format."""
        with _ffmpeg_errors():
            return self._converter.convert(rate, samples)

    def audio(self, block: np.ndarray) -> None:
        with _ffmpeg_errors():
            packets = self._audio.write(block)
        self._muxer.write(packets)

    def silence(self, count: int) -> None:
        with _ffmpeg_errors():
            self._muxer.write(self._audio.write_silence(count))

    def sync(self) -> None:
        """Wait until every queued picture is encoded and muxed."""
        if self._video is not None:
            self._video.sync()

    def take_rejected(self) -> list[str]:
        """Pictures libx264 or the muxer refused since the last call."""
        out: list[str] = []
        while self._video is not None and self._video.rejected:
            out.append(self._video.rejected.pop(0))
        return out

    def flush(self) -> None:
        """Drain both encoders into the muxer; the x264 thread stops."""
        with _ffmpeg_errors():
            if self._video is not None:
                self._video.flush()
            self._muxer.write(self._audio.flush())

    def stop(self) -> None:
        """Stop the x264 thread without draining (after a failure)."""
        if self._video is not None:
            self._video.stop()
