"""A fixed canvas per file: rotate, scale to fit, letterbox or pillarbox. Never stretch.

The canvas is decided once, before the encoder opens: x264 and the TS stream have one
size. WebRTC often starts a stream below the publisher's resolution and ramps up, so
the track's published size, when known, wins over the first frame's.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from ..config import RecorderConfig

_BLACK = (16, 128, 128)  # limited-range Y, U, V


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def rotated(self, rotation: int) -> Size:
        return Size(self.height, self.width) if clockwise_turns(rotation) % 2 else self


def clockwise_turns(rotation: int) -> int:
    """Quarter turns clockwise that make a frame upright. LiveKit's ``VideoRotation``
    values 0..3 stand for 0, 90, 180 and 270 degrees."""
    return rotation if rotation in (0, 1, 2, 3) else 0


def choose_canvas(first: Size, max_long: int, max_short: int) -> Size:
    """The first frame's size, scaled down to the caps (orientation-agnostic), made even."""
    long_edge, short_edge = max(first.width, first.height), min(first.width, first.height)
    scale = min(1.0, max_long / long_edge, max_short / short_edge)
    return Size(_even(first.width * scale), _even(first.height * scale))


def decide_canvas(config: RecorderConfig, published: Size | None, first: Size | None) -> Size:
    """The file's canvas: the configured one; else the published size (turned the way
    the first frame shows it) or the first frame's, within the caps; else the fallback
    when no video came in time.

    >>> decide_canvas(RecorderConfig(), Size(1280, 720), Size(180, 320))
    Size(width=720, height=1280)
    """
    if config.canvas_width:
        return Size(config.canvas_width, config.canvas_height)
    size = published or first
    if size is None or min(size.width, size.height) <= 0:  # a fuzz run once met a 0 edge
        return Size(config.fallback_width, config.fallback_height)
    if first is not None and (size.width > size.height) != (first.width > first.height):
        size = Size(size.height, size.width)
    return choose_canvas(size, config.canvas_max_long, config.canvas_max_short)


def fit_rect(src: Size, canvas: Size) -> tuple[Size, int, int]:
    """Largest even-sized rectangle of ``src``'s aspect ratio inside ``canvas``, centred."""
    scale = min(canvas.width / src.width, canvas.height / src.height)
    size = Size(
        min(canvas.width, _even(round(src.width * scale))),
        min(canvas.height, _even(round(src.height * scale))),
    )
    x = (canvas.width - size.width) // 4 * 2
    y = (canvas.height - size.height) // 4 * 2
    return size, x, y


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable numpy views of a yuv420p frame's planes, without line padding."""
    dims = [(frame.height, frame.width)] + [((frame.height + 1) // 2, (frame.width + 1) // 2)] * 2
    return [
        np.frombuffer(p, dtype=np.uint8).reshape(-1, p.line_size)[:rows, :cols]
        for p, (rows, cols) in zip(frame.planes, dims, strict=True)
    ]


def _rotate(frame: av.VideoFrame, turns: int) -> av.VideoFrame:
    src = _planes(frame)
    size = Size(frame.width, frame.height).rotated(1 if turns % 2 else 0)
    out = av.VideoFrame(size.width, size.height, "yuv420p")
    for dst, plane in zip(_planes(out), src, strict=True):
        dst[...] = np.rot90(plane, k=-turns)
    return out


class CanvasFitter:
    """Puts any frame onto one fixed-size yuv420p canvas.

    >>> fitter = CanvasFitter(Size(1280, 720))
    >>> upright = fitter.fit(av_frame, rtc.VideoRotation.VIDEO_ROTATION_90)
    """

    def __init__(self, canvas: Size) -> None:
        self.canvas = canvas

    def fit(self, frame: av.VideoFrame, rotation: int = 0) -> av.VideoFrame:
        turns = clockwise_turns(rotation)
        if turns:
            frame = _rotate(frame.reformat(format="yuv420p"), turns)
        size, x, y = fit_rect(Size(frame.width, frame.height), self.canvas)
        scaled = frame.reformat(width=size.width, height=size.height, format="yuv420p")
        if size == self.canvas:
            return scaled
        out = self.black()
        for dst, src, div in zip(_planes(out), _planes(scaled), (1, 2, 2), strict=True):
            dst[y // div : y // div + src.shape[0], x // div : x // div + src.shape[1]] = src
        return out

    def black(self) -> av.VideoFrame:
        out = av.VideoFrame(self.canvas.width, self.canvas.height, "yuv420p")
        for plane, value in zip(_planes(out), _BLACK, strict=True):
            plane[...] = value
        return out
