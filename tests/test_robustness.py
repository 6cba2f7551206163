"""Bad input, disk errors, kill -9 and memory: the recording survives and stays valid."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from demo.testsignal import VBT, Participant, luma_frame, now_us, tone
from recorder_agent import ParticipantRecording, RecordingInfo, RecordingState
from recorder_agent.inspection import inspect_file
from recorder_agent.ops.metrics import StatsPublisher, WorkerStats

from .decode import decode

ROOT = Path(__file__).resolve().parent.parent


def child(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.recorder_process", *args]


def test_bad_input_is_dropped_counted_and_logged(config, caplog):
    rec = ParticipantRecording(config, RecordingInfo("room", "alice"))
    p = Participant(rec, now_us())
    p.feed(1)
    t = p.start_us + 1_000_000
    bad_video = [
        rtc.VideoFrame(0, 0, VBT.I420, bytearray(0)),  # zero size
        rtc.VideoFrame(16384, 16384, VBT.I420, bytearray(16)),  # absurd size
        rtc.VideoFrame(320, 240, VBT.I420, bytearray(1000)),  # wrong buffer length
        rtc.VideoFrame(320, 240, 99, bytearray(320 * 240 * 4)),  # unknown buffer type
    ]
    for frame in bad_video:
        rec.push_video(frame, t)
    rec.push_video(luma_frame(320, 240, 40), p.start_us + 500_000)  # timestamp backwards
    rec.push_audio(rtc.AudioFrame(bytearray(100), 48_000, 1, 50), t)  # 0 channels below
    bad_audio = rtc.AudioFrame(tone(480, 0, 0.1).tobytes(), 48_000, 1, 480)
    bad_audio._num_channels = 0  # what a corrupt source could hand over
    rec.push_audio(bad_audio, t)
    p.feed(3)
    rec.close("done")
    assert rec.wait(30)
    assert rec.state is RecordingState.FINISHED
    dropped = rec.stats.dropped
    assert dropped["bad_size"] == 2
    assert dropped["bad_buffer"] == 1
    assert dropped["bad_format"] == 1
    assert dropped["timestamp_backwards"] == 1
    assert dropped["bad_audio_format"] == 1
    for reason in ("bad_size", "bad_buffer", "bad_format", "timestamp_backwards"):
        assert any(reason in r.getMessage() for r in caplog.records), reason
    report = inspect_file(rec.path)
    assert report.ok and abs(report.duration_s - 3) < 0.1
    manifest = json.loads(rec.manifest_path.read_text())
    assert {e["reason"] for e in manifest["events"] if e["type"] == "bad_input"} >= {
        "bad_size",
        "bad_buffer",
        "bad_format",
        "timestamp_backwards",
    }


def test_audio_format_changes_mid_stream(config):
    rec = ParticipantRecording(config, RecordingInfo("room", "alice"))
    t0 = now_us()
    t = 0.0
    for rate, channels in [(48_000, 1), (16_000, 1), (44_100, 2), (8_000, 6)]:
        n = rate // 100
        for _ in range(100):  # 1 s each
            pcm = np.repeat(tone(n, 0, 0.3), channels)
            rec.push_audio(rtc.AudioFrame(pcm.tobytes(), rate, channels, n), t0 + int(t * 1e6))
            t += 0.01
        assert rec.drain(30)
    rec.close("done")
    assert rec.wait(30)
    d, _ = decode(rec.path)
    assert abs(d.audio_duration - 4) < 0.06
    assert min(d.audio_rms[5:-5]) > 0.1  # continuous tone: no holes at the switches


@pytest.mark.parametrize("output", ["ts", "hls"])
def test_a_thread_keeping_the_writers_frames_never_fails_a_recording(config, output):
    """LiveKit's loop watchdog takes ``sys._current_frames()``, every thread's frames: a
    frame kept after its function returned keeps its locals, a view of the sink's
    buffer among them. Here a profile hook keeps every frame of the output's writers,
    the worst such a sampler could do."""
    kept = []

    def keep(frame, event, arg):
        if event == "return" and frame.f_code.co_filename.endswith(("sink.py", "hls.py")):
            kept.append(frame)

    threading.setprofile(keep)  # the recording's thread and libx264's, started below
    try:
        config = dataclasses.replace(config, output_format=output)
        rec = ParticipantRecording(config, RecordingInfo("room", "alice"))
        Participant(rec, now_us()).feed(2)
        rec.close("done")
        assert rec.wait(30)
    finally:
        threading.setprofile(None)
    assert kept  # the writers' frames were kept
    assert rec.state is RecordingState.FINISHED, rec.status()
    assert inspect_file(rec.path).ok


def test_disk_error_fails_one_recording_cleanly_and_not_the_other(tmp_path):
    out = subprocess.run(
        child("fsize", str(tmp_path), str(120_000)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["small"]["state"] == "finished"
    assert result["big"]["state"] == "failed"
    big = Path(result["big"]["path"])
    assert str(big) in result["big"]["error"] and "too large" in result["big"]["error"]
    assert "failed" in out.stderr and str(big) in out.stderr  # a clear log line
    assert big.stat().st_size % 188 == 0
    report = inspect_file(big)
    assert report.ok, report.problems
    assert report.duration_s > 1
    assert inspect_file(Path(result["small"]["path"])).ok
    manifest = json.loads(big.with_suffix(".json").read_text())
    assert manifest["state"] == "failed" and manifest["end_reason"].startswith("error")


def kill_while_recording(folder: Path, at: float, **env: str) -> tuple[float, Path]:
    """Record in real time in a child process and SIGKILL it once ``at`` seconds of
    media were fed; returns what was fed and the file (the playlist with hls)."""
    proc = subprocess.Popen(
        child("realtime", str(folder)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    fed, path = 0.0, ""
    deadline = time.monotonic() + 60
    while fed < at and time.monotonic() < deadline:
        _, seconds, path = proc.stdout.readline().split()
        fed = float(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert path and fed >= at
    return fed, Path(path)


def test_kill_9_at_random_moments_leaves_valid_files_up_to_the_kill(tmp_path):
    rng = random.Random(20261123)
    results = []
    for run in range(20):
        fed, path = kill_while_recording(tmp_path / str(run), rng.uniform(1.0, 4.0))
        report = inspect_file(path)
        results.append((fed, report.duration_s, report.ok, report.problems))
    recovered = [r for r in results if r[2] and r[1] >= r[0] - 1.0]
    print(f"kill -9: {len(recovered)}/{len(results)} files valid to within 1 s of the kill")
    assert len(recovered) == len(results), results


def test_memory_stays_flat_over_10_minutes_of_media(tmp_path):
    out = subprocess.run(
        child("rss", str(tmp_path), "600"), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rss = result["rss_mb"]
    assert result["state"] == "finished"
    assert len(rss) == 10
    assert rss[-1] - rss[0] < 10, rss
    assert abs(inspect_file(result["path"]).duration_s - 600) < 0.1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_churn_of_100_recordings_leaks_no_threads_fds_or_memory(config):
    import threading

    from .recorder_process import rss_mb

    def cycle(i: int) -> None:
        rec = ParticipantRecording(config, RecordingInfo("room", f"churn{i}"))
        Participant(rec, now_us()).feed(0.3)
        rec.close("participant_left")
        assert rec.wait(30) and rec.state is RecordingState.FINISHED

    for i in range(10):  # warm-up: codec tables, allocator pools
        cycle(i)
    threads, fds, rss = threading.active_count(), open_fds(), rss_mb()
    for i in range(10, 110):
        cycle(i)
    deadline = time.monotonic() + 5  # a finalized recording's thread is about to return
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads  # a thread of an earlier test may end meanwhile
    assert open_fds() == fds
    assert rss_mb() - rss < 10, (rss, rss_mb())


_PROBE = """
import time
from recorder_agent.util import MachineCpu, available_cores
cpu = MachineCpu()
cpu.share()
end = time.monotonic() + 1.2
while time.monotonic() < end:
    pass
