"""The recording core, fed through its public API and checked by decoding the files."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import time
from pathlib import Path

import av
import pytest
from livekit import rtc

from demo.testsignal import (
    DARK,
    FLASH,
    RED_YUV,
    VBT,
    Participant,
    camera_like,
    luma_frame,
    now_us,
    yuv_frame,
)
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo, RecordingState
from recorder_agent.encode.canvas import Size
from recorder_agent.encode.encoders import configure_x264
from recorder_agent.inspection import inspect_file
from recorder_agent.util import AAC_FRAME

from .conftest import ffprobe
from .decode import decode, luma_at

FRAME = 1 / 30


def record(config: RecorderConfig, identity: str = "alice", **kw) -> ParticipantRecording:
    return ParticipantRecording(config, RecordingInfo("room", identity, **kw))


def finish(rec: ParticipantRecording) -> Path:
    rec.close("test_done")
    assert rec.wait(60)
    assert rec.state is RecordingState.FINISHED, rec.error
    assert rec.path is not None
    return rec.path


def test_codecs_duration_and_monotonic_timestamps(config):
    rec = record(config)
    Participant(rec, now_us()).feed(6.0)
    path = finish(rec)

    probe = ffprobe(path)
    assert probe["format"]["format_name"] == "mpegts"
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["aac", "h264"]
    aac = next(s for s in probe["streams"] if s["codec_name"] == "aac")
    assert aac["profile"] == "LC"

    d, _ = decode(path)
    assert abs(d.video_duration - 6.0) <= FRAME
    assert abs(d.audio_duration - 6.0) <= 2 * AAC_FRAME / 48_000  # priming + last frame pad
    assert all(b > a for a, b in zip(d.video_pts, d.video_pts[1:], strict=False))
    report = inspect_file(path)
    assert report.ok, report.problems
    assert not any(s.non_monotonic or s.gaps for s in report.streams)


def test_flash_and_beep_fed_together_come_out_together(config):
    markers = [1.0, 2.5, 4.0]
    rec = record(config)
    Participant(rec, now_us(), markers=markers).feed(5.0)
    report = inspect_file(finish(rec))
    assert len(report.av_offsets_ms) == len(markers), report
    # The floor is one audio frame (21.3 ms); the timeline does far better.
    assert max(abs(o) for o in report.av_offsets_ms) <= 5.0
    # And the markers sit where they were fed, on the file's own clock.
    start = min(s.start_s for s in report.streams)
    for fed, seen in zip(markers, report.flashes_s, strict=True):
        assert abs(seen - start - fed) <= FRAME


def decodable_seconds(path: Path) -> float:
    d, _ = decode(path)
    return min(d.video_duration, d.audio_duration)


def test_file_grows_while_recording(config):
    rec = record(config)
    p = Participant(rec, now_us())
    sizes = []
    for second in range(1, 5):
        p.feed(second)
        assert rec.drain(30)
        assert rec.path is not None
        sizes.append(rec.path.stat().st_size)
        assert sizes[-1] % 188 == 0
        assert decodable_seconds(rec.path) >= second - 0.5
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    finish(rec)


def test_declared_but_silent_audio_never_stalls_the_file(config):
    rec = record(config)
    p = Participant(rec, now_us(), audio=False)
    for second in range(1, 4):
        p.feed(second)
        assert rec.drain(30)
        d, _ = decode(rec.path)
        assert d.video_duration >= second - 0.5
    d, _ = decode(finish(rec))
    # The audio stream is there, continuous silence along the whole video.
    assert abs(d.audio_duration - 3.0) <= 0.1
    assert max(d.audio_rms) < 1e-3


def test_mute_fills_silence_and_video_stop_repeats_last_picture(config):
    rec = record(config)
    p = Participant(rec, now_us())
    p.feed(2)
    p.audio = False  # mic muted for 5 s, camera on
    p.feed(7)
    p.audio, p.video = True, False  # camera off for 5 s, mic on
    p.feed(12)
    p.video = True
    p.feed(14)
    path = finish(rec)
    d, _ = decode(path)
    assert abs(d.audio_duration - 14) <= 0.05
    assert abs(d.video_duration - 14) <= FRAME
    # The last picture is repeated at a low rate: no hole longer than the fill interval
    # plus the lag the fill keeps behind the newest media.
    longest = max(b - a for a, b in zip(d.video_pts, d.video_pts[1:], strict=False))
    assert longest <= config.video_fill_interval + config.gap_fill_delay
    report = inspect_file(path)
    assert report.ok and not any(s.gaps for s in report.streams)
    events = json.loads(rec.manifest_path.read_text())["events"]
    gaps = {e["type"]: e for e in events if e["type"].endswith("_gap")}
    assert abs(gaps["audio_gap"]["duration_s"] - 5) < 0.6
    assert abs(gaps["video_gap"]["duration_s"] - 5) < 1.1


def test_audio_only_participant(config):
    rec = record(config)
    Participant(rec, now_us(), video=False).feed(4)
    path = finish(rec)
    d, _ = decode(path)
    assert abs(d.audio_duration - 4) <= 0.05
    assert d.video_sizes == {(config.fallback_width, config.fallback_height)}
    assert max(d.video_luma) < 20  # black, at a low rate
    assert len(d.video_pts) <= 5
    assert inspect_file(path).ok


def test_a_participant_with_announced_audio_only_gets_an_aac_only_file(config):
    """Tracks announced (as the room does) and none of them video by layout_wait: no
    video stream, no libx264; a camera after that is refused, for a new file."""
    rec = record(config)
    assert rec.add_track("TR_mic", "audio", "microphone")
    p = Participant(rec, now_us(), video=False)
    p.feed(4)
    assert rec.drain(30) and rec.audio_only
    assert not rec.add_track("TR_cam", "video", "camera", 640, 360)
    p.video = True
    p.feed(5)  # pushed anyway: counted, not encoded
    path = finish(rec)
    streams = ffprobe(path)["streams"]
    assert [s["codec_name"] for s in streams] == ["aac"]
    d, _ = decode(path)
    assert abs(d.audio_duration - 5) <= 0.05
    assert inspect_file(path).ok
    manifest = json.loads(rec.manifest_path.read_text())
    assert (
        manifest["canvas"] is None and manifest["counters"]["dropped"]["video_in_audio_only_file"]
    )
    assert [t["kind"] for t in manifest["tracks"]] == ["audio"]


def test_a_phone_callers_file_has_bytes_from_the_first_frame(config):
    """A SIP participant never publishes video: no wait for a camera, so a crash early
    in the call still leaves its audio on disk. Anyone else waits layout_wait."""
    sip, other = (record(config, identity=kind, kind=kind) for kind in ("sip", "standard"))
    for rec in (sip, other):
        assert rec.add_track("TR_mic", "audio", "microphone")
        Participant(rec, now_us(), video=False).feed(1)
        assert rec.drain(30)
    assert sip.audio_only and sip.path.stat().st_size > 0
    assert not other.audio_only and other.path.stat().st_size == 0  # 1 s of 3: waiting
    finish(sip)
    finish(other)


def test_a_camera_announced_before_layout_wait_keeps_the_video_stream(config):
    rec = record(config)
    assert rec.add_track("TR_mic", "audio", "microphone")
    p = Participant(rec, now_us(), video=False)
    p.feed(1)
    assert rec.add_track("TR_cam", "video", "camera", 640, 360)
    p.feed(4)  # no frame before layout_wait: a black picture until the first
    p.video = True
    p.feed(6)
    path = finish(rec)
    assert not rec.audio_only
    assert sorted(s["codec_name"] for s in ffprobe(path)["streams"]) == ["aac", "h264"]


def test_video_starting_20_s_after_audio_keeps_its_timing(config):
    rec = record(config)
    p = Participant(rec, now_us(), video=False, markers=[21.0])
    p.feed(20)
    assert json.loads(rec.manifest_path.read_text())["first_video_s"] is None
    p.video = True
    p.feed(20.5)
    assert rec.drain(60)
    assert json.loads(rec.manifest_path.read_text())["first_video_s"] is not None  # at once
    p.feed(23)
    path = finish(rec)
    report = inspect_file(path)
    assert report.ok
    assert abs(report.duration_s - 23) < 0.1
    assert len(report.av_offsets_ms) == 1 and abs(report.av_offsets_ms[0]) <= 21.4
    d, _ = decode(path)
    first_real = next(t for t, y in zip(d.video_pts, d.video_luma, strict=True) if y > 25)
    assert abs(first_real - d.video_pts[0] - 20) <= FRAME
    manifest = json.loads(rec.manifest_path.read_text())
    assert manifest["first_video_s"] == pytest.approx(first_real - d.video_pts[0], abs=0.001)


def test_canvas_is_fixed_and_other_shapes_are_letterboxed(config):
    rec = record(config)
    t0 = now_us()
    shapes = [(640, 360), (360, 640), (321, 241), (1279, 719)]
    for i, (w, h) in enumerate(shapes):
        for k in range(10):
            n = i * 10 + k
            rec.push_video(luma_frame(w, h, FLASH), t0 + int(n * FRAME * 1e6))
        assert rec.drain(30)
    _, frames = decode(finish(rec), keep_frames=True)
    assert {(f.width, f.height) for f in frames} == {(640, 360)}
    landscape, portrait, odd, large = frames[5], frames[15], frames[25], frames[35]
    for f in (landscape, large):
        assert luma_at(f, 0.02, 0.5) > 200 and luma_at(f, 0.98, 0.5) > 200
    # A portrait frame is pillarboxed: black sides, picture in the middle, not stretched.
    assert luma_at(portrait, 0.05, 0.5) < 20 and luma_at(portrait, 0.95, 0.5) < 20
    assert luma_at(portrait, 0.5, 0.5) > 200
    assert luma_at(portrait, 0.5 - 0.95 * (360 * 360 / 640) / 640 / 2, 0.5) > 200
    assert luma_at(odd, 0.5, 0.5) > 200


def test_first_frame_is_capped_and_made_even(tmp_path):
    config = RecorderConfig(output_dir=tmp_path, canvas_max_long=640, canvas_max_short=360)
    rec = record(config)
    rec.push_video(luma_frame(1921, 1081, DARK), now_us())
    _, frames = decode(finish(rec), keep_frames=True)
    assert (frames[0].width, frames[0].height) == (638, 360)


def test_rotation_is_applied(config):
    rec = record(config)
    w, h = 320, 240
    frame = luma_frame(w, h, DARK)
    # Bright top half: after a quarter turn clockwise it is the right half.
    import numpy as np

    np.frombuffer(frame.get_plane(0), np.uint8).reshape(h, w)[: h // 2] = FLASH
    rec.push_video(frame, now_us(), rotation=1)  # VIDEO_ROTATION_90
    _, frames = decode(finish(rec), keep_frames=True)
    f = frames[0]
    assert (f.width, f.height) == (240, 320)
    assert luma_at(f, 0.9, 0.5) > 200 and luma_at(f, 0.1, 0.5) < 60


@pytest.mark.parametrize("size", [(64, 48), (33, 17)])
@pytest.mark.parametrize(
    "buffer_type",
    [
        VBT.I420,
        VBT.I420A,
        VBT.I422,
        VBT.I444,
        VBT.I010,
        VBT.NV12,
        VBT.RGBA,
        VBT.BGRA,
        VBT.ARGB,
        VBT.ABGR,
        VBT.RGB24,
    ],
)
def test_every_buffer_type_and_odd_sizes(config, buffer_type, size):
    rec = record(config)
    t0 = now_us()
    for i in range(5):
        rec.push_video(yuv_frame(*size, RED_YUV, buffer_type), t0 + i * 33_333)
    d, _ = decode(finish(rec))
    assert rec.stats.video_frames_encoded == 5 and not rec.stats.dropped
    y, u, v = d.video_yuv[-1]
    assert abs(y - RED_YUV[0]) <= 8 and abs(u - RED_YUV[1]) <= 8 and abs(v - RED_YUV[2]) <= 8


def test_published_size_sets_the_canvas_when_the_stream_starts_small(config):
    """WebRTC ramps resolution up: the track's published size wins over the first frame."""
    rec = record(config)
    rec.add_track("TR_v", "video", "camera", 640, 360)
    t0 = now_us()
    rec.push_video(luma_frame(320, 180, FLASH), t0)
    rec.push_video(luma_frame(640, 360, FLASH), t0 + 33_333)
    _, frames = decode(finish(rec), keep_frames=True)
    assert {(f.width, f.height) for f in frames} == {(640, 360)}


