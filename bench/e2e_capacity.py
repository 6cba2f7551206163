"""End-to-end capacity: ``tests/netns.sh python -m bench.e2e_capacity [--seconds 30]``
(``make bench-e2e``).

A local livekit-server, the worker as in production
(``python -m livekit.agents start agent.py``), and
N publishers at 1280x720 30 fps + audio, each in a process of its own (WebRTC
encoding in libwebrtc, as a browser would), all in one room. First the idle worker
tree's PSS; then for N = 1, 2, 4 the frames the recorder received and dropped, the CPU
of the worker's process tree per second of media recorded (the cores one participant
needs, whatever else shares the machine), the tree's peak PSS (smaps_rollup), and the
time from each publisher's first frame to the first real picture in its file.
The publishers send ``testsignal``'s synthetic picture, which libx264 encodes more
cheaply than camera footage (``bench.run`` part 3 uses camera-like frames).
The publishers share the same 2 cores: their VP8 encoding, not the recorder, is what
limits N here.

Then one real browser at a time (headless Chromium with livekit-client, as in
``tests/e2e/test_browser.py``) publishing 1280x720 marker media, VP8 simulcast and
H.264: the same columns, the browser's own CPU apart, and the worker tree's PSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from demo import devserver
from recorder_agent.ops.metrics import tree_cpu
from tests.e2e.browser import browser, page_server

ROOT = Path(__file__).resolve().parent.parent
STOP_WAIT_S = 120  # a worker drains its jobs when told to stop; it must not take longer


def run(n: int, seconds: float, out: Path, worker: subprocess.Popen) -> dict:
    room = f"cap-{n}"
    cpu0, pss = tree_cpu(worker.pid), 0.0
    seen = dict(cpu0)  # pid → CPU seconds, sampled: job processes exit with their room
    pubs = [
        subprocess.Popen(
            [sys.executable, "-m", "demo.publish", room, f"p{i}", str(seconds), "1280", "720"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + seconds + 120
    manifests: list[dict] = []
    while time.monotonic() < deadline:
        seen.update(tree_cpu(worker.pid))
        pss = max(pss, tree_pss_mb(worker.pid))
        manifests = [json.loads(p.read_text()) for p in (out / room).glob("*.json")]
        done = all(p.poll() is not None for p in pubs)
        if done and len(manifests) >= n and all(m["state"] != "recording" for m in manifests):
            break
        time.sleep(0.5)
    started = {}
    for p in pubs:
        line = json.loads(p.communicate()[0].decode().splitlines()[0])
        started[line["identity"]] = line["streaming_utc"]
    cpu = sum(seen.values()) - sum(cpu0.values())
    got = [m["counters"] for m in manifests]
    got_canvas = [m for m in manifests if m.get("canvas")]
    pictured = [m for m in got_canvas if m.get("first_video_s") is not None]
    received = sum(c["video_frames_in"] for c in got)
    dropped = sum(v for c in got for k, v in c["dropped"].items() if k.startswith("video"))
    return {
        "participants": n,
        "recordings": len(manifests),
        "fps_received": received / max(1, n) / seconds,
        "dropped_fraction": dropped / max(1, received),
        "canvas": sorted({"{width}x{height}".format(**m["canvas"]) for m in got_canvas}),
        # CPU per second of media recorded: the cores one participant needs in real time
        "recorder_cores_per_participant": cpu / max(1e-9, sum(c["media_seconds"] for c in got)),
        "worker_pss_mb": pss,
        "first_picture_s": sorted(first_picture_s(m, started) for m in pictured),
    }


def first_picture_s(manifest: dict, started: dict[str, float]) -> float:
    """From the publisher's first frame to the first real picture in its file (s)."""
    start = datetime.fromisoformat(manifest["start_utc"]).timestamp()
    return start + manifest["first_video_s"] - started[manifest["participant"]["identity"]]


