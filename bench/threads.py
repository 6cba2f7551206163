"""Where an overhead run's CPU goes, thread by thread:
``python -m bench.threads ours|raw WIDTH HEIGHT FRAMES``.

Runs one side of ``bench.run`` part 1 and prints the CPU seconds each thread of the
process used, read from ``/proc/self/task`` (Linux) every 0.2 s, since threads that
exit take their counters with them. Python threads show their names; libx264's own
threads show as ``python``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from demo.testsignal import camera_like
from recorder_agent import RecorderConfig
from recorder_agent.ops.metrics import proc_stat

from .run import ours, raw_x264


class ThreadCpu:
    """Samples per-thread CPU seconds of this process until ``stop``."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[int, str], float] = {}
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.2)

    def sample(self) -> None:
        self._names.update({t.native_id: t.name for t in threading.enumerate() if t.native_id})
        for tid in os.listdir("/proc/self/task"):
            try:
                name, _, cpu = proc_stat(f"/proc/self/task/{tid}/stat")
            except OSError:  # the thread exited meanwhile
                continue
            self.seconds[(int(tid), self._names.get(int(tid), name))] = cpu

    def stop(self) -> dict[tuple[int, str], float]:
        self.sample()
        self._stop.set()
        self._thread.join()
        return self.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=["ours", "raw"])
    parser.add_argument("width", type=int)
    parser.add_argument("height", type=int)
    parser.add_argument("frames", type=int)
    args = parser.parse_args()
    w, h = args.width, args.height
    with tempfile.TemporaryDirectory() as out:
        config = RecorderConfig(output_dir=Path(out), adaptive_quality=False)  # same work as raw
        buffers = camera_like(w, h, 30)
        sampler = ThreadCpu()
        before = dict(sampler.seconds)
        if args.side == "raw":
            fps = raw_x264(config, w, h, buffers, args.frames)
        else:
            fps, _ = ours(config, w, h, buffers, args.frames)
        time.sleep(0.3)  # let threads that just finished be sampled once more
        used = {k: v - before.get(k, 0.0) for k, v in sampler.stop().items()}
    print(f"{args.side} {w}x{h}, {args.frames} frames: {fps:.1f} fps")
    for (tid, name), cpu in sorted(used.items(), key=lambda kv: -kv[1]):
        if cpu >= 0.01:
            print(f"{cpu:8.2f} s  {name} ({tid})")
    print(f"{sum(used.values()):8.2f} s  total")


if __name__ == "__main__":
    main()