def test_published_size_follows_the_orientation_of_the_frames(config):
    rec = record(config)
    rec.add_track("TR_v", "video", "camera", 640, 360)
    rec.push_video(luma_frame(180, 320, FLASH), now_us())  # a phone held upright
    _, frames = decode(finish(rec), keep_frames=True)
    assert (frames[0].width, frames[0].height) == (360, 640)


def test_a_participant_faster_than_the_nominal_rate_keeps_that_rate(config):
    """A 60 fps participant in a 30 fps file: every other frame, counted as thinned; the
    file decodes without a warning and keeps its flashes (before: every other frame one
    tick after the one before, 88 non-monotonic timestamps in 3 s)."""
    rec = record(config)
    Participant(rec, now_us(), fps=60, markers=[1.0, 2.0]).feed(3.0, drain_every=0.25)
    path = finish(rec)
    assert rec.stats.video_frames_encoded + rec.stats.video_frames_thinned == 180
    assert abs(rec.stats.video_frames_thinned - 90) <= 1 and not rec.stats.dropped
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stderr == ""
    d, _ = decode(path)
    assert min(b - a for a, b in itertools.pairwise(d.video_pts)) >= FRAME - 1e-4
    lit = [t for t, y in zip(d.video_pts, d.video_luma, strict=True) if y > 150]
    assert any(abs(t - 1.0) < 0.1 for t in lit) and any(abs(t - 2.0) < 0.1 for t in lit), lit