print(available_cores(), cpu.share())
"""


def test_a_cgroup_cpu_limit_sets_the_cores_and_the_machine_share(tmp_path):
    """In a container with --cpus, os.cpu_count() and /proc/stat describe the host: a
    worker there took its load against the host's cores. A real cgroup v1 with a fifth of a
    core: the process sees 0.2 cores, and busy-looping uses all of them."""
    cpu, acct = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpuacct")
    if not (cpu / "cpu.cfs_quota_us").exists() or not os.access(cpu, os.W_OK):
        pytest.skip("needs a writable cgroup v1 cpu hierarchy (root on these VMs)")
    name = f"recorder-test-{os.getpid()}"
    groups = [cpu / name] + ([acct / name] if acct.is_dir() and acct != cpu else [])
    for g in groups:
        g.mkdir()
    try:
        (cpu / name / "cpu.cfs_period_us").write_text("100000")
        (cpu / name / "cpu.cfs_quota_us").write_text("20000")
        join = "; ".join(f"echo $$ > {g}/tasks" for g in groups)
        out = subprocess.run(
            ["sh", "-c", f'{join}; exec "$0" -c "$1"', sys.executable, _PROBE],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        cores, share = (float(x) for x in out.split())
        assert cores == 0.2
        assert share > 0.7  # of its fifth of a core, not of the machine's two
    finally:
        for g in groups:
            g.rmdir()


def test_workers_on_other_hosts_sharing_the_output_folder_keep_their_stats(config, monkeypatch):
    """Another container's job files (its pids mean nothing here) are neither counted
    as this worker's jobs, nor folded into its totals, nor deleted."""
    row = {"bytes_written": 1_000_000, "video_frames_encoded": 30}
    with monkeypatch.context() as m:
        m.setattr(socket, "gethostname", lambda: "other-host")
        foreign = StatsPublisher(config.output_dir, lambda: [row])
        foreign.publish()
    stats = WorkerStats(config)
    stats.fold_stale()
    StatsPublisher(config.output_dir, lambda: [{"bytes_written": 10}]).publish()
    for _ in range(3):
        live, totals = stats.snapshot()
        assert live == [{"bytes_written": 10}] and totals["bytes_written"] == 10
    assert foreign.path.exists()
