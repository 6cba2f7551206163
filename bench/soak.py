"""Memory soak: ``python -m bench.soak [--minutes 60] [--participants 2]``.

Each participant gets ``--minutes`` of 640x360 30 fps video + 48 kHz audio, fed as fast
as the recordings take it (with back-pressure), all at once in one process. RSS is
sampled after every media minute; the slope is fitted over the samples after the
first five minutes (warm-up: allocator pools, x264 lookahead), in MB per hour.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from demo.testsignal import camera_like
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo

from .frames import FPS, FastFeeder, as_rtc
from .measure import rss_mb


def feed(rec: ParticipantRecording, minutes: int, tick: threading.Barrier) -> None:
    w, h = 640, 360
    feeder = FastFeeder(rec, as_rtc(camera_like(w, h, 30), w, h))
    for _ in range(minutes):
        feeder.push(60 * FPS)
        rec.drain()
        tick.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--participants", type=int, default=2)
    args = parser.parse_args()
    n = args.participants
    samples: list[float] = []
    tick = threading.Barrier(n + 1)
    with tempfile.TemporaryDirectory() as out:
        config = RecorderConfig(output_dir=Path(out), adaptive_quality=False)
        baseline = rss_mb()
        recs = [ParticipantRecording(config, RecordingInfo("soak", f"p{i}")) for i in range(n)]
        feeders = [threading.Thread(target=feed, args=(r, args.minutes, tick)) for r in recs]
        t0 = time.monotonic()
        for t in feeders:
            t.start()
        for minute in range(1, args.minutes + 1):
            tick.wait()
            samples.append(rss_mb())
            print(f"media minute {minute:3d}: RSS {samples[-1]:7.1f} MB "
                  f"({time.monotonic() - t0:5.0f} s)", flush=True)  # fmt: skip
        for t in feeders:
            t.join()
        for r in recs:
            r.close("soak")
            r.wait()
        media = sum(r.stats.media_seconds for r in recs)
    # Minutes 6 to the last but one: the last sample may catch the feeders freeing frames.
    warm = samples[5:-1] if len(samples) > 10 else samples
    slope = float(np.polyfit(np.arange(len(warm)), warm, 1)[0]) * 60  # MB per hour
    peak = max(samples)
    print(f"\n{n} participants x {args.minutes} min of 640x360 media ({media / 60:.0f} min total)")
    print(f"RSS before recordings {baseline:.1f} MB, peak {peak:.1f} MB: "
          f"{(peak - baseline) / n:.1f} MB per participant")  # fmt: skip
    print(f"RSS slope after warm-up: {slope:+.2f} MB per hour of media")


if __name__ == "__main__":
    main()