def _camera_like(w: int, h: int, n: int) -> list[rtc.VideoFrame]:
    return [
        rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, memoryview(b)) for b in camera_like(w, h, n)
    ]


def _half_real_time_size(config: RecorderConfig) -> Size:
    """A 16:9 size, 1080p or more, at which ``config``'s x264 encodes camera-like video at
    about half real time on this machine, whatever its speed: measured at 720p here and
    scaled by area. One x264 thread at veryfast ran 1080p at about 15 fps on these VMs on
    2026-11-24 and at 54 fps on 2026-11-27, when a fixed 1080p never fell behind."""
    ctx = av.CodecContext.create("libx264", "w")
    configure_x264(ctx, config, Size(1280, 720))
    buffers = camera_like(1280, 720, 10)
    start = time.perf_counter()
    for i in range(30):
        frame = av.VideoFrame.from_ndarray(buffers[i % 10].reshape(-1, 1280), format="yuv420p")
        frame.pts = i * 3000
        ctx.encode(frame)
    fps = 30 / (time.perf_counter() - start)
    k = max(1.5, math.sqrt(fps / (config.nominal_fps / 2)))
    return Size(round(1280 * k / 16) * 16, round(720 * k / 16) * 16)


def test_an_overloaded_recording_steps_quality_down_and_loses_no_frame(tmp_path):
    """Camera-like video on one x264 thread at veryfast, at a size where it runs at about
    half of real time (ultrafast: more than real time). Fed in real time, the recording
    steps its preset (and the frame rate, if need be) down before its 30-frame video
    lane fills: every frame is encoded or thinned on purpose, none is dropped, and the
    file decodes cleanly. The encoder runs at the test's priority: the overload here is
    its own cost. (At nice 10 beside a nice-0 CPU hog, as `make test` is run in checks,
    the scheduler once left x264 a tenth of a core for a second before the first reading
    could be taken, and no quality level can help a thread that does not run.)"""
    config = RecorderConfig(output_dir=tmp_path, x264_threads=1, encoder_nice=0)
    size = _half_real_time_size(config)
    config = RecorderConfig(
        output_dir=tmp_path,
        x264_threads=1,
        encoder_nice=0,
        canvas_max_long=size.width,
        canvas_max_short=size.height,
    )
    frames = _camera_like(size.width, size.height, 10)
    audio = rtc.AudioFrame(bytes(960), 48_000, 1, 480)
    rec = record(config)
    t0 = time.monotonic()
    base = now_us()
    vi = ai = 0
    while (now := time.monotonic() - t0) < 8.0:
        while ai * 0.01 <= now:
            rec.push_audio(audio, base + ai * 10_000)
            ai += 1
        while vi / 30 <= now:
            rec.push_video(frames[vi % len(frames)], base + vi * 1_000_000 // 30)
            vi += 1
        time.sleep(0.005)
    path = finish(rec)

    stats = rec.stats
    assert stats.dropped == {}, stats.dropped
    assert stats.video_frames_encoded + stats.video_frames_thinned == vi
    manifest = json.loads(rec.manifest_path.read_text())
    steps = [e for e in manifest["events"] if e["type"] == "quality"]
    assert steps and steps[0]["direction"] == "down"
    assert steps[0]["preset"] != "veryfast"
    assert stats.quality_level >= 1 and stats.quality == f"{steps[-1]['preset']}@{steps[-1]['fps']}"
    assert all(e["media_time_s"] is not None for e in steps)
    d, _ = decode(path)
    assert len(d.video_pts) == stats.video_frames_encoded + stats.video_frames_repeated
    assert abs(d.video_duration - 8.0) < 0.2 and abs(d.audio_duration - 8.0) < 0.1
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stderr == ""
    report = inspect_file(path)
    assert report.ok and not any(s.gaps for s in report.streams), report.problems


def test_a_burst_of_queued_audio_at_the_start_is_kept_whole(config):
    """A job process busy starting up gets the first 1.5 s of audio from the SDK's queue
    in one burst, stamped on arrival all at once, then audio in real time. All of it
    belongs in the file: before the origin was moved back to where the burst says the
    audio began, the timeline trimmed the burst as overlap (1.5 s of 4.5 s lost)."""
    rec = record(config)
    rec.add_track("TR_mic", "audio", "microphone")
    frame = rtc.AudioFrame(bytes(960), 48_000, 1, 480)
    t = now_us()
    for i in range(150):  # 1.5 s queued: arrive within 1.5 ms
        rec.push_audio(frame, t + i * 10)
    for i in range(1, 301):  # then 3 s in real time
        rec.push_audio(frame, t + i * 10_000)
    path = finish(rec)
    d, _ = decode(path)
    assert abs(d.audio_duration - 4.5) <= 2 * AAC_FRAME / 48_000, d.audio_duration
    assert rec.stats.dropped == {}, rec.stats.dropped
    manifest = json.loads(rec.manifest_path.read_text())
    assert not any(e["type"].endswith("_gap") for e in manifest["events"]), manifest["events"]
