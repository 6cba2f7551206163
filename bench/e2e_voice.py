"""Voice-AI rooms end to end: ``tests/netns.sh python -m bench.e2e_voice`` (part of
``make bench-e2e``).

A local livekit-server and the worker as in production (``python -m livekit.agents
start agent.py``, defaults). First the idle worker tree's PSS; then, for each count,
that many rooms of two audio-only participants (a caller and an agent), all published
from one process (``demo.voices``) for ``--seconds``. It reports the recordings made,
the worker tree's CPU per participant (cores: CPU seconds per second of media), its
peak PSS, and the publishing process's CPU apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recorder_agent.ops.metrics import tree_cpu

from .e2e_capacity import local_worker, tree_pss_mb

ROOT = Path(__file__).resolve().parent.parent


def voice_rooms(rooms: int, seconds: float, out: Path, worker: subprocess.Popen) -> dict:
    """``rooms`` rooms of two voices each, published from one process."""
    prefix = f"voice{rooms}"
    cpu0 = tree_cpu(worker.pid)
    seen, pss = dict(cpu0), 0.0
    pubs = subprocess.Popen(
        [sys.executable, "-m", "demo.voices", prefix, str(rooms), "2", str(seconds)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    pub_cpu = 0.0
    deadline = time.monotonic() + seconds + 120
    manifests: list[dict] = []
    while time.monotonic() < deadline:
        seen.update(tree_cpu(worker.pid))
        pss = max(pss, tree_pss_mb(worker.pid))
        if pubs.poll() is None:
            pub_cpu = max(pub_cpu, sum(tree_cpu(pubs.pid).values()))
        paths = [p for r in range(1, rooms + 1) for p in (out / f"{prefix}-{r}").glob("*.json")]
        manifests = [json.loads(p.read_text()) for p in paths]
        finished = [m for m in manifests if m["state"] != "recording"]
        if pubs.poll() is not None and len(finished) >= 2 * rooms:
            break
        time.sleep(0.5)
    report = json.loads(pubs.stdout.read() or b"{}") if pubs.stdout else {}
    media = sum(m["counters"]["media_seconds"] for m in manifests)
    return {
        "rooms": rooms,
        "recordings": len(manifests),
        "published": len(report.get("joined_at", {})),
        "recorder_cores_per_participant": (sum(seen.values()) - sum(cpu0.values()))
        / max(1e-9, media),
        "publisher_cores": pub_cpu / seconds,
        "worker_pss_mb": pss,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rooms", type=int, nargs="+", default=[10, 25])
    parser.add_argument("--keep", type=Path, help="a folder for logs and files, kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        with local_worker(out) as worker:
            time.sleep(10)  # idle processes warmed, imports done
            print(f"idle worker tree: {tree_pss_mb(worker.pid):.0f} MB PSS\n")
            print(f"{'rooms':>5} {'recordings':>10} {'recorder cores/participant':>27} "
                  f"{'worker PSS MB':>14} {'publisher cores':>16}")  # fmt: skip
            for rooms in args.rooms:
                r = voice_rooms(rooms, args.seconds, out, worker)
                print(f"{rooms:>5} {r['recordings']:>7}/{2 * rooms:<2} "
                      f"{r['recorder_cores_per_participant']:>27.3f} "
                      f"{r['worker_pss_mb']:>14.0f} {r['publisher_cores']:>16.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
