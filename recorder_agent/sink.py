"""The end of the pipeline: where muxed MPEG-TS bytes land.

libavformat hands the sink its output through PyAV's custom I/O (``write``). The sink
appends only whole 188-byte TS packets, so a reader, or a crash, never sees half a
packet, and it fsyncs on a cadence so that a power loss costs at most that much.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

TS_PACKET = 188


class SinkError(OSError):
    """Writing the recording failed; the bytes already on disk are still valid TS."""


class FileSink:
    """Append-only TS file. ``write`` is called by libavformat from the encoder thread.

    >>> sink = FileSink(path, fsync_interval=1.0)   # path already created (naming.py)
    >>> container = av.open(sink, "w", format="mpegts")
    """

    def __init__(self, path: Path, fsync_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.bytes_written = 0
        self._fsync_interval = fsync_interval
        # No O_CREAT/O_TRUNC: the file was claimed by naming.claim_recording_path.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._pending = bytearray()
        self._last_fsync = time.monotonic()
        self._dirty = False
        self.error: SinkError | None = None

    def write(self, data: bytes | memoryview) -> int:
        """Take bytes from the muxer; write out every complete TS packet now."""
        if self.error is not None:
            raise self.error
        self._pending += data
        whole = len(self._pending) - len(self._pending) % TS_PACKET
        if whole:
            self._write_all(memoryview(self._pending)[:whole])
            del self._pending[:whole]
        self.maybe_fsync()
        return len(data)

    def maybe_fsync(self, force: bool = False) -> None:
        """fsync when the cadence is due (or ``force``); a no-op when nothing is new."""
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

    def close(self) -> None:
        """Flush, fsync and close. A trailing partial packet (never expected) is dropped."""
        if self._fd is None:
            return
        try:
            if self.error is None:
                self.maybe_fsync(force=True)
        finally:
            os.close(self._fd)
            self._fd = None

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
            # A short write before the error would leave half a TS packet: cut it off.
            committed = start + (self.bytes_written - start) // TS_PACKET * TS_PACKET
            try:
                os.ftruncate(self._fd, committed)
                self.bytes_written = committed
            except OSError:
                pass
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        self.error = SinkError(e.errno, f"cannot write recording: {e.strerror}", str(self.path))
        raise self.error from e
