"""Names, manifests, configuration and the inspect tool."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from livekit import rtc

from demo.testsignal import Participant, luma_frame, now_us
from recorder_agent import ConfigError, ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.output.naming import claim_recording_path, safe_component

HOSTILE = [
    "../../etc/passwd",
    "a/b",
    "a_b",
    "a\x00b",
    "x" * 10_000,
    "🎥 emoji",
    "CON",
    "",
    ".",
    "..",
]


def test_hostile_names_stay_inside_and_stay_distinct(tmp_path):
    when = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    paths = [
        claim_recording_path(tmp_path, room, ident, when)
        for room in HOSTILE[:3]
        for ident in HOSTILE
    ]
    assert len(set(paths)) == len(paths)
    for p in paths:
        assert p.resolve().is_relative_to(tmp_path.resolve())
        assert len(p.name) < 128 and p.parent.parent == tmp_path
        assert "\x00" not in str(p) and not p.name.startswith(".")
    assert safe_component("alice") == "alice"
    assert safe_component("CON") != "CON"


def test_a_rejoin_never_overwrites(tmp_path):
    when = datetime.now(UTC)
    first = claim_recording_path(tmp_path, "room", "alice", when)
    first.write_bytes(b"keep")
    second = claim_recording_path(tmp_path, "room", "alice", when)
    assert second != first and first.read_bytes() == b"keep"


def test_manifest_records_who_what_and_why(config):
    info = RecordingInfo("room 1", "alice", participant_sid="PA_1", name="Alice", kind="standard")
    rec = ParticipantRecording(config, info)
    rec.add_track("TR_v", "video", "camera")
    p = Participant(rec, now_us())
    p.feed(1)
    rec.add_event("mute", track_sid="TR_a")
    p.feed(2)
    rec.close("participant_left")
    assert rec.wait(30)
    m = json.loads(rec.manifest_path.read_text())
    assert m["room"] == "room 1" and m["participant"]["sid"] == "PA_1"
    assert m["participant"]["name"] == "Alice" and m["file"] == rec.path.name
    assert m["tracks"] == [{"sid": "TR_v", "kind": "video", "source": "camera"}]
    assert m["canvas"] == {"width": 320, "height": 240}
    assert m["codecs"]["video"]["encoder"] == "libx264" and m["codecs"]["audio"]["codec"] == "aac"
    assert datetime.fromisoformat(m["start_utc"]) <= datetime.now(UTC)
    mute = next(e for e in m["events"] if e["type"] == "mute")
    assert mute["track_sid"] == "TR_a" and abs(mute["media_time_s"] - 1) < 0.1
    c = m["counters"]
    assert c["video_frames_in"] == 60 and c["video_frames_encoded"] == 60
    assert c["bytes_written"] == rec.path.stat().st_size
    assert m["state"] == "finished" and m["end_reason"] == "participant_left"
    assert not list(rec.path.parent.glob(".*.tmp"))


def test_no_media_leaves_no_empty_file(config):
    rec = ParticipantRecording(config, RecordingInfo("room", "lurker"))
    rec.close("participant_left")
    assert rec.wait(30)
    assert not rec.path.exists()
    assert json.loads(rec.manifest_path.read_text())["file"] is None


def test_config_from_env():
    env = {
        "RECORDER_OUTPUT_DIR": "/data/rec",
        "RECORDER_VIDEO_CRF": "30",
        "RECORDER_GOP_SECONDS": "1.5",
    }
    config = RecorderConfig.from_env(env)
    assert config.output_dir == Path("/data/rec") and config.video_crf == 30
    assert config.gop_seconds == 1.5
    with pytest.raises(ConfigError):
        RecorderConfig.from_env({"RECORDER_VIDEO_CRF": "high"})
    with pytest.raises(ConfigError):
        RecorderConfig.from_env({"RECORDER_AUDIO_CHANNELS": "3"})


def inspect_cli(*args: str) -> subprocess.CompletedProcess:
    # the installed console script, as the README shows it
    cmd = [str(Path(sys.executable).with_name("recorder-agent")), "inspect", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_inspect_accepts_a_recording_and_rejects_raw_h264(config, tmp_path):
    rec = ParticipantRecording(config, RecordingInfo("room", "alice"))
    Participant(rec, now_us(), markers=[0.5]).feed(1.5)
    rec.close()
    assert rec.wait(30)
    ok = inspect_cli(str(rec.path), "--json")
    assert ok.returncode == 0, ok.stdout
    [report] = json.loads(ok.stdout)
    assert report["ok"] and report["container"] == "mpegts"
    assert {s["codec"] for s in report["streams"]} == {"h264", "aac"}
    assert abs(report["duration_s"] - 1.5) < 0.1 and report["decode_errors"] == 0
    assert abs(report["av_offset_ms"]) <= 21.4

    # The "fake fix": bare H.264 packets written into a .ts file.
    fake = tmp_path / "fake.ts"
    with av.open(str(tmp_path / "src.h264"), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame(64, 48, "yuv420p")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    fake.write_bytes((tmp_path / "src.h264").read_bytes())
    bad = inspect_cli(str(fake))
    assert bad.returncode != 0
    assert "INVALID" in bad.stdout and "not mpegts" in bad.stdout
    assert inspect_cli(str(tmp_path / "missing.ts")).returncode != 0


def test_fixed_canvas_from_config(tmp_path):
    config = RecorderConfig(output_dir=tmp_path, canvas_width=640, canvas_height=360)
    rec = ParticipantRecording(config, RecordingInfo("room", "fixed"))
    rec.push_video(luma_frame(100, 100, 200), now_us())
    rec.close()
    assert rec.wait(30)
    with av.open(str(rec.path)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (640, 360)


def test_readme_documents_every_setting():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, _, _ in RecorderConfig.documented_fields():
        assert f"`{name}`" in readme, name


def test_a_one_frame_recording_is_still_valid_ts(config):
    """A file of a few TS packets can out-score MPEG-TS in FFmpeg's format probe
    (MPEG-PS finds PES start codes); inspect goes by the 188-byte sync pattern."""
    rec = ParticipantRecording(config, RecordingInfo("room", "blink"))
    rec.push_video(luma_frame(64, 48, 40), now_us())
    rec.push_audio(rtc.AudioFrame(bytes(960), 48_000, 1, 480), now_us())
    rec.close()
    assert rec.wait(30)
    report = json.loads(inspect_cli(str(rec.path), "--json").stdout)[0]
    assert report["ok"] and report["container"] == "mpegts", report
