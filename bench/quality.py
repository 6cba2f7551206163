"""What each step of graceful overload costs in picture quality, next to what it saves
in CPU: the same 10 s of camera-like 720p30 through a recording at each x264 preset of
the ladder (adaptive quality off), against the source with FFmpeg's ``ssim`` and
``psnr`` filters.

Run: ``python -m bench.quality [seconds]``; prints a table (part of ``make bench``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo.testsignal import camera_like
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.recording.quality import ladder

from .frames import FPS, FastFeeder, as_rtc
from .measure import cpu_s

W, H = 1280, 720


def _compare(recording: Path, source: Path) -> tuple[float, float]:
    """(SSIM, PSNR dB) of ``recording`` against the raw ``source``, frame by frame."""
    graph = (
        "[0:v]setpts=PTS-STARTPTS,split[a0][a1];[1:v]setpts=PTS-STARTPTS,split[b0][b1];"
        "[a0][b0]ssim;[a1][b1]psnr"
    )
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-i", str(recording),
         "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{W}x{H}", "-r", str(FPS),
         "-i", str(source), "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    ssim = float(re.search(r"SSIM .*All:([\d.]+)", out.stderr).group(1))
    psnr = float(re.search(r"PSNR .*average:([\d.inf]+)", out.stderr).group(1))
    return ssim, psnr


def measure(seconds: int) -> None:
    buffers = camera_like(W, H, 30)
    frames = as_rtc(buffers, W, H)
    n = seconds * FPS
    presets = [level.preset for level in ladder("veryfast", FPS, FPS)]  # no frame-rate steps
    print(f"## Quality of each preset: {seconds} s of camera-like {W}x{H} {FPS} fps, crf 23\n")
    print(f"{'preset':>10} {'CPU s/media min':>16} {'cores at 30 fps':>16} {'kbit/s':>7} "
          f"{'SSIM':>7} {'PSNR dB':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        source = Path(out) / "source.yuv"
        with source.open("wb") as f:
            for i in range(n):
                f.write(buffers[i % len(buffers)].tobytes())
        for preset in presets:
            config = RecorderConfig(
                output_dir=Path(out), x264_preset=preset, adaptive_quality=False
            )
            rec = ParticipantRecording(config, RecordingInfo("quality", preset))
            c0 = cpu_s()
            FastFeeder(rec, frames).push(n)
            rec.close("bench")
            rec.wait()
            cpu = cpu_s() - c0
            assert not rec.stats.dropped, rec.stats.dropped
            ssim, psnr = _compare(rec.path, source)
            kbps = rec.path.stat().st_size * 8 / seconds / 1000
            per_min = cpu / (seconds / 60)
            print(f"{preset:>10} {per_min:>16.1f} {per_min / 60:>16.2f} {kbps:>7.0f} "
                  f"{ssim:>7.4f} {psnr:>8.2f}")  # fmt: skip
            time.sleep(0.5)


if __name__ == "__main__":
    measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
