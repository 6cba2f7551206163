"""`make demo`: two synthetic participants recorded in real time, then inspected.

Alice publishes a 640x360 camera and a microphone with flash/beep sync markers every
2 s; Bob publishes a microphone only. Both are recorded through the public API, at
the pace of the wall clock, while the files grow on disk.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.inspection import format_report, inspect_file
from recorder_agent.testsignal import Participant, now_us

SECONDS = 15.0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = RecorderConfig.from_env(output_dir=Path("recordings/demo"))
    start = now_us()
    alice = ParticipantRecording(config, RecordingInfo("demo-room", "alice", name="Alice"))
    bob = ParticipantRecording(config, RecordingInfo("demo-room", "bob", name="Bob"))
    feeds = [
        Participant(alice, start, width=640, height=360, markers=[1, 3, 5, 7, 9, 11, 13]),
        Participant(bob, start, video=False),
    ]
    threads = [threading.Thread(target=lambda p=p: list(p.feed_realtime(SECONDS))) for p in feeds]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(3)
        for rec in (alice, bob):
            s = rec.stats
            print(
                f"  {rec.info.identity:<6} {s.media_seconds:5.1f} s  {s.bytes_written:>8} bytes"
                f"  frames {s.video_frames_encoded:>4}  dropped {sum(s.dropped.values())}"
            )
    for rec in (alice, bob):
        rec.close("demo_finished")
        rec.wait(30)
    print("\nRecordings (python -m recorder_agent inspect):\n")
    reports = [inspect_file(rec.path) for rec in (alice, bob)]
    print("\n\n".join(format_report(r) for r in reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
