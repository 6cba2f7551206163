"""`make demo`: a local livekit-server, the recorder worker, two synthetic participants.

The worker runs exactly as in production (`python -m livekit.agents start agent.py`, as
`lk agent start` runs it) and is dispatched into the room automatically. Alice
(480x270) and Bob (320x240) publish a camera and a microphone with flash/beep sync
markers for 15 s, each from a process of their own.
While they do, the recordings grow on disk; at the end, `inspect` reports on them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from demo import devserver
from recorder_agent.inspection import format_report, inspect_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "recordings" / "demo"
ROOM = "demo-room"
SECONDS = 15


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}; logs are in {OUT}")
        time.sleep(0.2)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"demo: starting livekit-server (log: {OUT / 'server.log'})")
    server = devserver.start(devserver.find_binary(ROOT), OUT)
    worker_log = OUT / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "livekit.agents", "start", "agent.py"],
        cwd=ROOT,
        env=devserver.worker_env(OUT, RECORDER_HTTP_PORT="0", RECORDER_LOAD_THRESHOLD="2"),
        stdout=open(worker_log, "wb"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
    )
    try:
        command = "python -m livekit.agents start agent.py"
        print(f"demo: starting the worker: {command} (log: {worker_log})")
        wait_for(lambda: "registered worker" in worker_log.read_text(), 60, "the worker")
        print(f"demo: two participants publish for {SECONDS} s into room {ROOM!r}")
        publishers = [
            subprocess.Popen(
                [sys.executable, "-m", "demo.publish", ROOM, name, str(SECONDS), w, h],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, w, h in (("alice", "480", "270"), ("bob", "320", "240"))
        ]
        while any(p.poll() is None for p in publishers):
            time.sleep(3)
            for ts in sorted((OUT / ROOM).glob("*.ts")) if (OUT / ROOM).exists() else []:
                print(f"  growing: {ts.name}  {ts.stat().st_size:>9} bytes")

        def finished() -> bool:
            manifests = [json.loads(p.read_text()) for p in (OUT / ROOM).glob("*.json")]
            return len(manifests) >= 2 and all(m["state"] != "recording" for m in manifests)

        wait_for(finished, 30, "the recordings to be finalized")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        devserver.stop(server)
    print("\nRecordings (python -m recorder_agent inspect):\n")
    newest = sorted((OUT / ROOM).glob("*.ts"), key=lambda p: p.stat().st_mtime)[-2:]
    reports = [inspect_file(p) for p in newest]
    print("\n\n".join(format_report(r) for r in reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
