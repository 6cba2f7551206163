"""HLS output: TS segments cut at forced keyframes, a live EVENT playlist, checked with
ffprobe and by decoding through the playlist (FFmpeg's hls demuxer)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from demo.testsignal import Participant, now_us
from recorder_agent import ParticipantRecording, RecordingInfo, RecordingState
from recorder_agent.inspection import inspect_file
from recorder_agent.output.hls import SegmentSink, repair_playlist
from recorder_agent.output.tsparse import pes_timestamps

from .conftest import ffprobe
from .decode import decode
from .test_robustness import kill_while_recording

FRAME = 1 / 30


def playlist(path: Path) -> tuple[list[str], list[tuple[float, str]]]:
    lines = path.read_text().splitlines()
    segments = [
        (float(re.match(r"#EXTINF:([\d.]+),", line)[1]), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]
    return lines, segments


def test_segments_playlist_duration_and_continuity(config):
    config = dataclasses.replace(config, output_format="hls", segment_seconds=4.0)
    rec = ParticipantRecording(config, RecordingInfo("room", "hls"))
    p = Participant(rec, now_us())
    p.feed(9.0)
    assert rec.drain(30)
    live, closed = playlist(rec.path)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in live and "#EXT-X-ENDLIST" not in live
    assert len(closed) == 2  # 0-4 s and 4-8 s; the open one is not listed yet
    assert ffprobe(rec.path)["format"]["format_name"] == "hls"
    p.audio = False  # a muted stretch across a segment boundary
    p.feed(11.0)
    p.audio = True
    p.feed(13.0)
    rec.close("test_done")
    assert rec.wait(60) and rec.state is RecordingState.FINISHED, rec.error

    lines, segments = playlist(rec.path)
    assert lines[-1] == "#EXT-X-ENDLIST"
    target = int(next(x for x in lines if x.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    assert [round(s) for s, _ in segments] == [4, 4, 4, 1]
    assert all(round(s) <= target for s, _ in segments)
    assert abs(sum(s for s, _ in segments) - 13.0) <= 2 * FRAME
    assert sum(x.startswith("#EXT-X-PROGRAM-DATE-TIME:") for x in lines) == len(segments)

    folder = rec.path.parent
    for _, name in segments:
        seg = folder / name
        data = seg.read_bytes()
        assert len(data) % 188 == 0 and data[0] == 0x47
        pids = [(data[i + 1] & 0x1F) << 8 | data[i + 2] for i in range(0, 188 * 3, 188)]
        assert 0 in pids[:2] and 0x11 in pids[:2]  # every segment opens with SDT, PAT, PMT
        with av.open(str(seg), format="mpegts") as c:  # and with a keyframe
            first = next(c.demux(c.streams.video[0]))
            assert first.is_keyframe, name
        assert inspect_file(seg).ok

    # Through the playlist: one continuous timeline, no discontinuities at the cuts.
    probe = ffprobe(rec.path)
    assert abs(float(probe["format"]["duration"]) - 13.0) <= 0.1
    d, _ = decode(rec.path)
    assert abs(d.video_duration - 13.0) <= FRAME
    steps = [b - a for a, b in zip(d.video_pts, d.video_pts[1:], strict=False)]
    assert min(steps) > 0 and max(steps) <= FRAME + 0.002
    assert abs(d.audio_duration - 13.0) <= 0.05
    report = inspect_file(rec.path)  # `inspect` takes the playlist too
    assert report.ok and abs(report.duration_s - 13.0) <= 0.1, report
    assert not any(st.gaps or st.non_monotonic for st in report.streams)
    manifest = json.loads(rec.manifest_path.read_text())
    assert manifest["file"] == f"{folder.name}/index.m3u8" and manifest["segments"] == 4


def test_a_crash_loses_at_most_the_open_segment(tmp_path):
    fed, path = kill_while_recording(
        tmp_path, 9.5, RECORDER_OUTPUT_FORMAT="hls", RECORDER_SEGMENT_SECONDS="4"
    )
    lines, segments = playlist(path)
    assert "#EXT-X-ENDLIST" not in lines
    assert len(segments) == 2 and abs(sum(s for s, _ in segments) - 8.0) <= 2 * FRAME
    assert inspect_file(path).ok  # no ENDLIST: inspect reads what is listed, no wait
    # Without ENDLIST FFmpeg's demuxer waits for more, as for a live stream; a recovered
    # copy is what a player of the finished recording would get.
    recovered = path.with_name("recovered.m3u8")
    recovered.write_text(path.read_text() + "#EXT-X-ENDLIST\n")
    d, _ = decode(recovered)
    assert abs(d.video_duration - 8.0) <= 2 * FRAME
    # The open segment's file is still valid TS up to the kill.
    open_segment = path.parent / "seg-00002.ts"
    report = inspect_file(open_segment)
    assert report.ok, report.problems
    assert report.duration_s >= fed - 8.0 - 1.0


def _ts_across_the_pts_wrap(seconds: int) -> tuple[bytes, int]:
    """``seconds`` of 30 fps video muxed by FFmpeg with pts from 3 s before 2^33 (26.5 h
    into a recording), a keyframe each second; and the first pts."""
    start = (1 << 33) - 3 * 90_000
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 90_000)
        stream.codec_context.options = {
            "preset": "ultrafast",
            "x264-params": "keyint=30:min-keyint=30:scenecut=0:bframes=0",
        }
        for i in range(seconds * 30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64), i % 250, np.uint8), "gray")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = start + i * 3000, Fraction(1, 90_000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue(), start


def test_segments_are_cut_and_dated_after_26_5_hours_when_pts_wrap(tmp_path):
    """PES timestamps have 33 bits: 26.5 hours in, they start again from 0. The writer
    and the repair after a crash keep cutting 2 s segments and dating them in order."""
    data, start = _ts_across_the_pts_wrap(8)
    assert pes_timestamps(data) == (start, start + 239 * 3000)  # wrapped in the file
    hls = SegmentSink(tmp_path, target_s=2.0)
    hls.origin_utc = 1_700_000_000.0
    for off in range(0, len(data), 5000):  # as a muxer writes: pieces of any size
        hls.write(data[off : off + 5000])
    hls.close()

    def dated(text: str) -> list[tuple[float, float]]:
        lines = text.splitlines()
        return [
            (
                datetime.fromisoformat(line.split(":", 1)[1]).timestamp(),
                float(re.match(r"#EXTINF:([\d.]+),", lines[i + 1])[1]),
            )
            for i, line in enumerate(lines)
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")
        ]

    written = dated((tmp_path / "index.m3u8").read_text())
    assert [round(s, 2) for _, s in written] == [2.0, 2.0, 2.0, 2.0]
    assert [round(t - written[0][0], 2) for t, _ in written] == [0.0, 2.0, 4.0, 6.0]
    (tmp_path / "index.m3u8").unlink()  # as if the worker died before listing any
    last, added = repair_playlist(tmp_path, 2.0, 1_700_000_000.0)
    assert len(added) == 4 and last == start + 239 * 3000
    assert dated((tmp_path / "index.m3u8").read_text()) == written
