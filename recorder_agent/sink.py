"""The end of the pipeline: where muxed MPEG-TS bytes land.

libavformat hands the sink its output through PyAV's custom I/O (``write``). Sinks
append only whole 188-byte TS packets, so a reader, or a crash, never sees half a
packet, and they fsync on a cadence so that a power loss costs at most that much.

* ``FileSink``: one growing ``.ts`` file.
* ``SegmentSink``: HLS: the same TS stream cut into segment files at keyframes, with
  a live ``EVENT`` playlist replaced atomically as each segment closes.

Closed files are announced through ``on_closed(path, kind)`` (for the uploader).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

TS_PACKET = 188
VIDEO_CLOCK = 90_000
Announce = Callable[[Path, str], None]


def ts_header(pkt: bytes | memoryview) -> tuple[int, bool, int]:
    """(PID, payload unit start, offset of the payload) of one 188-byte TS packet."""
    payload = 4 + (1 + pkt[4] if pkt[3] & 0x20 else 0)
    return ((pkt[1] & 0x1F) << 8) | pkt[2], bool(pkt[1] & 0x40), payload


def pat_pmt_pid(pkt: bytes | memoryview, payload: int) -> int:
    """The PMT PID named by the first program of a PAT packet (one program: ours)."""
    p = payload + 1 + pkt[payload]  # past the pointer field
    return ((pkt[p + 10] & 0x1F) << 8) | pkt[p + 11]


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename. Readers (and a crash)
    see the complete old or the complete new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


class SegmentSink:
    """HLS output: TS segments cut where a keyframe starts, plus ``index.m3u8``.

    The muxer is one continuous TS stream (timestamps and continuity counters run on
    across segments); this sink only chooses where a new file starts: at the PAT/PMT
    that libavformat writes in front of each keyframe (``+resend_headers``), once the
    open segment is ``target_s`` long. The playlist lists closed segments only, so a
    crash loses at most the open one (its file stays on disk, valid up to the crash).

    >>> sink = SegmentSink(folder, target_s=4.0, origin_utc=lambda: start_epoch_s)
    >>> muxer = TsMuxer(sink)     # … write …
    >>> sink.close()              # last segment listed, #EXT-X-ENDLIST
    """

    PLAYLIST = "index.m3u8"

    def __init__(
        self,
        folder: Path,
        target_s: float,
        fsync_interval: float = 1.0,
        origin_utc: Callable[[], float | None] = lambda: None,
        on_closed: Announce | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.PLAYLIST
        self.target = int(target_s * VIDEO_CLOCK)
        # EXTINF rounded may not exceed it; a segment runs up to one repeated frame
        # (1 s while video is stopped) past the target.
        self.target_duration = math.ceil(target_s) + 1
        self._fsync_interval = fsync_interval
        self._origin_utc = origin_utc  # wall time (epoch s) of pts 0
        self._on_closed = on_closed
        self._pending = bytearray()
        self._held = bytearray()  # table packets waiting to see what follows them
        self._pmt_pids: set[int] = set()
        self._file: FileSink | None = None
        self._seq = 0
        self._start_pts: int | None = None  # first video pts of the open segment
        self._last_pts: int | None = None
        self._frame_pts = 3000  # last video pts step seen (for the last EXTINF)
        self.segments: list[tuple[str, float, int]] = []  # (name, seconds, start pts)
        self._closed_bytes = 0
        self._write_playlist(ended=False)

    @property
    def bytes_written(self) -> int:
        return self._closed_bytes + (self._file.bytes_written if self._file else 0)

    def write(self, data: bytes | memoryview) -> int:
        """Whole packets go to the open segment; a write error there is raised (and
        raised again by that segment's ``FileSink`` on the next write)."""
        self._pending += data
        whole = len(self._pending) - len(self._pending) % TS_PACKET
        view = memoryview(self._pending)
        try:
            for off in range(0, whole, TS_PACKET):
                self._packet(view[off : off + TS_PACKET])
        finally:
            view.release()
        del self._pending[:whole]
        self.maybe_fsync()
        return len(data)

    def _packet(self, pkt: memoryview) -> None:
        pid, pusi, payload = ts_header(pkt)
        if pid in (0, 0x11) or pid in self._pmt_pids:
            if pid == 0 and pusi:
                self._pmt_pids.add(pat_pmt_pid(pkt, payload))
            self._held += pkt
            return
        is_video_start = (
            pusi and pkt[payload : payload + 3] == b"\0\0\1" and (pkt[payload + 3] & 0xF0 == 0xE0)
        )
        if is_video_start:
            pts = pes_pts(pkt[payload:])
            if pts is not None:
                keyframe = pkt[3] & 0x20 and pkt[4] and pkt[5] & 0x40  # random access
                if self._start_pts is None:
                    self._start_pts = pts  # the first segment starts with the first frame
                elif keyframe and pts - self._start_pts >= self.target:
                    self._cut(pts)
                if self._last_pts is not None and pts > self._last_pts:
                    self._frame_pts = pts - self._last_pts
                self._last_pts = pts
        if self._file is None:
            self._open_segment()
        assert self._file is not None
        if self._held:
            self._file.write(self._held)
            self._held.clear()
        self._file.write(pkt)

    def _cut(self, pts: int) -> None:
        """Close the open segment (it joins the playlist); the next starts at ``pts``."""
        self._close_segment(next_pts=pts)
        self._open_segment()
        self._start_pts = pts

    def _open_segment(self) -> None:
        path = self.folder / f"seg-{self._seq:05d}.ts"
        self._seq += 1
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        self._file = FileSink(path, self._fsync_interval)

    def _close_segment(self, next_pts: int | None) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        file.close()
        self._closed_bytes += file.bytes_written
        if file.bytes_written == 0:
            file.path.unlink(missing_ok=True)
            return
        start = self._start_pts if self._start_pts is not None else 0
        end = (self._last_pts or start) + self._frame_pts if next_pts is None else next_pts
        self.segments.append((file.path.name, (end - start) / VIDEO_CLOCK, start))
        self._write_playlist(ended=False)
        if self._on_closed:
            self._on_closed(file.path, "segment")
            self._on_closed(self.path, "playlist")

    def _write_playlist(self, ended: bool) -> None:
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            "#EXT-X-PLAYLIST-TYPE:EVENT",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            "#EXT-X-MEDIA-SEQUENCE:0",
        ]
        origin = self._origin_utc()
        for name, seconds, start in self.segments:
            if origin is not None:
                when = datetime.fromtimestamp(origin + start / VIDEO_CLOCK, UTC)
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{when.isoformat(timespec='milliseconds')}")
            lines += [f"#EXTINF:{seconds:.3f},", name]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        write_atomically(self.path, ("\n".join(lines) + "\n").encode())

    def maybe_fsync(self, force: bool = False) -> None:
        if self._file is not None:
            self._file.maybe_fsync(force)

    def close(self) -> None:
        """Close the last segment and end the playlist."""
        if self._held and self._file is not None:
            self._file.write(self._held)
            self._held.clear()
        self._close_segment(next_pts=None)
        self._write_playlist(ended=True)
        if self._on_closed:
            self._on_closed(self.path, "playlist")


def pes_pts(pes: memoryview) -> int | None:
    """The 33-bit PTS of a PES header, if it has one."""
    if len(pes) < 14 or not pes[7] & 0x80:
        return None
    return (
        ((pes[9] >> 1) & 0x07) << 30
        | pes[10] << 22
        | (pes[11] >> 1) << 15
        | pes[12] << 7
        | pes[13] >> 1
    )
