"""Real-time capacity of the recording core: N participants at 720p30 + 48 kHz audio,
fed at real-time pace from memory, all in one process (one room's job process).

A count passes when fewer than 1% of video frames are dropped and every recording is
finalized within 1 s of the feed's end (no backlog building up). With adaptive quality
(the default), the row also says where the recordings' quality ended, how many frames
were thinned on purpose, and whether the timelines stayed continuous (no gap events,
no repeated pictures).

Run one: ``python -m bench.capacity 3 10 [adaptive]`` (3 participants, 10 s; adaptive
quality 1 or 0, default 0: full quality throughout); one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from livekit import rtc

from demo.testsignal import camera_like
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo

from .frames import FPS, as_rtc, rtc_tone
from .measure import cpu_s, machine_ticks, run_module

MAX_DROP = 0.01
MAX_FINISH_S = 1.0


def _feed(rec: ParticipantRecording, frames: list[rtc.VideoFrame], seconds: float) -> None:
    audio = rtc_tone()
    t0 = time.monotonic()
    base = time.monotonic_ns() // 1000
    vi = ai = 0
    while (now := time.monotonic() - t0) < seconds:
        while ai * 0.01 <= now:
            rec.push_audio(audio, base + ai * 10_000)
            ai += 1
        while vi / FPS <= now:
            rec.push_video(frames[vi % len(frames)], base + vi * 1_000_000 // FPS)
            vi += 1
        time.sleep(0.005)


def _gap_events(rec: ParticipantRecording) -> int:
    events = json.loads(rec.manifest_path.read_text())["events"]
    return sum(1 for e in events if e["type"].endswith("_gap"))


def measure(
    n: int, seconds: float, adaptive: bool = False, w: int = 1280, h: int = 720
) -> dict[str, Any]:
    frames = as_rtc(camera_like(w, h, 30), w, h)
    with tempfile.TemporaryDirectory() as out:
        config = RecorderConfig(output_dir=Path(out), adaptive_quality=adaptive)
        recs = [ParticipantRecording(config, RecordingInfo("cap", f"p{i}")) for i in range(n)]
        c0, (t0, s0) = cpu_s(), machine_ticks()
        feeders = [threading.Thread(target=_feed, args=(r, frames, seconds)) for r in recs]
        for t in feeders:
            t.start()
        for t in feeders:
            t.join()
        end = time.monotonic()
        for r in recs:
            r.close("bench")
        for r in recs:
            r.wait()
        finish = time.monotonic() - end
        cpu = cpu_s() - c0
        t1, s1 = machine_ticks()
        gaps = sum(_gap_events(r) for r in recs)
    pushed = sum(r.stats.video_frames_in for r in recs)
    dropped = sum(r.stats.dropped.get("video_queue_full", 0) for r in recs)
    drop = dropped / max(1, pushed)
    return {
        "participants": n,
        "size": f"{w}x{h}",
        "adaptive": adaptive,
        "video_frames_pushed": pushed,
        "dropped_fraction": drop,
        "dropped_any": sum(r.stats.drops() for r in recs),
        "thinned_fraction": sum(r.stats.video_frames_thinned for r in recs) / max(1, pushed),
        "levels": dict(Counter(r.stats.quality for r in recs)),
        "steps": sum(r.stats.quality_steps for r in recs),
        "gaps": gaps,
        "repeated_frames": sum(r.stats.video_frames_repeated for r in recs),
        "finish_s": finish,
        "cpu_cores_used": cpu / (seconds + finish),
        "steal_fraction": (s1 - s0) / max(1, t1 - t0),
        "real_time": drop < MAX_DROP and finish < MAX_FINISH_S,
    }


def run_isolated(n: int, seconds: float, adaptive: bool = False) -> dict[str, Any]:
    return run_module("bench.capacity", n, seconds, int(adaptive), timeout=seconds * 10 + 120)


if __name__ == "__main__":
    adaptive = len(sys.argv) > 3 and sys.argv[3] == "1"
    print(json.dumps(measure(int(sys.argv[1]), float(sys.argv[2]), adaptive)))
