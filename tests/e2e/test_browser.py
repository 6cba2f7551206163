"""End to end with real browsers: headless Chromium publishing through livekit-client
into the worker (see browser.py). Every marker in each file is compared with what the
browser itself captured: the recording must keep the capture's A/V relation.

Beside stress-ng --cpu 1 on these 2 cores (2026-11-27, 61 files, two browsers at once
in 10 runs), with audio stamped in the SDK's callback instead of on the event loop
(receive.py): every marker from the third on within 33.3 ms, and the first two within
40 ms but in the mute test, 4 times (42.4-71.4 ms, 3 of them with the test run alone,
first after the worker started). There the video's jitter delay starts near 110 ms and
falls to 35 while NetEq's climbs to 140, and quarter-second averages lag both. Before,
one of two browsers' files had a marker 52.8 ms off 5 s in, and the first seconds
reached 46-73 ms. With video from the callback too (2026-11-28, 55 files): every marker
from the third on within 15.2 ms, the first two within 40 ms in 109 of 110 (the mute
test's first flash 54.8 ms once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path

import av
import pytest

from demo import devserver
from recorder_agent.inspection import inspect_file

from .browser import LOOP_S, browser, page_server
from .conftest import Worker, room_with_agent
from .test_worker import AV_SYNC_MS, check_file

SECONDS = 10.0
# The first seconds, while NetEq's delay climbs faster than quarter-second averages
# follow (recording/latency.py), get a looser bound; the README gives both figures.
SETTLE_S = 3.0
EARLY_SYNC_MS = 100


def captured_offsets_ms(page: dict) -> list[float]:
    """The browser's own A/V relation at each marker: beep minus flash (ms). Not a
    constant: Chromium's fake camera runs slow on a busy machine (2.03-2.09 s loops
    beside audio's 2.003 s), so each recorded marker is compared with its own."""
    flashes, beeps = page["flashes_ms"], page["beeps_ms"]
    assert flashes and beeps, page
    return [round(min(beeps, key=lambda b: abs(b - f)) - f, 1) for f in flashes]


def match_markers(recorded_s: list[float], captured_ms: list[float]) -> int:
    """Index of the captured flash that the first recorded one is: the alignment whose
    time differences spread least."""
    best, best_spread = 0, float("inf")
    for k in range(len(captured_ms) - len(recorded_s) + 1):
        diffs = [c - r * 1000 for r, c in zip(recorded_s, captured_ms[k:], strict=False)]
        if (spread := max(diffs) - min(diffs)) < best_spread:
            best, best_spread = k, spread
    return best


def record_browsers(
    worker: Worker, tmp_path: Path, room: str, count: int = 1, **kw
) -> list[tuple[Path, dict]]:
    """``count`` browsers publish into ``room`` at once for SECONDS; each one's file and
    its page's report."""
    asyncio.run(room_with_agent(worker, room))
    with contextlib.ExitStack() as stack:
        running = []
        for i in range(count):
            folder = tmp_path / f"browser{i}"
            folder.mkdir()
            base, reports = stack.enter_context(page_server())
            running.append(stack.enter_context(browser(
                base, reports, folder, url=devserver.URL,
                token=devserver.token(room, f"browser{i}"), seconds=SECONDS, **kw,
            )))  # fmt: skip
        pages = [b.wait("done", SECONDS + 60) for b in running]
    worker.wait_finished(room, count)
    files = sorted(worker.recordings(room))  # browser0-…, browser1-…
    assert len(files) == count, files
    return list(zip(files, pages, strict=True))


def flash_brackets(path: Path) -> list[tuple[float, float]]:
    """(last dark frame, first flash frame) times of each flash in the file (s). On this
    2-core machine Chromium drops a third of its frames, often at a flash: the onset
    then lies anywhere in the bracket, and no recorder can place it closer."""
    with av.open(str(path)) as c:
        lumas = [(float(f.pts * f.time_base), f.to_ndarray()[: f.height].mean())
                 for f in c.decode(video=0)]  # fmt: skip
    return [(lumas[i - 1][0], t) for i, (t, y) in enumerate(lumas)
            if i and y > 150 >= lumas[i - 1][1]]  # fmt: skip


