"""HLS output: the TS stream cut into segment files at keyframes, with a live
``EVENT`` playlist replaced atomically as each segment closes.

The playlist lists closed segments only, so a crash loses at most the open one from
the playlist, and never from disk: its file stays valid up to the crash, and
``repair_playlist`` lists it and ends the playlist when a worker starts again.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..util import VIDEO_CLOCK, write_atomically
from .sink import FileSink, hold_writer_lock
from .tsparse import (
    TS_PACKET,
    is_random_access,
    pat_pmt_pid,
    pes_pts,
    pes_timestamps,
    split_whole,
    ts_header,
    unwrap_pts,
    video_pes_start,
)

PLAYLIST = "index.m3u8"
SEGMENT_GLOB = "seg-*.ts"
_FRAME_PTS = 3000  # one frame at 30 fps: the last segment's tail when nothing follows


@dataclass(frozen=True)
class Segment:
    name: str
    seconds: float
    start_pts: int


def render_playlist(
    segments: list[Segment], target_duration: int, origin_utc: float | None, ended: bool
) -> str:
    """The playlist text. ``origin_utc`` (epoch s of pts 0) adds PROGRAM-DATE-TIME.

    >>> print(render_playlist([Segment("seg-00000.ts", 4.0, 0)], 5, None, True))
    ... # doctest: +ELLIPSIS
    #EXTM3U
    ...
    #EXTINF:4.000,
    seg-00000.ts
    #EXT-X-ENDLIST
    <BLANKLINE>
    """
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        "#EXT-X-MEDIA-SEQUENCE:0",
    ]
    for seg in segments:
        if origin_utc is not None:
            when = datetime.fromtimestamp(origin_utc + seg.start_pts / VIDEO_CLOCK, UTC)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{when.isoformat(timespec='milliseconds')}")
        lines += [f"#EXTINF:{seg.seconds:.3f},", seg.name]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def target_duration(segment_s: float) -> int:
    """EXT-X-TARGETDURATION for a segment length: a segment runs up to one repeated
    frame (1 s while video is stopped) past its target."""
    return math.ceil(segment_s) + 1


class SegmentSink:
    """TS segments cut where a keyframe starts, plus ``index.m3u8``.

    The muxer is one continuous TS stream (timestamps and continuity counters run on
    across segments); this sink only chooses where a new file starts: at the PAT/PMT
    that libavformat writes in front of each keyframe (``+resend_headers``), once the
    open segment is ``target_s`` long. Closed files wait in ``take_finished`` for the
    owner (the uploader's queue); nothing here calls back up.

    >>> sink = SegmentSink(folder, target_s=4.0)
    >>> sink.origin_utc = start_epoch_s     # before the first write
    >>> muxer = TsMuxer(sink)               # … write …
    >>> sink.close()                        # last segment listed, #EXT-X-ENDLIST
    """

    def __init__(self, folder: Path, target_s: float, fsync_interval: float = 1.0) -> None:
        self.folder = Path(folder)
        self.path = self.folder / PLAYLIST
        self.origin_utc: float | None = None  # wall time (epoch s) of pts 0
        self.target = int(target_s * VIDEO_CLOCK)
        self.target_duration = target_duration(target_s)
        self._fsync_interval = fsync_interval
        self._folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        hold_writer_lock(self._folder_fd)
        self._lock = threading.Lock()  # the open segment and the finished list
        self._pending = bytearray()
        self._held = bytearray()  # table packets waiting to see what follows them
        self._out = bytearray()  # packets of this write() for the open segment
        self._pmt_pids: set[int] = set()
        self._file: FileSink | None = None
        self._seq = 0
        # Video pts of the open segment's first frame, and the last one: unwrapped,
        # so that segments are cut and dated right after the 33 bits wrap (26.5 h).
        self._start_pts: int | None = None
        self._last_pts: int | None = None
        self._frame_pts = _FRAME_PTS  # last video pts step seen (for the last EXTINF)
        self.segments: list[Segment] = []
        self._finished: list[tuple[Path, str]] = []
        self._closed_bytes = 0
        self._write_playlist(ended=False)

    @property
    def bytes_written(self) -> int:
        with self._lock:  # the x264 thread may be closing the open segment
            return self._closed_bytes + (self._file.bytes_written if self._file else 0)

    def take_finished(self) -> list[tuple[Path, str]]:
        """Files completed since the last call, as (path, kind), oldest first."""
        with self._lock:
            out, self._finished = self._finished, []
        return out

    def write(self, data: bytes | memoryview) -> int:
        """Whole packets go to the open segment; a write error there is raised (and
        raised again by that segment's ``FileSink`` on the next write)."""
        with self._lock:
            self._pending += data
            whole, self._pending = split_whole(self._pending)
            view = memoryview(whole)
            for off in range(0, len(whole), TS_PACKET):
                self._packet(view[off : off + TS_PACKET])
            self._flush_out()
        return len(data)

    def _flush_out(self) -> None:
        """Hand the open segment what this write brought, in one write: a failed write
        then takes the whole frame back, never part of it (sink.py)."""
        if self._out and self._file is not None:
            out, self._out = bytes(self._out), bytearray()
            self._file.write(out)

    def maybe_fsync(self, force: bool = False) -> None:
        with self._lock:
            if self._file is not None:
                self._file.maybe_fsync(force)

    def close(self) -> None:
        """Close the last segment and end the playlist, listing what was written (after
        a write error too: the open segment is valid up to its last whole frame)."""
        with self._lock:
            try:
                if self._held and self._file is not None and self._file.error is None:
                    self._file.write(self._held)
            finally:
                self._held.clear()
                try:
                    self._close_segment(next_pts=None)
                    self._write_playlist(ended=True)
                    self._finished.append((self.path, "playlist"))
                finally:
                    os.close(self._folder_fd)  # releases the writer lock

    def _packet(self, pkt: memoryview) -> None:
        pid, pusi, payload = ts_header(pkt)
        if pid in (0, 0x11) or pid in self._pmt_pids:
            if pid == 0 and pusi:
                self._pmt_pids.add(pat_pmt_pid(pkt, payload))
            self._held += pkt
            return
        if video_pes_start(pkt, pusi, payload):
            pts = pes_pts(pkt[payload:])
            if pts is not None:
                if self._last_pts is not None:  # past 26.5 hours, on from 2^33
                    pts = unwrap_pts(pts, self._last_pts)
                if self._start_pts is None:
                    self._start_pts = pts  # the first segment starts with the first frame
                elif is_random_access(pkt) and pts - self._start_pts >= self.target:
                    self._close_segment(next_pts=pts)
                    self._start_pts = pts
                if self._last_pts is not None and pts > self._last_pts:
                    self._frame_pts = pts - self._last_pts
                self._last_pts = pts
        if self._file is None:
            self._open_segment()
        self._out += self._held
        self._held.clear()
        self._out += pkt

    def _open_segment(self) -> None:
        path = self.folder / f"seg-{self._seq:05d}.ts"
        self._seq += 1
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        self._file = FileSink(path, self._fsync_interval)

    def _close_segment(self, next_pts: int | None) -> None:
        if self._file is None:
            return
        file = self._file
        try:
            if file.error is None:
                self._flush_out()
        finally:
            self._file = None
            self._out.clear()
            self._close_file(file, next_pts)

    def _close_file(self, file: FileSink, next_pts: int | None) -> None:
        try:
            file.close()
        finally:
            self._closed_bytes += file.bytes_written
            if file.bytes_written == 0:
                file.path.unlink(missing_ok=True)
            else:
                start = self._start_pts if self._start_pts is not None else 0
                end = (self._last_pts or start) + self._frame_pts if next_pts is None else next_pts
                self.segments.append(Segment(file.path.name, (end - start) / VIDEO_CLOCK, start))
                self._finished.append((file.path, "segment"))
                if next_pts is not None:
                    self._write_playlist(ended=False)
                    self._finished.append((self.path, "playlist"))

    def _write_playlist(self, ended: bool) -> None:
        text = render_playlist(self.segments, self.target_duration, self.origin_utc, ended)
        write_atomically(self.path, text.encode())


_HEAD_BYTES = 64 * TS_PACKET


def _read_whole_packets(path: Path, limit: int | None) -> bytes:
    with open(path, "rb") as f:
        data = f.read() if limit is None else f.read(limit)
    return data[: len(data) - len(data) % TS_PACKET]


def listed_segments(playlist: Path) -> list[tuple[str, float]]:
    """(name, seconds) of the segments a playlist lists (none if it is unreadable)."""
    try:
        lines = playlist.read_text().splitlines()
    except OSError:
        return []
    out, seconds = [], None
    for line in lines:
        if line.startswith("#EXTINF:"):
            seconds = float(line.removeprefix("#EXTINF:").split(",")[0])
        elif line and not line.startswith("#") and seconds is not None:
            out.append((line, seconds))
            seconds = None
    return out


def repair_playlist(
    folder: Path, segment_s: float, origin_utc: float | None
) -> tuple[int | None, list[Path]]:
    """End the playlist of an HLS recording that a crash left open: keep what it listed
    (segments already uploaded and deleted locally included), add every later segment
    file with media in it (the last one valid up to its last whole packet) and
    ``#EXT-X-ENDLIST``. Returns the last pts (90 kHz; None without media) and the
    segment files that the playlist did not list before."""
    folder = Path(folder)
    listed = listed_segments(folder / PLAYLIST)
    segments: list[Segment] = []
    start: int | None = None  # where the next segment starts; unwrapped (see unwrap_pts)
    for name, seconds in listed:
        head = folder / name
        first = pes_timestamps(_read_whole_packets(head, _HEAD_BYTES))[0] if head.exists() else None
        if first is not None:
            start = first if start is None else unwrap_pts(first, start)
        start = start or 0
        segments.append(Segment(name, seconds, start))
        start += round(seconds * VIDEO_CLOCK)
    known = {name for name, _ in listed}
    last = start
    added: list[Path] = []
    paths = [p for p in sorted(folder.glob(SEGMENT_GLOB)) if p.name not in known]
    for path in paths:
        # A segment's first timestamp is in its head; its last matters only for the
        # last segment (hours of recording: no need to read every byte).
        first, end = pes_timestamps(_read_whole_packets(path, _HEAD_BYTES))
        if path == paths[-1]:
            end = pes_timestamps(_read_whole_packets(path, None))[1]
        if first is None or end is None:
            continue
        shift = 0 if last is None else unwrap_pts(first, last) - first
        first, end = first + shift, end + shift
        if added:  # an unlisted segment before this one ends where this one starts
            prev = segments[-1]
            segments[-1] = Segment(
                prev.name, (first - prev.start_pts) / VIDEO_CLOCK, prev.start_pts
            )
        segments.append(Segment(path.name, (end + _FRAME_PTS - first) / VIDEO_CLOCK, first))
        added.append(path)
        last = end if last is None else max(last, end)
    text = render_playlist(segments, target_duration(segment_s), origin_utc, ended=True)
    write_atomically(folder / PLAYLIST, text.encode())
    return last, added
