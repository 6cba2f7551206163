"""`make bench [ARGS=--quick]`: overhead against raw libx264, ours against the
alternatives users would build (``alternatives.py``), real-time capacity
(``capacity.py``), graceful overload with adaptive quality, and the picture quality of
each preset (``quality.py``); each prints a table. ``--quick`` takes about five minutes.

In part 1 both candidates encode the same pre-generated 30 fps frames with the same libx264
settings in the same process, one after the other; the ratio of their throughputs is
what this design costs on top of the encoder itself (conversion, canvas, timeline,
audio, muxing, disk). CPU time is process CPU (user + system) per minute of media.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from demo.testsignal import camera_like
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.encode.canvas import Size
from recorder_agent.encode.encoders import configure_x264

from . import alternatives, capacity, quality
from .frames import FPS, FastFeeder, as_rtc
from .measure import cpu_s

SIZES = [(640, 360), (1280, 720), (1920, 1080)]


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
    feeder = FastFeeder(rec, as_rtc(buffers, w, h))
    c0, t0 = cpu_s(), time.perf_counter()
    feeder.push(n)
    rec.close("bench")
    rec.wait()
    elapsed, cpu = time.perf_counter() - t0, cpu_s() - c0
    assert not rec.stats.dropped, rec.stats.dropped
    media_min = n / FPS / 60
    return n / elapsed, cpu / media_min


def overhead(seconds: int) -> None:
    print(f"## 1. Pipeline overhead: {seconds} s of {FPS} fps media per size, libx264 "
          "veryfast/zerolatency crf 23, 2 threads, same process\n")  # fmt: skip
    print(f"{'size':>10} {'raw x264 fps':>13} {'ours fps':>9} {'ratio':>6} {'CPU s/media min':>16}")
    with tempfile.TemporaryDirectory() as out:
        config = RecorderConfig(output_dir=Path(out), adaptive_quality=False)  # same work as raw
        for w, h in SIZES:
            buffers = camera_like(w, h, 30)
            n = seconds * FPS
            raw = raw_x264(config, w, h, buffers, n)
            fps, cpu_per_min = ours(config, w, h, buffers, n)
            print(f"{w}x{h:<5} {raw:>13.1f} {fps:>9.1f} {fps / raw:>6.2f} {cpu_per_min:>16.1f}")


def against_alternatives(seconds: int, sizes: list[tuple[int, int]]) -> None:
    print(f"\n## 2. Against the alternatives ({seconds} s of media, each in its own process)\n")
    print("fast: fed as fast as taken; paced: real time (lag = hand-over until the frame's")
    print("last byte is readable from the file); silent: paced, microphone sends nothing.")
    print("RSS: peak of the whole process tree (harness with its frames + recorder).\n")
    print(f"{'size':>9} {'candidate':>9} {'fps':>6} {'CPU s/min':>9} {'RSS MB':>7} "
          f"{'lag p50':>8} {'lag p99':>8} {'silent: 1st byte':>16} {'silent p99':>10}")  # fmt: skip
    for w, h in sizes:
        for name in alternatives.CANDIDATES:
            fast = alternatives.run_isolated(name, "fast", w, h, seconds)
            paced = alternatives.run_isolated(name, "paced", w, h, seconds)
            silent = alternatives.run_isolated(name, "silent", w, h, max(seconds, 15))
            if "error" in fast or "error" in paced:
                print(f"{w}x{h:<4} {name:>9} error: {fast.get('error') or paced.get('error')}")
                continue
            if silent.get("stalled"):
                first, p99 = f"none in {silent['after_s']:.0f} s", "-"
            else:
                first = f"{silent['first_byte_s']:.2f} s"
                p99 = f"{silent['lag_ms_p99']:.0f} ms"
            rss = max(fast["peak_rss_mb"], paced["peak_rss_mb"])
            print(
                f"{w}x{h:<4} {name:>9} {fast['fps']:>6.1f} {fast['cpu_s_per_media_min']:>9.1f} "
                f"{rss:>7.0f} {paced['lag_ms_p50']:>6.0f}ms {paced['lag_ms_p99']:>6.0f}ms "
                f"{first:>16} {p99:>10}"
            )


def real_time_capacity(seconds: int) -> None:
    print(f"\n## 3. Real-time capacity, recording core, 1280x720 30 fps + audio, {seconds} s\n")
    print("(pass: < 1% of video frames dropped, finalized within 1 s of the feed's end)\n")
    print(f"{'participants':>12} {'dropped':>8} {'finish s':>8} {'cores used':>10} {'pass':>5}")
    best = 0
    for n in range(1, 9):
        r = capacity.run_isolated(n, seconds)
        if "error" in r:
            print(f"{n:>12} error: {r['error']}")
            break
        print(
            f"{n:>12} {r['dropped_fraction']:>7.1%} {r['finish_s']:>8.2f} "
            f"{r['cpu_cores_used']:>10.2f} {'yes' if r['real_time'] else 'no':>5}"
        )
        if not r["real_time"]:
            break
        best = n
    cores = os.cpu_count() or 1
    print(f"\n{best} participants in real time on {cores} cores: {best / cores:.1f} per core "
          "(Egress budgets 2 CPUs per participant egress: 0.5 per core)")  # fmt: skip


def graceful_overload(seconds: int) -> None:
    print(f"\n## 4. Graceful overload, core, 1280x720 30 fps + audio, {seconds} s, one process\n")
    print("Each count twice, one run after the other: at full quality throughout, and with")
    print("adaptive quality (the default). thinned: frames left out at a lowered frame rate;")
    print("gaps: gap events in the manifests; steal: the VM's CPU time taken by its host.\n")
    print(f"{'participants':>12} {'adaptive':>8} {'dropped':>8} {'thinned':>8} {'gaps':>5} "
          f"{'cores':>6} {'steal':>6}  levels at the end")  # fmt: skip
    for n in (4, 8, 12):
        for adaptive in (False, True):
            r = capacity.run_isolated(n, seconds, adaptive)
            if "error" in r:
                print(f"{n:>12} {adaptive!s:>8} error: {r['error']}")
                continue
            levels = ", ".join(f"{k} x{v}" for k, v in sorted(r["levels"].items()))
            print(f"{n:>12} {'on' if adaptive else 'off':>8} {r['dropped_fraction']:>7.1%} "
                  f"{r['thinned_fraction']:>7.0%} {r['gaps']:>5} {r['cpu_cores_used']:>6.2f} "
                  f"{r['steal_fraction']:>5.0%}  {levels}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 s runs, 720p only in part 2")
    args = parser.parse_args()
    seconds = 10 if args.quick else 30
    overhead(10 if args.quick else 60)
    against_alternatives(seconds, [(1280, 720)] if args.quick else SIZES)
    real_time_capacity(seconds)
    graceful_overload(seconds)
    print()
    quality.measure(10)


if __name__ == "__main__":
    main()
