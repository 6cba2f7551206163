"""A real browser as a publisher: headless Chromium (Debian's package) running
livekit-client from npm (tests/browser, pinned by its package-lock.json), served from
loopback, publishing Chromium's fake capture devices fed with marker media.

Marker media: one loop of ``LOOP_S`` seconds, video and audio the same length, with a
white flash (4 frames: single frames can vanish in WebRTC encoding) and a 100 ms 1 kHz
beep at ``MARKER_S`` into each loop. Chromium starts the two files independently, so
the page watches its own capture and reports the instant of each flash and beep: the
capture's own A/V relation, which the recording is compared with.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from demo import devserver
from demo.testsignal import DARK, FLASH, RATE

PAGE_DIR = Path(__file__).resolve().parent.parent / "browser"
LOOP_S = 2.0
MARKER_S = 0.5
FPS = 30


def chromium() -> str:
    """The Chromium binary; `make test` installs Debian's package."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    raise RuntimeError("chromium is missing: `make test` installs it (apt-get install chromium)")


def write_marker_media(folder: Path, width: int, height: int) -> tuple[Path, Path]:
    """One loop of marker video (Y4M) and audio (WAV, 48 kHz mono)."""
    y4m, wav = folder / f"markers-{width}x{height}.y4m", folder / "markers.wav"
    frames = round(LOOP_S * FPS)
    chroma = np.full((height // 2) * (width // 2) * 2, 128, np.uint8).tobytes()
    with open(y4m, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            luma = np.full((height, width), DARK, np.uint8)
            x = (i * 8) % (width - 64)  # a moving block: the encoders do some work
            luma[height // 4 : height // 4 + 64, x : x + 64] = 160
            if 0 <= i - round(MARKER_S * FPS) < 4:
                luma[:] = FLASH
            f.write(b"FRAME\n" + luma.tobytes() + chroma)
    n = round(LOOP_S * RATE)
    t = np.arange(n) / RATE
    amplitude = np.where((t >= MARKER_S) & (t < MARKER_S + 0.1), 0.5, 0.005)
    samples = (np.sin(2 * np.pi * 1000 * t) * amplitude * 32767).astype(np.int16)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return y4m, wav


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, reports: queue.Queue, **kw) -> None:
        self.reports = reports
        super().__init__(*args, directory=str(PAGE_DIR), **kw)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.reports.put(json.loads(body or b"{}"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@dataclass
class Browser:
    """One Chromium process publishing; ``reports`` holds what its page said."""

    proc: subprocess.Popen
    reports: queue.Queue
    log: Path
    said: list[dict] = field(default_factory=list)

    def wait(self, event: str, timeout: float) -> dict:
        """The page's report ``event``; fails with the page's error or the browser log."""
        try:
            while True:
                report = self.reports.get(timeout=timeout)
                self.said.append(report)
                if report.get("event") == event:
                    return report
                if report.get("event") == "error":
                    raise AssertionError(f"browser page failed: {report['error']}")
        except queue.Empty:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise AssertionError(f"no '{event}' from the browser in {timeout} s\n{tail}") from None


@contextmanager
def page_server() -> Iterator[tuple[str, queue.Queue]]:
    """Serves tests/browser on a free loopback port; yields (base URL, reports)."""
    if not (PAGE_DIR / "node_modules/livekit-client/dist/livekit-client.umd.js").exists():
        raise RuntimeError("tests/browser/node_modules is missing: `make test` runs npm ci there")
    reports: queue.Queue = queue.Queue()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, reports=reports))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", reports
    finally:
        httpd.shutdown()


@contextmanager
def browser(
    base: str,
    reports: queue.Queue,
    folder: Path,
    *,
    url: str,
    token: str,
    seconds: float,
    codec: str = "vp8",
    simulcast: bool = True,
    width: int = 640,
    height: int = 360,
    mute_at: float = 0,
    unmute_at: float = 0,
) -> Iterator[Browser]:
    """Chromium publishing the marker media for ``seconds``, then leaving."""
    y4m, wav = write_marker_media(folder, width, height)
    params = dict(url=url, token=token, seconds=seconds, codec=codec, width=width,
                  height=height, fps=FPS, simulcast=int(simulcast), mute_at=mute_at,
                  unmute_at=unmute_at)  # fmt: skip
    log = folder / "chromium.log"
    profile = folder / "profile"
    cmd = [
        chromium(),
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        # ICE candidates with real addresses: livekit-server cannot resolve mDNS names.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--enable-logging=stderr",
        f"{base}/publish.html?{urlencode(params)}",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        yield Browser(proc, reports, log)
    finally:
        devserver.stop(proc)
