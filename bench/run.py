"""`make bench [ARGS=--quick]`: the recording core against raw libx264, side by side.

Both candidates encode the same pre-generated 30 fps frames with the same libx264
settings in the same process, one after the other; the ratio of their throughputs is
what this design costs on top of the encoder itself (conversion, canvas, timeline,
audio, muxing, disk). CPU time is process CPU (user + system) per minute of media.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from livekit import rtc

from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.canvas import Size
from recorder_agent.encoders import configure_x264
from recorder_agent.testsignal import AUDIO_FRAME, RATE, tone

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


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raw_x264(config: RecorderConfig, w: int, h: int, buffers: list[np.ndarray], n: int) -> float:
    ctx = av.CodecContext.create("libx264", "w")
    configure_x264(ctx, config, Size(w, h))  # exactly what a recording uses
    frames = [av.VideoFrame.from_numpy_buffer(b.reshape(h * 3 // 2, w), "yuv420p") for b in buffers]
    t0 = time.perf_counter()
    for i in range(n):
        frame = frames[i % len(frames)]
        frame.pts = i * 3000
        ctx.encode(frame)
    ctx.encode(None)
    return n / (time.perf_counter() - t0)


def ours(
    config: RecorderConfig, w: int, h: int, buffers: list[np.ndarray], n: int
) -> tuple[float, float]:
    rec = ParticipantRecording(config, RecordingInfo("bench", f"p{w}x{h}"))
    frames = [rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, memoryview(b)) for b in buffers]
    audio = rtc.AudioFrame(tone(AUDIO_FRAME, 0, 0.2).tobytes(), RATE, 1, AUDIO_FRAME)
    base = time.monotonic_ns() // 1000
    ai = 0
    c0, t0 = cpu_s(), time.perf_counter()
    for i in range(n):
        ts = base + i * 1_000_000 // FPS
        rec.push_video(frames[i % len(frames)], ts)
        while ai * 10_000 < (i + 1) * 1_000_000 // FPS:
            rec.push_audio(audio, base + ai * 10_000)
            ai += 1
        if i % 10 == 9:
            rec.drain()
    rec.close("bench")
    rec.wait()
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - c0
    assert not rec.stats.dropped, rec.stats.dropped
    media_min = n / FPS / 60
    return n / elapsed, cpu / media_min


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 s of media per size")
    args = parser.parse_args()
    seconds = 10 if args.quick else 60
    sizes = [(640, 360), (1280, 720), (1920, 1080)]
    print(
        f"{seconds} s of {FPS} fps media per size, libx264 veryfast/zerolatency crf 23, 2 threads\n"
    )
    print(
        f"{'size':>10} {'raw x264 fps':>13} {'ours fps':>9} {'ratio':>6} {'CPU s / media min':>18}"
    )
    with tempfile.TemporaryDirectory() as out:
        config = RecorderConfig(output_dir=Path(out))
        for w, h in sizes:
            buffers = camera_like(w, h, 30)
            n = seconds * FPS
            raw = raw_x264(config, w, h, buffers, n)
            fps, cpu_per_min = ours(config, w, h, buffers, n)
            print(f"{w}x{h:<5} {raw:>13.1f} {fps:>9.1f} {fps / raw:>6.2f} {cpu_per_min:>18.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the whole run: {peak:.0f} MB")


if __name__ == "__main__":
    main()
