"""What the benchmarks measure with: process CPU time, RSS, and one benchmark run in a
fresh interpreter (so that its peak RSS and CPU counters are its own)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any


def cpu_s(children: bool = False) -> float:
    """CPU seconds (user + system) of this process, plus its waited-for children."""
    whos = [resource.RUSAGE_SELF] + ([resource.RUSAGE_CHILDREN] if children else [])
    return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, whos))


def machine_ticks() -> tuple[int, int]:
    """(all CPU ticks, stolen ticks) of the machine so far, from /proc/stat: a VM's
    neighbours take time from it (steal), which changes what the machine can do."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return sum(ticks), ticks[7] if len(ticks) > 7 else 0


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process now, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_module(
    module: str, *args: object, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``python -m module args`` in a fresh interpreter: the JSON of its last output
    line, or ``{"error": ...}`` when it failed."""
    out = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        return {"error": (out.stderr or "")[-300:] or f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])
