"""Crash recovery at worker start, and a sink failure closing what was written."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

from demo.testsignal import Participant, now_us
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.inspection import inspect_file
from recorder_agent.ops.upload import UploadQueue
from recorder_agent.recording.recovery import recover

from .decode import decode
from .test_hls import FRAME, playlist
from .test_robustness import ROOT, child, kill_while_recording


def manifest_of(path: Path) -> dict:
    """The manifest beside a .ts file or an HLS playlist."""
    if path.suffix == ".ts":
        return json.loads(path.with_suffix(".json").read_text())
    folder = path.parent
    sidecar = folder.with_name(folder.name + ".json")
    return json.loads(sidecar.read_text())


def queued(out: Path) -> list[str]:
    return [item["key"] for _, item in UploadQueue(out).read()]


def test_a_killed_ts_recording_is_closed_out_as_interrupted_and_queued(tmp_path):
    out = tmp_path / "rec"
    fed, path = kill_while_recording(out, 3.0)
    assert manifest_of(path)["state"] == "recording"
    config = RecorderConfig(output_dir=out, upload_url="s3://bucket/prefix")
    [repaired] = recover(config)
    manifest = manifest_of(path)
    assert repaired == path.with_suffix(".json")
    assert manifest["state"] == "interrupted" and manifest["end_reason"].startswith("interrupted")
    duration = inspect_file(path).duration_s
    # The last media time really in the file, not the manifest's last counters.
    assert abs(manifest["counters"]["media_seconds"] - duration) <= 0.1
    assert duration >= fed - 1.0
    assert manifest["events"][-1]["type"] == "interrupted"
    keys = queued(out)
    assert path.relative_to(out).as_posix() in keys
    assert path.with_suffix(".json").relative_to(out).as_posix() in keys
    assert recover(config) == []  # once only


def test_a_killed_hls_recording_gets_every_segment_listed_and_an_end(tmp_path):
    out = tmp_path / "rec"
    fed, path = kill_while_recording(
        out, 9.5, RECORDER_OUTPUT_FORMAT="hls", RECORDER_SEGMENT_SECONDS="4"
    )
    assert len(playlist(path)[1]) == 2  # the open third segment is not listed yet
    config = RecorderConfig(
        output_dir=out, output_format="hls", segment_seconds=4, upload_url="s3://b/p"
    )
    assert recover(config)
    lines, segments = playlist(path)
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert [name for _, name in segments] == ["seg-00000.ts", "seg-00001.ts", "seg-00002.ts"]
    assert sum(x.startswith("#EXT-X-PROGRAM-DATE-TIME:") for x in lines) == 3
    d, _ = decode(path)  # FFmpeg reads the ended playlist to its end
    assert d.video_duration >= fed - 1.0
    assert abs(sum(s for s, _ in segments) - d.video_duration) <= 2 * FRAME
    manifest = manifest_of(path)
    assert manifest["state"] == "interrupted" and manifest["segments"] == 3
    assert abs(manifest["counters"]["media_seconds"] - d.video_duration) <= 0.1
    keys = queued(out)
    assert (path.parent / "seg-00002.ts").relative_to(out).as_posix() in keys
    assert path.relative_to(out).as_posix() in keys


def test_a_recording_still_being_written_is_never_touched(config):
    for fmt in ("ts", "hls"):
        cfg = dataclasses.replace(config, output_format=fmt)
        rec = ParticipantRecording(cfg, RecordingInfo("room", f"live-{fmt}"))
        p = Participant(rec, now_us())
        p.feed(5.0)
        assert rec.drain(30)
        before = rec.path.read_bytes() if fmt == "hls" else None
        assert recover(cfg) == []
        assert json.loads(rec.manifest_path.read_text())["state"] == "recording"
        if before is not None:
            assert rec.path.read_bytes() == before  # the live playlist is left alone
        p.feed(6.0)
        rec.close("done")
        assert rec.wait(30)
        assert json.loads(rec.manifest_path.read_text())["state"] == "finished"
        assert inspect_file(rec.path).ok


def test_an_hls_sink_failure_closes_the_playlist_and_manifest_with_what_was_written(tmp_path):
    out = subprocess.run(
        child("fsize", str(tmp_path), str(53_000)),  # 2-s segments are 50-55 kB (twoloop)
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "RECORDER_OUTPUT_FORMAT": "hls",
            "RECORDER_SEGMENT_SECONDS": "2",
            "RECORDER_AAC_CODER": "twoloop",
        },
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["big"]["state"] == "failed" and "too large" in result["big"]["error"]
    path = Path(result["big"]["path"])
    lines, segments = playlist(path)
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert len(segments) >= 2
    on_disk = sorted(p.name for p in path.parent.glob("seg-*.ts") if p.stat().st_size)
    assert [name for _, name in segments] == on_disk  # the failed segment too
    for _, name in segments:
        assert (path.parent / name).stat().st_size % 188 == 0
    report = inspect_file(path)
    assert report.ok, report.problems
    manifest = manifest_of(path)
    assert manifest["state"] == "failed" and manifest["segments"] == len(segments)
    assert abs(report.duration_s - sum(s for s, _ in segments)) <= 0.2
    assert inspect_file(Path(result["small"]["path"])).ok


def test_repair_keeps_segments_already_uploaded_and_deleted_locally(tmp_path):
    """With upload_delete_local, listed segments may be gone from disk: the repaired
    playlist still lists them (its upload replaces the stored one)."""
    out = tmp_path / "rec"
    _, path = kill_while_recording(
        out, 9.5, RECORDER_OUTPUT_FORMAT="hls", RECORDER_SEGMENT_SECONDS="4"
    )
    _, before = playlist(path)
    (path.parent / before[0][1]).unlink()  # uploaded, then deleted locally
    assert recover(RecorderConfig(output_dir=out, output_format="hls", segment_seconds=4))
    lines, segments = playlist(path)
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert segments[:2] == before  # kept as they were listed
    assert [name for _, name in segments] == ["seg-00000.ts", "seg-00001.ts", "seg-00002.ts"]
    assert manifest_of(path)["segments"] == 3
