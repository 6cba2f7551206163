"""Small pieces every stage shares: media clocks, atomic file replacement, times.

They live here, not in a stage, so that a stage never imports another stage only for
a helper (the manifest, the uploader and the metrics all write files atomically).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

VIDEO_CLOCK = 90_000  # MPEG-TS ticks per second
AAC_FRAME = 1024  # samples per AAC-LC frame


class BadFrame(ValueError):
    """An input the recording cannot take. ``reason`` is a short key for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def printable(text: str) -> str:
    r"""``text`` for a log line: control characters (newlines, terminal escapes) escaped,
    everything else kept. Room names and identities come from clients.

    >>> printable("eve\nINFO forged line")
    'eve\\nINFO forged line'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def redact(url: str) -> str:
    """``url`` as scheme://host[:port]/path, without userinfo, query or fragment: what
    may be logged or sent of a URL that can carry credentials.

    >>> redact("https://user:pw@hooks.example:8443/in?token=s3cret")
    'https://hooks.example:8443/in'
    """
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def monotonic_us() -> int:
    """The clock of LiveKit's ``VideoFrameEvent.timestamp_us`` (CLOCK_MONOTONIC)."""
    return time.monotonic_ns() // 1000


def utc_iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC, to the millisecond."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename. Readers (and a crash)
    see the complete old or the complete new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread (and the threads it starts, which inherit it) yield to
    the SDK's real-time threads. Under CPU load WebRTC's 10 ms audio pump otherwise
    falls behind and audio reaches us ~40 ms late against video (measured)."""
    if nice and sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas, in this process and the processes it starts. glibc
    gives each thread that allocates an arena of its own; a recording has two threads,
    and their arenas cost ~9 MB of RSS per recording (bench/alternatives.py)."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(arenas))  # read at a child's start
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX, this process


def cpu_limit(cpu_max: str | None, cfs_quota: str | None, cfs_period: str | None) -> float | None:
    """Cores a cgroup may use, from the text of cgroup v2's ``cpu.max`` or v1's
    ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``; None where unlimited.

    >>> cpu_limit("150000 100000", None, None), cpu_limit("max 100000", None, None)
    (1.5, None)
    """
    try:
        if cpu_max is not None:
            quota, _, period = cpu_max.strip().partition(" ")
            return None if quota == "max" else int(quota) / int(period or 100_000)
        if cfs_quota is not None and cfs_period is not None:
            q, p = int(cfs_quota), int(cfs_period)
            return q / p if q > 0 and p > 0 else None
    except ValueError:
        return None
    return None


_CGROUP = "/sys/fs/cgroup"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def own_cgroups(proc_self_cgroup: str) -> dict[str, str]:
    """This process's cgroup per controller ("" for cgroup v2), from the text of
    ``/proc/self/cgroup``.

    >>> own_cgroups("0::/jobs/a\\n4:cpu,cpuacct:/b\\n")
    {'': '/jobs/a', 'cpu': '/b', 'cpuacct': '/b'}
    """
    found: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                found[controller] = parts[2].strip()
    return found


@functools.cache
def _own_cgroups() -> dict[str, str]:
    """Read once: a process does not move between cgroups here."""
    return own_cgroups(_read("/proc/self/cgroup") or "")


def _cgroup_file(controller: str, name: str) -> str | None:
    """A cgroup file of this process: in its own cgroup's folder, else at the mount's
    root (inside a container that is the container's own cgroup)."""
    mount = f"{_CGROUP}/{controller}" if controller else _CGROUP
    own = _own_cgroups().get(controller, "/")
    for folder in (mount + own.rstrip("/"), mount):
        if (text := _read(f"{folder}/{name}")) is not None:
            return text
    return None


def _cgroup_limit() -> float | None:
    return cpu_limit(
        _cgroup_file("", "cpu.max"),
        _cgroup_file("cpu", "cpu.cfs_quota_us"),
        _cgroup_file("cpu", "cpu.cfs_period_us"),
    )


def available_cores() -> float:
    """The cores this process can have: its cgroup's CPU limit (a container's
    ``--cpus``) or the CPUs it may run on (``--cpuset-cpus``), whichever is fewer.
    ``os.cpu_count()`` is the host's count inside a container."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = _cgroup_limit()
    return min(limit, float(cpus or 1)) if limit else float(cpus or 1)


def _cgroup_usage_s() -> float | None:
    """CPU seconds the process's cgroup has used (v2 ``cpu.stat``, v1 ``cpuacct``)."""
    if (stat := _cgroup_file("", "cpu.stat")) is not None:
        for line in stat.splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
    if (ns := _cgroup_file("cpuacct", "cpuacct.usage")) is not None:
        return int(ns) / 1e9
    return None


def _proc_stat_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of the whole machine. Steal counts as busy: a VM cannot
    use what its host took."""
    line = _read("/proc/stat")
    if not line:
        return None
    fields = [int(x) for x in line.split("\n", 1)[0].split()[1:9]]  # to steal
    idle = sum(fields[3:5])  # idle, iowait
    return float(sum(fields) - idle), float(sum(fields))


class MachineCpu:
    """The share of the CPU this process can have that was busy over the last second or
    two (None where unknown). One per process, read at most twice a second whatever the
    number of recordings asking.

    Inside a cgroup with a CPU limit (a container's ``--cpus``) that is the cgroup's
    usage over its limit; ``/proc/stat`` there shows the host. Elsewhere it is the
    whole machine, from ``/proc/stat``."""

    WINDOW_S = 1.0
    REFRESH_S = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float, float]] = []  # (monotonic s, busy, total)
        self._share: float | None = None
        self._limit = _cgroup_limit()

    def _reading(self, now: float) -> tuple[float, float] | None:
        if self._limit is not None and (used := _cgroup_usage_s()) is not None:
            return used, now * self._limit
        return _proc_stat_busy()

    def share(self) -> float | None:
        now = time.monotonic()
        with self._lock:
            if self._samples and now - self._samples[-1][0] < self.REFRESH_S:
                return self._share
            try:
                reading = self._reading(now)
            except ValueError:
                reading = None
            if reading is None:
                return None
            self._samples.append((now, *reading))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW_S:
                self._samples.pop(0)
            (_, busy0, total0), (_, busy1, total1) = self._samples[0], self._samples[-1]
            if total1 > total0:
                self._share = min(1.0, max(0.0, (busy1 - busy0) / (total1 - total0)))
            return self._share


machine_cpu = MachineCpu()
