"""Check LiveKit frames and turn them into PyAV frames, one copy each.

Every ``rtc.VideoBufferType`` the SDK can hand over maps to an FFmpeg pixel format
with the same memory layout (LiveKit names formats by byte order: RGBA is R,G,B,A in
memory, which libyuv calls ABGR). Odd sizes follow the SDK's rule for chroma planes:
``(n + 1) // 2``.
"""

from __future__ import annotations

from collections.abc import Callable

import av
import numpy as np
from livekit import rtc

from ..util import BadFrame

VBT = rtc.VideoBufferType

PlaneShape = list[tuple[int, int]]  # (rows, bytes per row) for each plane


def _packed(bpp: int) -> Callable[[int, int], PlaneShape]:
    return lambda w, h: [(h, w * bpp)]


def _yuv(cw: Callable[[int], int], ch: Callable[[int], int], bps: int = 1, alpha: bool = False):
    def shape(w: int, h: int) -> PlaneShape:
        chroma = (ch(h), cw(w) * bps)
        return [(h, w * bps), chroma, chroma] + ([(h, w)] if alpha else [])

    return shape


def _half(n: int) -> int:
    return (n + 1) // 2


def _same(n: int) -> int:
    return n


def _nv12(w: int, h: int) -> PlaneShape:
    return [(h, w), (_half(h), _half(w) * 2)]


_FORMATS: dict[int, tuple[str, Callable[[int, int], PlaneShape]]] = {
    VBT.RGBA: ("rgba", _packed(4)),
    VBT.BGRA: ("bgra", _packed(4)),
    VBT.ARGB: ("argb", _packed(4)),
    VBT.ABGR: ("abgr", _packed(4)),
    VBT.RGB24: ("rgb24", _packed(3)),
    VBT.I420: ("yuv420p", _yuv(_half, _half)),
    VBT.I420A: ("yuva420p", _yuv(_half, _half, alpha=True)),
    VBT.I422: ("yuv422p", _yuv(_half, _same)),
    VBT.I444: ("yuv444p", _yuv(_same, _same)),
    VBT.I010: ("yuv420p10le", _yuv(_half, _half, bps=2)),
    VBT.NV12: ("nv12", _nv12),
}


def video_to_av(frame: rtc.VideoFrame, max_dimension: int) -> av.VideoFrame:
    """Validate ``frame`` and make it a PyAV frame of the matching pixel format: a view
    of its buffer for even-sized I420, a copy otherwise."""
    w, h = frame.width, frame.height
    if w <= 0 or h <= 0 or w > max_dimension or h > max_dimension:
        raise BadFrame("bad_size", f"{w}x{h} (limit {max_dimension})")
    try:
        pix_fmt, shape_of = _FORMATS[frame.type]
    except KeyError:
        raise BadFrame("bad_format", f"unsupported buffer type {frame.type!r}") from None
    shape = shape_of(w, h)
    src = np.frombuffer(frame.data, dtype=np.uint8)
    expected = sum(rows * row for rows, row in shape)
    if src.size != expected:
        raise BadFrame("bad_buffer", f"{src.size} bytes for {pix_fmt} {w}x{h}, want {expected}")
    try:
        return _to_av(src, shape, pix_fmt, w, h)
    except av.FFmpegError as e:
        raise BadFrame("bad_buffer", repr(e)) from e


def _to_av(src: np.ndarray, shape: PlaneShape, pix_fmt: str, w: int, h: int) -> av.VideoFrame:
    if pix_fmt == "yuv420p" and w % 2 == 0 and h % 2 == 0 and src.flags.writeable:
        # Tightly packed I420 (LiveKit's default): wrap the buffer, no copy. The SDK
        # hands each received frame a bytearray of its own, which the frame now owns.
        return av.VideoFrame.from_numpy_buffer(src.reshape(h * 3 // 2, w), "yuv420p")
    out = av.VideoFrame(w, h, pix_fmt)
    offset = 0
    for plane, (rows, row) in zip(out.planes, shape, strict=True):
        dst = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        dst[:rows, :row] = src[offset : offset + rows * row].reshape(rows, row)
        offset += rows * row
    return out


MAX_AUDIO_CHANNELS = 8
AUDIO_RATES = range(8000, 192_001)


def audio_samples(frame: rtc.AudioFrame) -> tuple[int, np.ndarray]:
    """Validate an int16 interleaved ``frame``: its rate, and its samples as a
    (channels, samples) int16 view (no copy)."""
    ch, rate, n = frame.num_channels, frame.sample_rate, frame.samples_per_channel
    if not 1 <= ch <= MAX_AUDIO_CHANNELS or rate not in AUDIO_RATES or n <= 0:
        raise BadFrame("bad_audio_format", f"{ch} channels, {rate} Hz, {n} samples")
    data = np.frombuffer(frame.data, dtype=np.int16)
    if data.size != ch * n:
        raise BadFrame("bad_buffer", f"{data.size} samples for {ch}x{n}")
    return rate, data.reshape(n, ch).T


class AudioConverter:
    """int16 interleaved input of any rate and layout → planar float32 at the output's.

    Input already at the output rate (LiveKit's 48 kHz) is converted with numpy; only
    other rates go through FFmpeg's resampler, whose per-call cost dominated the audio
    path in profiles. A change of input format flushes the old resampler's tail.
    """

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self.key: tuple[int, int] | None = None  # (rate, channels) of the current input
        self._resampler: av.AudioResampler | None = None

    def convert(self, rate: int, samples: np.ndarray) -> list[np.ndarray]:
        """Convert (channels, n) int16 ``samples``; returns (channels, m) float32 blocks."""
        out: list[np.ndarray] = []
        ch = samples.shape[0]
        if (rate, ch) != self.key:
            out += self.flush()
            self.key = (rate, ch)
            direct = rate == self.rate and (ch in (1, self.channels) or self.channels == 1)
            if not direct:
                layout = "mono" if self.channels == 1 else "stereo"
                self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        if self._resampler is None:
            block = samples.astype(np.float32)
            block *= 1 / 32768
            if ch != self.channels:
                block = (
                    block.mean(axis=0, keepdims=True)
                    if self.channels == 1
                    else np.repeat(block, self.channels, axis=0)
                )
            return [*out, block]
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.T).reshape(1, -1), format="s16", layout=f"{ch}c"
        )
        frame.sample_rate = rate
        return out + [f.to_ndarray() for f in self._resampler.resample(frame) if f.samples]

    def flush(self) -> list[np.ndarray]:
        """The resampler's buffered tail, if any (at a format change or the end)."""
        if self._resampler is None:
            return []
        tail = [f.to_ndarray() for f in self._resampler.resample(None) if f.samples]
        self._resampler = None
        return tail
