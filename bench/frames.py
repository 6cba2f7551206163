"""The benchmarks' input: camera-like I420 frames, pre-generated so that every
candidate gets the same pixels and none pays for making them."""

from __future__ import annotations

import numpy as np

FPS = 30


def camera_like(w: int, h: int, n: int) -> list[np.ndarray]:
    """I420 buffers with moving gradients and noise: a camera, roughly, for x264."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(n):
        y = ((xx + 4 * i) % 256 * 0.6 + (yy + 2 * i) % 256 * 0.3).astype(np.uint8)
        y = (y + rng.integers(0, 12, (h, w), dtype=np.uint8)).astype(np.uint8)
        uv = np.full(2 * (w // 2) * (h // 2), 128, np.uint8)
        frames.append(np.concatenate([y.reshape(-1), uv]))
    return frames


# Items (video and audio frames) a fast feeder lets wait in a recording's queue; under
# the video queue's 30 frames, so nothing is dropped.
BACKLOG = 20
