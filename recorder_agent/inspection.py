"""``python -m recorder_agent inspect``: is this a valid recording, and what is in it?

Decodes the whole file with PyAV. Reports container, streams, duration, size, gaps,
decode errors and, where the content carries sync markers (a white flash in the
picture and a tone burst in the sound at the same instant), the A/V offset.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from .output.tsparse import TS_PACKET

EXPECTED = {"video": "h264", "audio": "aac"}
FLASH_LUMA = 180  # mean Y above this is a flash
DARK_LUMA = 100  # and it must rise from below this
BEEP_RMS = 0.2  # a 2 ms window above this (full scale 1.0) is a beep
QUIET_RMS = 0.02  # rising from below this
MARKER_PAIRING_S = 0.5


@dataclass
class StreamReport:
    type: str
    codec: str
    packets: int = 0
    frames: int = 0
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float = 0.0
    gaps: list[dict[str, float]] = field(default_factory=list)
    non_monotonic: int = 0


@dataclass
class FileReport:
    path: str
    size_bytes: int = 0
    container: str | None = None
    duration_s: float = 0.0
    streams: list[StreamReport] = field(default_factory=list)
    decode_errors: int = 0
    flashes_s: list[float] = field(default_factory=list)
    beeps_s: list[float] = field(default_factory=list)
    av_offsets_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def av_offset_ms(self) -> float | None:
        """Median audio-minus-video offset over the paired markers."""
        return float(np.median(self.av_offsets_ms)) if self.av_offsets_ms else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "av_offset_ms": self.av_offset_ms}


def _edges(times: list[float], values: list[float], high: float, low: float) -> list[float]:
    """Instants where ``values`` rise above ``high`` after having been below ``low``."""
    out, armed = [], True
    for t, v in zip(times, values, strict=True):
        if armed and v > high:
            out.append(t)
            armed = False
        elif v < low:
            armed = True
    return out


def _pair(flashes: list[float], beeps: list[float]) -> list[float]:
    offsets = []
    for f in flashes:
        nearest = min(beeps, key=lambda b: abs(b - f), default=None)
        if nearest is not None and abs(nearest - f) <= MARKER_PAIRING_S:
            offsets.append(round((nearest - f) * 1000, 2))
    return offsets


def _video_luma(frame: av.VideoFrame) -> float:
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return float(rows[: frame.height, : frame.width].mean())


def _audio_windows(frame: av.AudioFrame, t0: float) -> tuple[list[float], list[float]]:
    samples = frame.to_ndarray().astype(np.float32)
    if samples.ndim == 2 and frame.format.is_planar:
        samples = samples.mean(axis=0)
    samples = samples.reshape(-1)
    if frame.format.name.startswith("s16"):
        samples /= 32768.0
    win = max(1, frame.sample_rate // 500)  # 2 ms
    times, levels = [], []
    for i in range(0, len(samples) - win + 1, win):
        times.append(t0 + i / frame.sample_rate)
        levels.append(float(np.sqrt(np.mean(samples[i : i + win] ** 2))))
    return times, levels


def _gap_threshold(kind: str) -> float:
    # Video is repeated at least once a second during stops; audio is continuous.
    return 1.5 if kind == "video" else 0.1


def looks_like_ts(path: str | Path, packets: int = 64) -> bool:
    """True when the file starts with whole 188-byte packets, each with the 0x47 sync."""
    with open(path, "rb") as f:
        head = f.read(TS_PACKET * packets)
    whole = len(head) - len(head) % TS_PACKET
    return whole > 0 and all(head[i] == 0x47 for i in range(0, whole, TS_PACKET))


class _Segments(io.RawIOBase):
    """The segments an HLS playlist lists, read back to back: our segments are cuts of
    one continuous TS stream. (FFmpeg's hls demuxer would wait for more segments of a
    playlist without #EXT-X-ENDLIST, as for a live stream.)"""

    def __init__(self, playlist: Path) -> None:
        names = [x for x in playlist.read_text().splitlines() if x and not x.startswith("#")]
        self.paths = [playlist.parent / n for n in names]
        self.size = sum(p.stat().st_size for p in self.paths)
        self._files = iter(self.paths)
        self._current: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self._current is None:
                nxt = next(self._files, None)
                if nxt is None:
                    return 0
                self._current = open(nxt, "rb")  # noqa: SIM115 - closed at its end
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None


def inspect_file(path: str | Path) -> FileReport:
    """Decode ``path`` (a .ts file, or an HLS playlist of ours) completely and report on
    it; never raises for a bad file."""
    report = FileReport(path=str(path))
    try:
        if str(path).endswith(".m3u8"):
            segments = _Segments(Path(path))
            report.size_bytes = segments.size
            container = av.open(segments, format="mpegts")
        else:
            report.size_bytes = os.path.getsize(path)
            # A recording of a few packets can out-score MPEG-TS in FFmpeg's format probe
            # (MPEG-PS sees the PES start codes): trust the 188-byte sync pattern instead.
            container = av.open(str(path), format="mpegts" if looks_like_ts(path) else None)
    except (OSError, av.FFmpegError) as e:
        report.problems.append(f"cannot open: {e}")
        return report
    with container:
        report.container = container.format.name
        if report.container != "mpegts":
            report.problems.append(f"container is {report.container!r}, not mpegts")
        streams = {s.index: StreamReport(s.type, s.codec_context.name) for s in container.streams}
        report.streams = list(streams.values())
        last_end: dict[int, float] = {}
        luma_t, luma, level_t, level = [], [], [], []
        for packet in container.demux():
            st = streams[packet.stream.index]
            if packet.pts is None or packet.stream.type not in EXPECTED:
                continue
            st.packets += 1
            t = float(packet.pts * packet.time_base)
            dur = float((packet.duration or 0) * packet.time_base)
            prev = last_end.get(packet.stream.index)
            if prev is not None:
                if t + 1e-6 < prev - dur:
                    st.non_monotonic += 1
                elif t - prev > _gap_threshold(st.type):
                    st.gaps.append({"at_s": round(prev, 3), "duration_s": round(t - prev, 3)})
            st.start_s = t if st.start_s is None else min(st.start_s, t)
            st.end_s = max(st.end_s or t, t + dur)
            last_end[packet.stream.index] = t + dur
            try:
                for frame in packet.decode():
                    st.frames += 1
                    ft = float(frame.pts * frame.time_base) if frame.pts is not None else t
                    if st.type == "video":
                        luma_t.append(ft)
                        luma.append(_video_luma(frame))
                    else:
                        times, levels = _audio_windows(frame, ft)
                        level_t += times
                        level += levels
            except av.FFmpegError:
                report.decode_errors += 1
    for st in report.streams:
        if st.start_s is not None and st.end_s is not None:
            st.duration_s = round(st.end_s - st.start_s, 4)
    starts = [s.start_s for s in report.streams if s.start_s is not None]
    ends = [s.end_s for s in report.streams if s.end_s is not None]
    report.duration_s = round(max(ends) - min(starts), 4) if starts else 0.0
    report.flashes_s = [round(t, 4) for t in _edges(luma_t, luma, FLASH_LUMA, DARK_LUMA)]
    report.beeps_s = [round(t, 4) for t in _edges(level_t, level, BEEP_RMS, QUIET_RMS)]
    report.av_offsets_ms = _pair(report.flashes_s, report.beeps_s)
    for kind, codec in EXPECTED.items():
        found = [s for s in report.streams if s.type == kind]
        if not found and kind == "video" and report.streams:
            continue  # an audio-only recording: a participant who published no video
        if not found or found[0].codec != codec:
            report.problems.append(f"no {codec} {kind} stream")
        elif found[0].frames == 0:
            report.problems.append(f"{kind} stream has no decodable frames")
    if report.decode_errors:
        report.problems.append(f"{report.decode_errors} decode errors")
    if any(s.non_monotonic for s in report.streams):
        report.problems.append("timestamps go backwards")
    return report


def format_report(r: FileReport) -> str:
    lines = [
        f"{r.path}: {'OK' if r.ok else 'INVALID'}",
        f"  container  {r.container}   size {r.size_bytes} bytes   duration {r.duration_s:.3f} s",
    ]
    for s in r.streams:
        lines.append(
            f"  {s.type:<6} {s.codec:<6} {s.frames} frames in {s.packets} packets, "
            f"{s.duration_s:.3f} s from {s.start_s if s.start_s is not None else math.nan:.3f} s"
            + (f", {len(s.gaps)} gaps {s.gaps[:3]}" if s.gaps else ", no gaps")
        )
    lines.append(f"  decode errors {r.decode_errors}")
    if r.av_offsets_ms:
        lines.append(
            f"  A/V offset {r.av_offset_ms:+.1f} ms (median of {len(r.av_offsets_ms)} markers, "
            f"worst {max(r.av_offsets_ms, key=abs):+.1f} ms)"
        )
    else:
        lines.append("  A/V offset n/a (no sync markers)")
    lines += [f"  problem: {p}" for p in r.problems]
    return "\n".join(lines)
