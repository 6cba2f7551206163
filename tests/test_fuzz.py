"""Property tests: whatever a producer throws at a recording, it never crashes or hangs,
and what it closes is valid MPEG-TS (or, with no usable media at all, no file)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import rtc

from demo.testsignal import VBT, now_us, yuv_frame
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo, RecordingState
from recorder_agent.inspection import inspect_file

TYPES = [t for _, t in VBT.items()]


@st.composite
def video_push(draw: st.DrawFn) -> tuple:
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    kind = draw(st.sampled_from(TYPES))
    frame = yuv_frame(w, h, (draw(st.integers(16, 235)), 128, 128), kind)
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter: garbage buffer length
        frame = rtc.VideoFrame(w, h, kind, bytearray(draw(st.integers(0, 64))))
    dt = draw(st.integers(-200_000, 400_000))  # timestamps jump both ways
    return ("video", frame, dt, draw(st.sampled_from([0, 1, 2, 3])))


@st.composite
def audio_push(draw: st.DrawFn) -> tuple:
    rate = draw(st.sampled_from([8000, 16000, 22050, 44100, 48000]))
    channels = draw(st.integers(1, 3))
    n = draw(st.integers(1, rate // 50))
    data = bytes(draw(st.binary(min_size=2 * n * channels, max_size=2 * n * channels)))
    dt = draw(st.integers(-50_000, 300_000))
    return ("audio", rtc.AudioFrame(data, rate, channels, n), dt, 0)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(st.one_of(video_push(), audio_push()), max_size=40))
def test_any_sequence_of_pushes_closes_cleanly(tmp_path_factory, ops):
    config = RecorderConfig(output_dir=tmp_path_factory.mktemp("fuzz"), layout_wait=0.2)
    rec = ParticipantRecording(config, RecordingInfo("room", "fuzz"))
    t = now_us()
    for kind, frame, dt, rotation in ops:
        t += dt
        if kind == "video":
            rec.push_video(frame, t, rotation)
        else:
            rec.push_audio(frame, t)
    rec.close("fuzz")
    assert rec.wait(60), "recording hung"
    assert rec.state is RecordingState.FINISHED, rec.error
    if rec.path.exists():
        report = inspect_file(rec.path)
        assert report.ok, report.problems
