"""Small pieces every stage shares: media clocks, atomic file replacement, times.

They live here, not in a stage, so that a stage never imports another stage only for
a helper (the manifest, the uploader and the metrics all write files atomically).
"""

from __future__ import annotations

import contextlib
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


class MachineCpu:
    """The share of the machine's CPU time that was busy over the last second or two,
    from ``/proc/stat`` (None where there is none). One per process, read at most twice
    a second whatever the number of recordings asking. Steal counts as busy: a VM cannot
    use what its host took."""

    WINDOW_S = 1.0
    REFRESH_S = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[tuple[float, int, int]] = []  # (monotonic s, busy, total)
        self._share: float | None = None

    def share(self) -> float | None:
        now = time.monotonic()
        with self._lock:
            if self._samples and now - self._samples[-1][0] < self.REFRESH_S:
                return self._share
            try:
                with open("/proc/stat") as f:
                    fields = [int(x) for x in f.readline().split()[1:9]]  # to steal
            except (OSError, ValueError):
                return None
            idle = sum(fields[3:5])  # idle, iowait
            self._samples.append((now, sum(fields) - idle, sum(fields)))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW_S:
                self._samples.pop(0)
            (_, busy0, total0), (_, busy1, total1) = self._samples[0], self._samples[-1]
            if total1 > total0:
                self._share = (busy1 - busy0) / (total1 - total0)
            return self._share


machine_cpu = MachineCpu()
