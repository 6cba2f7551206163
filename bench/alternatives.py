"""Ours against what users would build instead, each candidate in its own process.

* ``ffmpeg``: raw I420 and s16le piped into an ``ffmpeg`` subprocess writing mpegts
  (the CLI most people reach for), same libx264/AAC settings.
* ``naive``: the aiortc ``MediaRecorder`` pattern: PyAV ``container.mux()`` with
  default muxer options, encoding on the feeding thread.
* ``ours``: ``ParticipantRecording``.

Modes: ``fast`` feeds as fast as the candidate takes frames (throughput, CPU seconds
per media minute, peak RSS); ``paced`` feeds at 30 fps in real time and measures, per
video frame, the time from hand-over until the file on disk holds all of its bytes
(lag to disk); ``silent`` is ``paced`` with a participant whose microphone sends
nothing (muted, or never published).

Lag is measured from the outside: a thread polls the file's size every millisecond,
and after the run the TS file is parsed to find where each video frame's last TS
packet ends. Frame i is the i-th video PES in presentation order.

Run one: ``python -m bench.alternatives ours fast 1280 720 10``; it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from demo.testsignal import AUDIO_FRAME, RATE, camera_like
from recorder_agent import ParticipantRecording, RecorderConfig, RecordingInfo
from recorder_agent.encode.canvas import Size
from recorder_agent.encode.encoders import configure_x264
from recorder_agent.output.tsparse import TS_PACKET, pat_pmt_pid, pes_pts, ts_header

from .frames import BACKLOG, FPS, as_rtc, rtc_tone, tone_pcm
from .measure import cpu_s, rss_mb, run_module

CANDIDATES = ("ffmpeg", "naive", "ours")
# As the worker runs (worker.py): glibc's per-thread malloc arenas cost a threaded
# recorder ~9 MB of RSS each otherwise. Every candidate gets the same setting.
MALLOC_ARENA_MAX = "2"
MODES = ("fast", "paced", "silent")


CHILD_PIDS: list[int] = []  # recorder processes the candidate started (ffmpeg)


class SizeWatcher:
    """Polls a file's size every millisecond; keeps (time, size) at each change. Also
    samples the RSS of this process and its recorder children every 10 ms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: list[tuple[float, int]] = []
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = -1
        tick = 0
        while not self._stop.is_set():
            tick += 1
            if tick % 10 == 0:
                rss = rss_mb() + sum(rss_mb(pid) for pid in CHILD_PIDS)
                self.peak_rss_mb = max(self.peak_rss_mb, rss)
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                size = 0
            if size != last:
                self.samples.append((time.perf_counter(), size))
                last = size
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def first_time_with(self, size: int) -> float | None:
        for t, s in self.samples:
            if s >= size:
                return t
        return None


def video_frame_ends(path: Path) -> list[int]:
    """Byte offset just past the last TS packet of each video PES, in pts order."""
    data = path.read_bytes()
    video_pid: int | None = None
    pes: list[tuple[int, int]] = []  # (pts, end offset)
    pmt_pids: set[int] = set()
    for off in range(0, len(data) - TS_PACKET + 1, TS_PACKET):
        pkt = data[off : off + TS_PACKET]
        pid, pusi, payload = ts_header(pkt)
        if pid == 0 and pusi:
            pmt_pids.add(pat_pmt_pid(pkt, payload))
        elif pid in pmt_pids and pusi and video_pid is None:
            p = payload + 1 + pkt[payload]
            section_len = ((pkt[p + 1] & 0x0F) << 8) | pkt[p + 2]
            info_len = ((pkt[p + 10] & 0x0F) << 8) | pkt[p + 11]
            i = p + 12 + info_len
            while i < p + 3 + section_len - 4:
                stype, epid = pkt[i], ((pkt[i + 1] & 0x1F) << 8) | pkt[i + 2]
                if stype == 0x1B:
                    video_pid = epid
                i += 5 + (((pkt[i + 3] & 0x0F) << 8) | pkt[i + 4])
        elif pid == video_pid:
            if pusi:
                pes.append((pes_pts(memoryview(pkt)[payload:]) or 0, off + TS_PACKET))
            elif pes:
                pes[-1] = (pes[-1][0], off + TS_PACKET)
    return [end for _, end in sorted(pes)]


