"""A recording in a child process, for the tests that kill it or starve it of disk.

python -m tests.recorder_process realtime OUT_DIR      # prints "fed <s>" as it goes
python -m tests.recorder_process fsize OUT_DIR LIMIT   # two recordings, RLIMIT_FSIZE
python -m tests.recorder_process rss OUT_DIR SECONDS   # as fast as possible, RSS
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path

from demo.testsignal import Participant, now_us
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def realtime(out: Path) -> None:
    config = RecorderConfig.from_env(output_dir=out)  # RECORDER_OUTPUT_FORMAT=hls: segments
    rec = ParticipantRecording(config, RecordingInfo("room", "crash"))
    for t in Participant(rec, now_us()).feed_realtime(3600):
        print(f"fed {t:.1f} {rec.path}", flush=True)


def fsize(out: Path, limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    config = RecorderConfig.from_env(output_dir=out)  # RECORDER_OUTPUT_FORMAT=hls: segments
    big = ParticipantRecording(config, RecordingInfo("room", "big"))
    small = ParticipantRecording(config, RecordingInfo("room", "small"))
    t0 = now_us()
    speaker = Participant(small, t0, video=False)
    speaker.feed(1)
    Participant(big, t0, width=640, height=480).feed(8)
    speaker.feed(2)
    for rec in (big, small):
        rec.close("done")
        rec.wait(30)
    print(
        json.dumps(
            {
                r.info.identity: {"state": r.state.value, "error": r.error, "path": str(r.path)}
                for r in (big, small)
            }
        )
    )


def rss(out: Path, seconds: int) -> None:
    rec = ParticipantRecording(RecorderConfig(output_dir=out), RecordingInfo("room", "soak"))
    p = Participant(rec, now_us())
    samples = []
    for minute in range(0, seconds, 60):
        p.feed(min(seconds, minute + 60), drain_every=1.0)
        samples.append(rss_mb())
    rec.close("done")
    rec.wait(60)
    print(json.dumps({"rss_mb": samples, "state": rec.state.value, "path": str(rec.path)}))


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "realtime":
        realtime(out)
    elif mode == "fsize":
        fsize(out, int(sys.argv[3]))
    else:
        rss(out, int(sys.argv[3]))
