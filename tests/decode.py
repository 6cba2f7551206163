"""Decode a recording with PyAV into plain numbers the tests can compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np


@dataclass
class Decoded:
    video_pts: list[float] = field(default_factory=list)  # seconds
    video_luma: list[float] = field(default_factory=list)
    video_sizes: set[tuple[int, int]] = field(default_factory=set)
    video_yuv: list[tuple[float, float, float]] = field(default_factory=list)  # centre pixel
    audio_start: float | None = None
    audio_samples: int = 0
    audio_rate: int = 0
    audio_rms: list[float] = field(default_factory=list)  # per 10 ms

    @property
    def video_duration(self) -> float:
        return self.video_pts[-1] - self.video_pts[0] + 1 / 30 if self.video_pts else 0.0

    @property
    def audio_duration(self) -> float:
        return self.audio_samples / self.audio_rate if self.audio_rate else 0.0


def centre(frame: av.VideoFrame) -> tuple[float, float, float]:
    out = []
    for i, plane in enumerate(frame.planes[:3]):
        div = 1 if i == 0 else 2
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        h, w = (frame.height + div - 1) // div, (frame.width + div - 1) // div
        out.append(float(rows[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].mean()))
    return out[0], out[1], out[2]


def luma_at(frame: av.VideoFrame, x: float, y: float) -> float:
    """Mean luma of a small patch at relative position (x, y)."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    cy, cx = int(y * (frame.height - 1)), int(x * (frame.width - 1))
    return float(rows[max(0, cy - 1) : cy + 2, max(0, cx - 1) : cx + 2].mean())


def decode(path: Path, keep_frames: bool = False) -> tuple[Decoded, list[av.VideoFrame]]:
    d = Decoded()
    frames: list[av.VideoFrame] = []
    with av.open(str(path), format="hls" if path.suffix == ".m3u8" else "mpegts") as c:
        for frame in c.decode(*c.streams):
            if isinstance(frame, av.VideoFrame):
                d.video_pts.append(float(frame.time))
                y = frame.planes[0]
                d.video_luma.append(
                    float(
                        np.frombuffer(y, np.uint8).reshape(-1, y.line_size)[:, : frame.width].mean()
                    )
                )
                d.video_sizes.add((frame.width, frame.height))
                d.video_yuv.append(centre(frame))
                if keep_frames:
                    frames.append(frame)
            else:
                if d.audio_start is None:
                    d.audio_start = float(frame.time)
                d.audio_rate = frame.sample_rate
                d.audio_samples += frame.samples
                pcm = frame.to_ndarray().mean(axis=0)
                win = frame.sample_rate // 100
                d.audio_rms += [
                    float(np.sqrt(np.mean(pcm[i : i + win] ** 2)))
                    for i in range(0, len(pcm) - win + 1, win)
                ]
    return d, frames