class Feeder:
    """Hands the same frames to a candidate, as fast as it takes them or in real time."""

    def __init__(self, w: int, h: int, seconds: float, paced: bool, audio: bool) -> None:
        self.w, self.h, self.paced, self.audio = w, h, paced, audio
        self.n = int(seconds * FPS)
        self.buffers = camera_like(w, h, 30)
        self.pcm = tone_pcm()
        self.handed: list[float] = []  # perf_counter when video frame i was handed over

    def run(self, video: Any, audio: Any) -> None:
        """Call ``video(i, buffer)`` per frame and ``audio(j, pcm)`` per 10 ms."""
        t0 = time.perf_counter()
        aj = 0
        for i in range(self.n):
            due = t0 + i / FPS
            if self.paced and (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            while self.audio and aj * AUDIO_FRAME * FPS < (i + 1) * RATE:
                audio(aj, self.pcm)
                aj += 1
            self.handed.append(time.perf_counter())
            video(i, self.buffers[i % len(self.buffers)])


def run_ours(feed: Feeder, path: Path) -> None:
    config = RecorderConfig(output_dir=path.parent / "ours", adaptive_quality=False)
    rec = ParticipantRecording(config, RecordingInfo("bench", "ours"))
    frames = as_rtc(feed.buffers, feed.w, feed.h)
    audio = rtc_tone()
    base = time.monotonic_ns() // 1000
    while rec.path is None:
        time.sleep(0.001)
    os.symlink(rec.path, path)

    def video(i: int, _buffer: np.ndarray) -> None:
        rec.push_video(frames[i % len(frames)], base + i * 1_000_000 // FPS)
        while not feed.paced and rec.queue_depth > BACKLOG:  # back-pressure, as a pipe
            time.sleep(0.0005)  # gives: the queue would otherwise drop frames

    def audio_cb(j: int, _pcm: np.ndarray) -> None:
        rec.push_audio(audio, base + j * 10_000)

    feed.run(video, audio_cb)
    rec.close("bench")
    rec.wait()
    dropped = {k: v for k, v in rec.stats.dropped.items() if v}
    if dropped:
        print(f"ours dropped {dropped}", file=sys.stderr)


def run_naive(feed: Feeder, path: Path) -> None:
    container = av.open(str(path), "w", format="mpegts")
    vstream = container.add_stream("libx264", rate=FPS)
    configure_x264(vstream.codec_context, RecorderConfig(), Size(feed.w, feed.h))
    astream = container.add_stream("aac", rate=RATE, layout="mono")
    astream.codec_context.bit_rate = 64000
    h = feed.h * 3 // 2

    def video(i: int, buffer: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(buffer.reshape(h, feed.w), "yuv420p")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
        for packet in vstream.encode(frame):
            container.mux(packet)

    def audio(j: int, pcm: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), "s16", "mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, j * AUDIO_FRAME, Fraction(1, RATE)
        for packet in astream.encode(frame):
            container.mux(packet)

    feed.run(video, audio)
    for stream in (vstream, astream):
        for packet in stream.encode(None):
            container.mux(packet)
    container.close()


def run_ffmpeg(feed: Feeder, path: Path) -> None:
    audio_r, audio_w = os.pipe()
    cmd = [
        "ffmpeg", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{feed.w}x{feed.h}",
        "-r", str(FPS), "-probesize", "32", "-analyzeduration", "0", "-i", "pipe:0",
        "-f", "s16le", "-ar", str(RATE), "-ac", "1",
        "-probesize", "32", "-analyzeduration", "0", "-i", f"pipe:{audio_r}",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-crf", "23",
        "-g", str(2 * FPS), "-threads", "2",
        "-c:a", "aac", "-b:a", "64k", "-f", "mpegts", str(path),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=(audio_r,)
    )
    CHILD_PIDS.append(proc.pid)
    os.close(audio_r)
    assert proc.stdin is not None
    n_audio = feed.n * RATE // (FPS * AUDIO_FRAME)

    def audio_writer() -> None:
        """Audio has its own pipe and thread: in lockstep with video, ffmpeg (probing
        one input while the other's pipe is full) deadlocks."""
        t0 = time.perf_counter()
        with os.fdopen(audio_w, "wb", buffering=0) as out:
            for j in range(n_audio if feed.audio else 0):
                due = t0 + j * AUDIO_FRAME / RATE
                if feed.paced and (delay := due - time.perf_counter()) > 0:
                    time.sleep(delay)
                try:
                    out.write(feed.pcm.tobytes())
                except BrokenPipeError:
                    return
            if not feed.audio:  # a silent microphone: the pipe stays open, empty
                done.wait()

    done = threading.Event()
    writer = threading.Thread(target=audio_writer, daemon=True)
    writer.start()
    feed.run(lambda _i, buffer: proc.stdin.write(buffer.data), lambda _j, _pcm: None)
    proc.stdin.close()
    done.set()
    writer.join()
    proc.wait()


def measure(candidate: str, mode: str, w: int, h: int, seconds: float) -> dict[str, Any]:
    """One candidate, one mode, in this process (run it in a fresh one)."""
    feed = Feeder(w, h, seconds, paced=mode != "fast", audio=mode != "silent")
    run = {"ffmpeg": run_ffmpeg, "naive": run_naive, "ours": run_ours}[candidate]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{candidate}.ts"
        harness_rss = rss_mb()
        watcher = SizeWatcher(path)
        c0, t0 = cpu_s(children=True), time.perf_counter()
        if mode == "silent":
            # The ffmpeg pipe waits for audio forever: give up, and say what was on disk.
            def stalled() -> None:
                size = os.stat(path).st_size if path.exists() else 0
                print(json.dumps({"candidate": candidate, "mode": mode, "stalled": True,
                                  "bytes_on_disk": size, "after_s": seconds + 10}))  # fmt: skip
                sys.stdout.flush()
                os._exit(0)

            timer = threading.Timer(seconds + 10, stalled)
            timer.start()
        run(feed, path)
        if mode == "silent":
            timer.cancel()
        elapsed, cpu = time.perf_counter() - t0, cpu_s(children=True) - c0
        watcher.stop()
        result: dict[str, Any] = {
            "candidate": candidate,
            "mode": mode,
            "size": f"{w}x{h}",
            "frames": feed.n,
            "fps": feed.n / elapsed,
            "cpu_s_per_media_min": cpu / (feed.n / FPS / 60),
            "peak_rss_mb": watcher.peak_rss_mb,
            "harness_rss_mb": harness_rss,
        }
        ends = video_frame_ends(path.resolve())
        lags = []
        for i, end in enumerate(ends[: len(feed.handed)]):
            seen = watcher.first_time_with(end)
            if seen is not None:
                lags.append(max(0.0, seen - feed.handed[i]) * 1000)
        if lags:
            result["lag_ms_p50"] = float(np.percentile(lags, 50))
            result["lag_ms_p99"] = float(np.percentile(lags, 99))
            result["lag_ms_max"] = max(lags)
        first = next((t for t, s in watcher.samples if s > 0), None)
        result["first_byte_s"] = None if first is None else first - feed.handed[0]
        result["video_frames_in_file"] = len(ends)
        with av.open(str(path.resolve())) as c:
            result["streams"] = sorted(s.type for s in c.streams)
        return result


def run_isolated(candidate: str, mode: str, w: int, h: int, seconds: float) -> dict[str, Any]:
    """``measure`` in a fresh interpreter: its own peak RSS and CPU counters."""
    return {
        "candidate": candidate,
        "mode": mode,
        **run_module(
            "bench.alternatives", candidate, mode, w, h, seconds,
            timeout=seconds * 20 + 120, env={"MALLOC_ARENA_MAX": MALLOC_ARENA_MAX},
        ),
    }  # fmt: skip


if __name__ == "__main__":
    name, run_mode, width, height, secs = sys.argv[1:6]
    print(json.dumps(measure(name, run_mode, int(width), int(height), float(secs))))
