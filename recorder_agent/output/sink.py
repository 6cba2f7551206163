"""The end of the pipeline: where muxed MPEG-TS bytes land.

libavformat hands a sink its output through PyAV's custom I/O (``write``). A sink
appends only whole 188-byte TS packets, so a reader, or a crash, never sees half a
packet, and it fsyncs on a cadence so that a power loss costs at most that much.

Writes come from whichever thread muxes (the x264 thread, the recording's thread);
the periodic fsync from the recording's thread. One lock per sink keeps them apart.

While a recording is being written its file (or HLS folder) carries an exclusive
``flock``: the kernel drops it when the process dies, so a worker starting on the same
disk tells a crashed recording (no lock) from one still being written (locked).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from .tsparse import split_whole


class SinkError(OSError):
    """Writing the recording failed; the bytes already on disk are still valid TS."""


class Sink(Protocol):
    """What the muxer writes into."""

    bytes_written: int

    def write(self, data: bytes | memoryview) -> int: ...

    def maybe_fsync(self, force: bool = False) -> None: ...

    def close(self) -> None: ...


def hold_writer_lock(fd: int) -> None:
    """Mark the open file or folder ``fd`` as being written by this process."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def being_written(path: Path) -> bool:
    """Whether a live process holds the writer lock of ``path`` (see the module doc)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class FileSink:
    """Append-only TS file. ``write`` is called by libavformat from the muxing thread.

    >>> sink = FileSink(path, fsync_interval=1.0)   # path already created (naming.py)
    >>> container = av.open(sink, "w", format="mpegts")
    """

    def __init__(self, path: Path, fsync_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.bytes_written = 0
        self._fsync_interval = fsync_interval
        # No O_CREAT/O_TRUNC: the file was claimed by naming.claim_recording_path.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            hold_writer_lock(self._fd)
        except OSError:
            os.close(self._fd)
            raise
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._last_fsync = time.monotonic()
        self._dirty = False
        self.error: SinkError | None = None

    def write(self, data: bytes | memoryview) -> int:
        """Take bytes from the muxer; write out every complete TS packet now."""
        with self._lock:
            if self.error is not None:
                raise self.error
            self._pending += data
            whole, self._pending = split_whole(self._pending)
            if whole:
                self._write_all(memoryview(whole))
            self._fsync_if_due(False)
        return len(data)

    def maybe_fsync(self, force: bool = False) -> None:
        """fsync when the cadence is due (or ``force``); a no-op when nothing is new."""
        with self._lock:
            self._fsync_if_due(force)

    def close(self) -> None:
        """Flush, fsync and close. A trailing partial packet (never expected) is dropped."""
        with self._lock:
            if self._fd is None:
                return
            try:
                if self.error is None:
                    self._fsync_if_due(True)
            finally:
                os.close(self._fd)  # releases the writer lock
                self._fd = None

    def _fsync_if_due(self, force: bool) -> None:
        if self._fd is None or not self._dirty:
            return
        now = time.monotonic()
        if force or now - self._last_fsync >= self._fsync_interval:
            try:
                os.fsync(self._fd)
            except OSError as e:
                self._fail(e)
            self._last_fsync = now
            self._dirty = False

    def _write_all(self, view: memoryview) -> None:
        assert self._fd is not None
        start = self.bytes_written
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self.bytes_written += n
                self._dirty = True
        except OSError as e:
            # A write is all or nothing: a short write before the error would leave part
            # of a frame (a player's decode error), so the file goes back to before it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
                self.bytes_written = start
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        self.error = SinkError(e.errno, f"cannot write recording: {e.strerror}", str(self.path))
        raise self.error from e