def first_new_picture_after(path: Path, t: float) -> float:
    """When the picture first changes after ``t`` (s): the moving block moves."""
    with av.open(str(path)) as c:
        last = None
        for f in c.decode(video=0):
            y = f.to_ndarray()[: f.height : 4, ::4]
            when = float(f.pts * f.time_base)
            if when > t and last is not None and abs(y.astype(int) - last).mean() > 1:
                return when
            last = y.astype(int)
    raise AssertionError(f"the picture never changed after {t} s")


def check_sync(path: Path, page: dict) -> list[float]:
    """Every recorded marker from SETTLE_S on within AV_SYNC_MS of the capture's
    relation, and the ones before within EARLY_SYNC_MS; the errors.

    The error of a marker is how far the captured beep-minus-flash lies outside what the
    recording allows: its beep minus any instant in the flash's bracket."""
    check_file(path)
    report = inspect_file(path)
    brackets = flash_brackets(path)
    assert len(brackets) >= SECONDS / LOOP_S - 2, (brackets, report.beeps_s)
    # The audio a leaving browser's receiver still held (NetEq's delay: 200-460 ms beside
    # stress-ng --cpu 1) is never played out, while its video is all there, moved that
    # much later: a flash in that last stretch has no beep in the file to be judged by.
    events = json.loads(path.with_suffix(".json").read_text())["events"]
    audio_end = min((e["media_time_s"] for e in events
                     if e["type"] == "track_ended" and e["source"] == "microphone"),
                    default=float("inf"))  # fmt: skip
    brackets = [(dark, flash) for dark, flash in brackets if flash + 0.1 <= audio_end]
    captured = captured_offsets_ms(page)
    k = match_markers([b for _, b in brackets], page["flashes_ms"])
    errors, first_frame = [], []
    for (dark, flash), truth in zip(brackets, captured[k:], strict=False):
        beep = min(report.beeps_s, key=lambda b: abs(b - flash))
        lo, hi = (beep - flash) * 1000, (beep - dark) * 1000
        errors.append(round(max(lo - truth, truth - hi, 0.0), 1))
        first_frame.append(round(lo - truth, 1))
    print(f"{path.name}: A/V error per marker {errors} ms (from the first flash frame "
          f"{first_frame} ms)")  # fmt: skip
    settled = [e for e, (_, t) in zip(errors, brackets, strict=False) if t >= SETTLE_S]
    seen = (errors, first_frame, brackets, report.beeps_s, page)
    assert settled and max(settled) <= AV_SYNC_MS, seen
    assert max(errors) <= EARLY_SYNC_MS, seen
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.stderr == "", out.stderr
    return errors


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_browser_markers_stay_in_sync(worker: Worker, tmp_path: Path, codec: str):
    [(path, page)] = record_browsers(worker, tmp_path, f"br-{codec}", codec=codec)
    check_sync(path, page)


def test_two_browsers_at_once_each_stay_in_sync(worker: Worker, tmp_path: Path):
    """Two Chromiums at 320x240 (two 360p simulcast encoders beside the worker and the
    server overload these 2 cores)."""
    for path, page in record_browsers(worker, tmp_path, "br-two", 2, width=320, height=240):
        check_sync(path, page)


def test_camera_mute_and_unmute_keeps_sync_and_picture(worker: Worker, tmp_path: Path):
    """The camera is muted 3-5 s in: one file, in sync after the unmute, and the picture
    moves again within a second of the unmute (never a frozen picture while the
    browser sends)."""
    [(path, page)] = record_browsers(worker, tmp_path, "br-mute", mute_at=3, unmute_at=5)
    check_sync(path, page)
    [manifest] = worker.manifests("br-mute")
    kinds = [e["type"] for e in manifest["events"]]
    assert "mute" in kinds and "unmute" in kinds, kinds
    unmuted = next(e["media_time_s"] for e in manifest["events"] if e["type"] == "unmute")
    freeze = first_new_picture_after(path, unmuted) - unmuted
    print(f"picture back {freeze:.2f} s after the unmute")
    assert freeze < 1.0
