"""End to end: real livekit-server, the worker as users run it, synthetic publishers."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from datetime import datetime
from pathlib import Path

from demo.testsignal import Publisher
from recorder_agent.inspection import inspect_file

from ..conftest import ffprobe
from .conftest import Worker, delete_room, join, publishing, room_with_agent, until_recorded

AV_SYNC_MS = 40


def check_file(path: Path, video: bool = True) -> float:
    """A valid recording (h264 + aac, or aac alone, by ffprobe and PyAV); returns its
    duration."""
    probe = ffprobe(path)
    assert probe["format"]["format_name"] == "mpegts"
    codecs = ["aac", "h264"] if video else ["aac"]
    assert sorted(s["codec_name"] for s in probe["streams"]) == codecs
    report = inspect_file(path)
    assert report.ok, (path, report.problems)
    return report.duration_s


async def publish(
    room_name: str,
    identity: str,
    seconds: float,
    kind: str = "standard",
    recorded: Worker | None = None,
    **kw,
) -> Publisher:
    """Join, publish and stream ``seconds`` of media; given the worker in ``recorded``,
    the seconds and markers count from when its recorder received the tracks and, with
    video, put the first picture in the file."""
    room, pub = await publishing(room_name, identity, kind, **kw)
    if recorded is not None:
        await until_recorded(recorded, room_name, identity)
        pub.restart_clock()
        if pub.video:
            seconds += await _stream_until_first_picture(recorded, room_name, identity, pub)
    await pub.stream(seconds)
    await room.disconnect()
    return pub


async def _stream_until_first_picture(
    worker: Worker, room: str, identity: str, pub: Publisher
) -> float:
    """Stream unmarked media until the manifest (written at once then) has the first
    picture, and shift the markers after it; returns the media time that took.

    libwebrtc drops frames until it can decode one: once 13 frames, so the first
    picture came 0.68 s after the subscription and a marker at 0.5 s had none."""
    markers, pub.markers = pub.markers, ()
    deadline = time.monotonic() + 15
    while not any(
        m["participant"]["identity"] == identity and m.get("first_video_s") is not None
        for m in worker.manifests(room)
    ):
        assert time.monotonic() < deadline, f"no picture from {identity}\n{worker.describe()}"
        await pub.stream(pub.position + 0.1)
    pub.markers = [m + pub.position for m in markers]
    return pub.position


def record_one(worker: Worker, room: str, seconds: float, **kw) -> tuple[Path, dict]:
    """One participant publishing into a room created through the API; its file."""

    async def run() -> None:
        await room_with_agent(worker, room)
        await publish(room, "solo", seconds, **kw)

    asyncio.run(run())
    [manifest] = worker.wait_finished(room, 1)
    [path] = worker.recordings(room)
    return path, manifest


def test_api_room_gets_the_agent_and_two_participants_give_two_files(worker: Worker):
    async def run() -> None:
        await room_with_agent(worker, "e2e-two")
        await asyncio.gather(
            publish("e2e-two", "alice", 6),
            publish("e2e-two", "bob", 6, width=640, height=360),
        )

    asyncio.run(run())
    manifests = worker.wait_finished("e2e-two", 2)
    assert {m["participant"]["identity"] for m in manifests} == {"alice", "bob"}
    assert all(m["end_reason"] == "participant_left" for m in manifests)
    assert {(m["canvas"]["width"], m["canvas"]["height"]) for m in manifests} == {
        (320, 240),
        (640, 360),
    }
    for path in worker.recordings("e2e-two"):
        assert check_file(path) > 4


def test_av_offset_on_markers(worker: Worker):
    """Flash and beep captured together by the publisher come out together.

    One publisher per process, as real clients are. It queues its audio ahead (see
    testsignal.Publisher), so a busy machine cannot make it send audio late for good:
    no receiver could undo that without RTCP sender reports (the SDK exposes none).
    Markers from the first second the recorder has the tracks on.
    """
    markers = [0.5, 1.5, 3.0, 4.5, 6.0, 7.5]
    path, _ = record_one(worker, "e2e-sync", 9, markers=markers, recorded=worker)
    check_file(path)
    report = inspect_file(path)
    assert len(report.av_offsets_ms) == len(markers), (report.flashes_s, report.beeps_s)
    print(f"A/V offsets {report.av_offsets_ms} ms")
    assert max(abs(o) for o in report.av_offsets_ms) <= AV_SYNC_MS, report.av_offsets_ms


def test_present_before_the_agent_and_late_joiner(worker: Worker):
    async def run() -> None:
        first = asyncio.create_task(publish("e2e-late", "early", 8))  # creates the room
        await asyncio.sleep(4)
        await publish("e2e-late", "late", 4)
        await first

    asyncio.run(run())
    manifests = worker.wait_finished("e2e-late", 2)
    assert {m["participant"]["identity"] for m in manifests} == {"early", "late"}
    for path in worker.recordings("e2e-late"):
        check_file(path)


def test_leave_and_rejoin_gives_two_files(worker: Worker):
    async def run() -> None:
        await room_with_agent(worker, "e2e-rejoin")
        await publish("e2e-rejoin", "carol", 4)
        await publish("e2e-rejoin", "carol", 4)

    asyncio.run(run())
    manifests = worker.wait_finished("e2e-rejoin", 2)
    files = worker.recordings("e2e-rejoin")
    assert len(files) == 2 and len({m["file"] for m in manifests}) == 2
    for path in files:
        assert check_file(path) > 2


def test_mute_then_unmute_keeps_one_continuous_timeline(worker: Worker):
    left_at = 0.0

    async def run() -> None:
        nonlocal left_at
        await room_with_agent(worker, "e2e-mute")
        room, pub = await publishing("e2e-mute", "dave")
        await pub.stream(3)
        mic = pub.publications["audio"].track
        mic.mute()
        pub.audio = False
        await pub.stream(8)
        mic.unmute()
        pub.audio = True
        await pub.stream(11)
        await room.disconnect()
        left_at = time.time()

    asyncio.run(run())
    [manifest] = worker.wait_finished("e2e-mute", 1)
    [path] = worker.recordings("e2e-mute")
    duration = check_file(path)
    wall = left_at - datetime.fromisoformat(manifest["start_utc"]).timestamp()
    assert abs(duration - wall) <= 0.5, (duration, wall)
    assert not any(s.gaps for s in inspect_file(path).streams)
    kinds = [e["type"] for e in manifest["events"]]
    assert "mute" in kinds and "unmute" in kinds


def test_audio_only_participant(worker: Worker):
    path, manifest = record_one(worker, "e2e-audio", 5, video=False)
    assert check_file(path, video=False) > 3  # AAC alone: no black picture to encode
    assert [t["kind"] for t in manifest["tracks"]] == ["audio"]


def test_a_camera_turned_on_mid_call_ends_the_audio_only_file_and_starts_one_with_video(
    worker: Worker,
):
    """A caller who speaks first (past ``layout_wait`` the file is AAC alone) and then
    turns the camera on: that file ends (``video_started``) and the next carries both,
    from where the first stopped, its markers in sync."""
    left_at = 0.0

    async def run() -> None:
        nonlocal left_at
        await room_with_agent(worker, "e2e-camera-on")
        room, pub = await publishing("e2e-camera-on", "erin", video=False)
        await until_recorded(worker, "e2e-camera-on", "erin")
        pub.restart_clock()
        await pub.stream(5)  # the file is decided audio-only at 3 s
        pub.video, pub.markers = True, [1.0, 2.5, 4.0]
        await pub.publish_video(room)
        seconds = await _stream_until_first_picture(worker, "e2e-camera-on", "erin", pub)
        await pub.stream(seconds + 5)
        await room.disconnect()
        left_at = time.time()

    asyncio.run(run())
    first, second = sorted(worker.wait_finished("e2e-camera-on", 2), key=lambda m: m["start_utc"])
    assert first["end_reason"] == "video_started", first
    assert [t["kind"] for t in first["tracks"]] == ["audio"]
    assert sorted(t["kind"] for t in second["tracks"]) == ["audio", "video"]
    first_path, second_path = (worker.out / "e2e-camera-on" / m["file"] for m in (first, second))
    audio_only = check_file(first_path, video=False)
    assert 4.5 < audio_only < 8, audio_only
    with_video = check_file(second_path)
    # From the first file's start to the caller leaving, all there, in two pieces.
    start = [datetime.fromisoformat(m["start_utc"]).timestamp() for m in (first, second)]
    seam = start[1] - (start[0] + audio_only)
    print(f"audio-only {audio_only:.2f} s, then {with_video:.2f} s; seam {seam * 1000:.0f} ms")
    # A file's length comes in whole AAC frames (21.3 ms) after one of priming; the audio
    # in flight as the first file ends (at most one 100 ms frame) is lost.
    assert -0.075 <= seam <= 0.25, seam
    assert abs(audio_only + seam + with_video - (left_at - start[0])) <= 0.5
    report = inspect_file(second_path)
    assert len(report.av_offsets_ms) == 3, (report.flashes_s, report.beeps_s)
    assert max(abs(o) for o in report.av_offsets_ms) <= AV_SYNC_MS, report.av_offsets_ms


def test_camera_and_screen_share_go_to_separate_files(worker: Worker):
    async def run() -> None:
        await room_with_agent(worker, "e2e-screen")
        room = await join("e2e-screen", "frank")
        camera, screen = Publisher(), Publisher(width=640, height=360)
        await camera.publish(room)
        await screen.publish(room, screen=True)
        await asyncio.gather(camera.stream(5), screen.stream(5))
        await room.disconnect()

    asyncio.run(run())
    manifests = worker.wait_finished("e2e-screen", 2)
    assert sorted(m["label"] for m in manifests) == ["", "screen"]
    screen = next(m for m in manifests if m["label"] == "screen")
    assert {t["source"] for t in screen["tracks"]} == {"screenshare", "screenshare_audio"}
    assert screen["canvas"] == {"width": 640, "height": 360}
    for path in worker.recordings("e2e-screen"):
        check_file(path)


def test_opt_out_attribute_writes_nothing(worker: Worker):
    async def run() -> None:
        await room_with_agent(worker, "e2e-optout")
        private = await join("e2e-optout", "grace", recording="off")
        pub = Publisher()
        await pub.publish(private)
        await asyncio.gather(pub.stream(4), publish("e2e-optout", "heidi", 4))
        await private.disconnect()

    asyncio.run(run())
    manifests = worker.wait_finished("e2e-optout", 1)
    time.sleep(1)
    assert [m["participant"]["identity"] for m in worker.manifests("e2e-optout")] == ["heidi"]
    assert not [p for p in (worker.out / "e2e-optout").iterdir() if "grace" in p.name]
    assert manifests


def test_a_voice_ai_call_is_recorded_whole_and_recorders_are_skipped(worker: Worker):
    """A SIP caller and a voice agent each get a file, whole from the moment the
    recorder received their tracks; egress and another recorder (an agent marked
    recorder_agent.role=recorder) get none."""

    async def other_recorder() -> None:
        room = await join("e2e-kinds", "recorder-2", "agent", **{"recorder_agent.role": "recorder"})
        pub = Publisher(video=False)
        await pub.publish(room)
        await pub.stream(4)
        await room.disconnect()

    async def run() -> None:
        await room_with_agent(worker, "e2e-kinds")
        await asyncio.gather(
            publish("e2e-kinds", "phone", 4, kind="sip", recorded=worker, video=False),
            publish("e2e-kinds", "bot", 4, kind="agent", recorded=worker, video=False),
            publish("e2e-kinds", "egress", 4, kind="egress"),
            other_recorder(),
        )

    asyncio.run(run())
    worker.wait_finished("e2e-kinds", 2)
    time.sleep(1)
    kinds = {
        m["participant"]["identity"]: m["participant"]["kind"]
        for m in worker.manifests("e2e-kinds")
    }
    assert kinds == {"phone": "sip", "bot": "agent"}
    for path in worker.recordings("e2e-kinds"):
        assert check_file(path, video=False) > 3.7  # both speak only: AAC alone


def test_file_grows_during_the_session(worker: Worker):
    sizes: list[int] = []

    async def run() -> None:
        await room_with_agent(worker, "e2e-grow")
        room, pub = await publishing("e2e-grow", "ivan")
        for second in range(1, 7):
            await pub.stream(second)
            files = worker.recordings("e2e-grow")
            sizes.append(files[0].stat().st_size if files else 0)
        await room.disconnect()

    asyncio.run(run())
    grown = sizes[1:]
    assert all(b > a for a, b in itertools.pairwise(grown)), sizes
    # The worker's progress lines for this recording (every 2 s in the tests): once a
    # second of media is in, each shows video flowing, the first line included.
    lines = re.findall(r"progress e2e-grow/ivan: ([\d.]+) s, [\d.]+ MB, ([\d.]+) fps",
                       worker.log.read_text())  # fmt: skip
    assert lines, worker.describe()
    assert all(float(fps) > 5 for media, fps in lines if float(media) >= 1), lines


def test_three_rooms_at_once(worker: Worker):
    rooms = ["e2e-multi-a", "e2e-multi-b", "e2e-multi-c"]

    async def run() -> None:
        await asyncio.gather(*(room_with_agent(worker, r) for r in rooms))
        await asyncio.gather(*(publish(r, "judy", 5) for r in rooms))

    asyncio.run(run())
    for r in rooms:
        worker.wait_finished(r, 1)
        [path] = worker.recordings(r)
        assert check_file(path) > 3


def test_room_deleted_finalizes_with_room_closed(worker: Worker):
    async def run() -> None:
        await room_with_agent(worker, "e2e-delete")
        room, pub = await publishing("e2e-delete", "kim")
        await pub.stream(4)
        await delete_room("e2e-delete")
        await room.disconnect()

    asyncio.run(run())
    [manifest] = worker.wait_finished("e2e-delete", 1)
    assert manifest["end_reason"] == "room_closed"
    check_file(worker.recordings("e2e-delete")[0])