def tree_pss_mb(root: int) -> float:
    """Proportional set size of ``root`` and its descendants (MB, smaps_rollup)."""
    total = 0
    for pid in tree_cpu(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            continue
    return total / 1024


def browser_run(codec: str, seconds: float, out: Path, worker: subprocess.Popen) -> dict:
    """One browser publishing 720p ``codec`` into a room of its own for ``seconds``."""
    room = f"browser-{codec}"
    cpu0, pss = tree_cpu(worker.pid), 0.0
    seen = dict(cpu0)
    folder = out / room
    folder.mkdir()
    with page_server() as (base, reports), browser(
        base, reports, folder, url=devserver.URL, token=devserver.token(room, "chromium"),
        seconds=seconds, codec=codec, width=1280, height=720,
    ) as b:  # fmt: skip
        b_cpu, done = 0.0, False
        deadline = time.monotonic() + seconds + 60
        while not done and time.monotonic() < deadline:
            seen.update(tree_cpu(worker.pid))
            pss = max(pss, tree_pss_mb(worker.pid))
            b_cpu = max(b_cpu, sum(tree_cpu(b.proc.pid).values()))
            with contextlib.suppress(queue.Empty):
                done = b.reports.get_nowait().get("event") in ("done", "error")
            time.sleep(0.5)
    manifests: list[dict] = []
    while time.monotonic() < deadline:
        manifests = [json.loads(p.read_text()) for p in (out / room).glob("*.json")]
        if manifests and all(m["state"] != "recording" for m in manifests):
            break
        seen.update(tree_cpu(worker.pid))
        time.sleep(0.5)
    got = [m["counters"] for m in manifests]
    media = sum(c["media_seconds"] for c in got)
    received = sum(c["video_frames_in"] for c in got)
    return {
        "codec": codec,
        "fps_received": received / seconds,
        "dropped": sum(v for c in got for v in c["dropped"].values()),
        "recorder_cores": (sum(seen.values()) - sum(cpu0.values())) / max(1e-9, media),
        "browser_cores": b_cpu / seconds,
        "worker_pss_mb": pss,
    }


@contextlib.contextmanager
def local_worker(out: Path, **env: str) -> Iterator[subprocess.Popen]:
    """A livekit-server and the worker as in production, logging to ``out``, until the
    block ends."""
    server = devserver.start(devserver.find_binary(ROOT), out / "server")
    worker = subprocess.Popen(
        [sys.executable, "-m", "livekit.agents", "start", "agent.py"],
        cwd=ROOT,
        env=devserver.worker_env(out, RECORDER_HTTP_PORT="0", **env),
        stdout=open(out / "worker.log", "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its job processes go with it when it is killed
    )
    try:
        while "registered worker" not in (out / "worker.log").read_text():
            time.sleep(0.2)
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:  # never left running behind the next run
            print(f"worker did not stop {STOP_WAIT_S} s after SIGTERM: killed", file=sys.stderr)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        finally:
            devserver.stop(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with local_worker(out, RECORDER_LOAD_THRESHOLD="2") as worker:
            time.sleep(5)  # prewarmed job processes settle
            print(f"idle worker tree: {tree_pss_mb(worker.pid):.0f} MB PSS\n")
            print(f"1280x720 30 fps publishers in one room, {args.seconds:.0f} s each run\n")
            print(f"{'publishers':>10} {'fps in':>7} {'dropped':>8} {'canvas':>10} "
                  f"{'recorder cores/participant':>27} {'worker PSS MB':>14} "
                  f"{'first picture s (min-max)':>26}")  # fmt: skip
            for n in args.counts:
                r = run(n, args.seconds, out, worker)
                cores = r["recorder_cores_per_participant"]
                first = r["first_picture_s"] or [float("nan")]
                print(f"{n:>10} {r['fps_received']:>7.1f} {r['dropped_fraction']:>7.1%} "
                      f"{','.join(r['canvas']):>10} {cores:>27.2f} "
                      f"{r['worker_pss_mb']:>14.0f} "
                      f"{f'{first[0]:.2f}-{first[-1]:.2f}':>26}")  # fmt: skip
            print(f"\none Chromium at 1280x720, {args.seconds:.0f} s each\n")
            print(f"{'codec':>6} {'fps in':>7} {'dropped':>8} {'recorder cores':>15} "
                  f"{'browser cores':>14} {'worker PSS MB':>14}")  # fmt: skip
            for codec in ("vp8", "h264"):
                r = browser_run(codec, args.seconds, out, worker)
                print(f"{codec:>6} {r['fps_received']:>7.1f} {r['dropped']:>8} "
                      f"{r['recorder_cores']:>15.2f} {r['browser_cores']:>14.2f} "
                      f"{r['worker_pss_mb']:>14.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
