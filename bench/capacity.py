"""Real-time capacity of the recording core: N participants at 720p30 + 48 kHz audio,
fed at real-time pace from memory, all in one process (one room's job process).

A count passes when fewer than 1% of video frames are dropped and every recording is
finalized within 1 s of the feed's end (no backlog building up).

Run one: ``python -m bench.capacity 3 10`` (3 participants, 10 s); one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from livekit import rtc

from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo

from .frames import FPS, as_rtc, camera_like, rtc_tone
from .measure import cpu_s, run_module

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


def measure(n: int, seconds: float, w: int = 1280, h: int = 720) -> dict[str, Any]:
    frames = as_rtc(camera_like(w, h, 30), w, h)
    with tempfile.TemporaryDirectory() as out:
        config = RecorderConfig(output_dir=Path(out))
        recs = [ParticipantRecording(config, RecordingInfo("cap", f"p{i}")) for i in range(n)]
        c0 = cpu_s()
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
    pushed = sum(r.stats.video_frames_in for r in recs)
    dropped = sum(r.stats.dropped.get("video_queue_full", 0) for r in recs)
    drop = dropped / max(1, pushed)
    return {
        "participants": n,
        "size": f"{w}x{h}",
        "video_frames_pushed": pushed,
        "dropped_fraction": drop,
        "finish_s": finish,
        "cpu_cores_used": cpu / (seconds + finish),
        "real_time": drop < MAX_DROP and finish < MAX_FINISH_S,
    }


def run_isolated(n: int, seconds: float) -> dict[str, Any]:
    return run_module("bench.capacity", n, seconds, timeout=seconds * 10 + 120)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), float(sys.argv[2]))))
