"""Unit tests of the pure parts: timing policy, timelines, canvas, inbox, manifest,
playlist text and TS parsing. No encoder runs here."""

from __future__ import annotations

import doctest
import importlib
import logging
import os
import random
import threading
import time

import numpy as np
import pytest
from livekit import api

from recorder_agent import RecorderConfig
from recorder_agent.encode.canvas import Size, choose_canvas, decide_canvas, fit_rect
from recorder_agent.log import quiet_sdk_teardown
from recorder_agent.ops import reconcile
from recorder_agent.output.hls import Segment, render_playlist, target_duration
from recorder_agent.output.tsparse import pes_pts, pes_timestamps
from recorder_agent.recording.inbox import AudioIn, Close, Drain, Inbox, Note, VideoIn
from recorder_agent.recording.latency import (
    RENDER_DELAY_US,
    BufferStats,
    DelayLine,
    average_delay_us,
)
from recorder_agent.recording.manifest import Manifest
from recorder_agent.recording.quality import Governor, Thinner, ladder
from recorder_agent.recording.sync import (
    AvSync,
    Gap,
    Origin,
    PlacePicture,
    RepeatPicture,
    Trimmed,
    WriteSamples,
    WriteSilence,
)
from recorder_agent.recording.timeline import (
    EARLY_US,
    LOOKAHEAD_US,
    AudioPlacement,
    AudioTimeline,
    VideoTimeline,
)
from recorder_agent.util import VIDEO_CLOCK, BadFrame, MachineCpu, available_cores, cpu_limit

RATE = 48_000
FRAME_US = 33_333


def sync(origin_us: int = 0) -> AvSync:
    return AvSync(Origin(origin_us, origin_us), RATE, FRAME_US, 500_000, 1_000_000)


def block(ms: int) -> list[np.ndarray]:
    return [np.zeros((1, RATE * ms // 1000), dtype=np.float32)]


def kinds(steps) -> list[type]:
    return [type(s) for s in steps]


# --- timing policy ----------------------------------------------------------------------


def test_video_pts_follow_timestamps_and_backwards_is_refused():
    s = sync(1_000_000)
    assert s.video(1_000_000, "f0", 0)[-1] == PlacePicture(0, "f0", 0)
    # one nominal frame after: whole 1/30 s ticks apart (see VideoTimeline)
    assert s.video(1_033_333, "f1", 1)[-1] == PlacePicture(3000, "f1", 1)
    with pytest.raises(BadFrame) as e:
        s.video(1_000_000, "old", 0)
    assert e.value.reason == "timestamp_backwards"


def test_audio_on_time_is_written_at_once_and_gap_free():
    s = sync()
    steps = s.audio(0, block(10)) + s.audio(10_000, block(10))
    assert kinds(steps) == [WriteSamples, WriteSamples] and steps[1].block.shape == (1, 480)
    assert s.media_time_s == 0.02


def written(steps) -> tuple[int, int, int]:
    """Samples of audio, silence and trimmed audio in ``steps``."""
    return (
        sum(x.block.shape[1] for x in steps if isinstance(x, WriteSamples)),
        sum(x.samples for x in steps if isinstance(x, WriteSilence)),
        sum(x.samples for x in steps if isinstance(x, Trimmed)),
    )


def test_audio_delivered_in_late_pieces_is_written_whole_with_no_silence():
    """A job process starved from 10 to 310 ms gets that audio late, in pieces, and
    catches up by 410 ms. Each piece's end looked like a gap, and the next piece then
    looked early. The lateness drains, so nothing is silence and nothing is cut."""
    s = sync()
    steps = [*s.audio(0, block(10))]
    frame = 1
    for arrival, count in ((310_000, 15), (360_000, 15), (410_000, 10)):
        for i in range(count):
            steps += s.audio(arrival + i * 100 - 10_000, block(10))
            frame += 1
        steps += s.idle(arrival + 50_000)  # the recording's quiet ticks between pieces
    for i in range(frame, 60):  # then on time
        steps += s.audio(i * 10_000, block(10))
    assert written(steps) == (60 * 480, 0, 0)


def test_a_real_pause_is_silence_as_long_as_the_least_lateness_after_it():
    s = sync()
    steps = s.audio(0, block(10)) + s.audio(10_000, block(10))
    # nothing for a second, then audio in real time: a gap, told after LOOKAHEAD_US
    count = LOOKAHEAD_US // 10_000 + 20
    late = [s.audio(1_010_000 + i * 10_000, block(10)) for i in range(count)]
    assert not [x for x in late[0] if isinstance(x, WriteSilence)]  # not told yet
    for part in late:
        steps += part
    audio, silence, trimmed = written(steps)
    assert audio == (count + 2) * 480 and trimmed == 0
    assert abs(silence - RATE * 99 // 100) <= 480
    assert any(isinstance(x, Gap) and x.kind == "audio_gap" for x in steps)


def test_a_late_frame_is_decided_when_audio_stops_or_the_file_ends():
    s = sync()
    s.audio(0, block(10))
    s.audio(500_000, block(10))  # late, and nothing after it
    assert written(s.video(900_000, "f", 0)) == (0, 0, 0)  # 0.4 s ago: it may still drain
    steps = s.video(1_100_000, "f", 0)  # audio stopped: it was a gap
    assert kinds(steps)[:2] == [WriteSilence, WriteSamples] and steps[0].samples == 490 * 48
    s2 = sync()
    s2.audio(0, block(10))
    s2.audio(500_000, block(10))
    steps = s2.finish(s2.end_instant(520_000))
    assert kinds(steps)[:2] == [WriteSilence, WriteSamples] and steps[0].samples == 490 * 48


def test_trimmed_audio_is_counted_and_an_overlap_is_an_event():
    s = sync()
    for t in (0, 10_000, 20_000):
        s.audio(t, block(10))
    steps = s.audio(0, block(10))  # a repeat of the first 10 ms: 30 ms before the timeline
    assert steps == [Trimmed(480, overlap=True)]  # all of it overlapped
    steps = s.audio(25_000, block(10))  # 5 ms early: the anchor was late, not an overlap
    assert kinds(steps) == [Trimmed, WriteSamples] and steps[0] == Trimmed(240, overlap=False)


def test_silent_microphone_is_filled_behind_video_and_stopped_video_is_repeated():
    s = sync()
    steps = s.video(0, "f", 0)
    for i in range(1, 31):
        steps += s.video(i * FRAME_US, "f", 0)
    silence = sum(x.samples for x in steps if isinstance(x, WriteSilence))
    assert silence == pytest.approx(RATE * 0.5, abs=480)  # 1 s of video, 0.5 s fill delay
    s.audio(1_000_000, block(10))
    steps = []
    for i in range(1, 300):  # 3 s of audio and no video
        steps += s.audio(1_000_000 + i * 10_000, block(10))
    repeats = [x.pts for x in steps if isinstance(x, RepeatPicture)]
    assert len(repeats) == 2 and repeats[1] - repeats[0] == VIDEO_CLOCK
    after = s.video(4_000_000, "f", 0)
    assert any(isinstance(x, Gap) and x.kind == "video_gap" for x in after)


def test_idle_and_finish_fill_both_streams_to_the_end():
    s = sync()
    s.video(0, "f", 0)
    steps = s.idle(2_000_000)  # 2 s of wall time, no input
    assert kinds(steps).count(RepeatPicture) == 1  # video: up to fill_delay (0.5 s) ago
    assert WriteSilence not in kinds(steps)  # audio: up to IDLE_AUDIO_US (2 s) ago
    steps = s.idle(3_000_000)
    assert sum(x.samples for x in steps if isinstance(x, WriteSilence)) == RATE
    end = s.end_instant(3_500_000)
    assert end == 3_500_000
    s.finish(end)
    assert s.media_time_s == 3.5


def test_audio_after_a_stalled_event_loop_is_written_whole():
    """The job process's event loop stalls 0.8 s while the recording thread ticks: then
    the backlog comes at once. Silence written for the stall (the 0.5 s fill delay)
    made the timeline trim as much of the backlog."""
    s = sync()
    steps = [step for i in range(100) for step in s.audio(i * 10_000, block(10))]
    for tick in range(1_100_000, 1_800_000, 100_000):  # quiet ticks during the stall
        steps += s.idle(tick)
    for i in range(100, 180):  # 1.0-1.8 s, all stamped on arrival at 1.8 s
        steps += s.audio(1_800_000 + (i - 100) * 10 - 10_000, block(10))
    for i in range(180, 250):
        steps += s.audio(i * 10_000, block(10))
    assert written(steps) == (250 * 480, 0, 0)


def test_a_subscribed_tracks_audio_is_never_filled_while_it_is_late():
    """An event loop 3.8 s behind (a burst of voice rooms beside a CPU hog): with an
    audio track subscribed, the quiet ticks fill nothing, and the backlog, stamped when
    the SDK handed it over, is written whole."""
    s = sync()
    steps = [step for i in range(100) for step in s.audio(i * 10_000, block(10))]
    for tick in range(1_100_000, 4_800_000, 100_000):
        steps += s.idle(tick, audio_live=True)
    assert written(steps) == (100 * 480, 0, 0)
    for i in range(100, 500):
        steps += s.audio(i * 10_000, block(10))
    assert written(steps) == (500 * 480, 0, 0)
    steps = s.idle(9_000_000, audio_live=False)  # the track ended: silence from here
    assert written(steps)[1] > 0


def test_a_file_closed_at_once_still_covers_one_frame():
    s = sync()
    assert s.end_instant(0) == FRAME_US


def place(tl: AudioTimeline, start_us: int, samples: int) -> AudioPlacement:
    """Push one frame that is not late and take its placement."""
    tl.push(start_us, samples, None)
    [(_, placed)] = tl.release()
    return placed


def test_timelines():
    tl = AudioTimeline(RATE, 0)
    assert place(tl, 0, 480).silence == 0
    assert tl.silence_until(20_000) == 480
    vt = VideoTimeline(0, 1_000_000)
    assert vt.repeats_until(2_500_000) == [0, 90_000, 180_000]
    with pytest.raises(BadFrame, match="timestamp_backwards"):
        vt.place(1_000_000)  # not after the last repeat


def test_a_late_first_audio_frame_is_pulled_back_by_the_next_early_one():
    """Arrival is only ever late, so the earliest arrival is the true anchor: the first
    frames came 30 ms late through a busy loop (and set the origin), then on time."""
    tl = AudioTimeline(RATE, origin_us=30_000)
    stamps = [30_000, 31_000, 32_000, 30_000, 40_000, 50_000, 60_000, 70_000]
    placed = [place(tl, t, 480) for t in stamps]
    assert sum(p.silence for p in placed) == 0 and not any(p.overlap for p in placed)
    trimmed_us = sum(p.trim for p in placed) * 1_000_000 // RATE
    assert 30_000 - EARLY_US <= trimmed_us <= 30_000  # the 30 ms it was late, within 2 ms
    assert 80_000 <= tl.end_us <= 80_000 + EARLY_US  # the last frame ends where it really ends


def test_video_waits_for_the_reading_that_covers_it_and_never_goes_backwards():
    line: DelayLine[int] = DelayLine(max_hold_us=400_000)
    line.expect_readings()
    assert line.push(10_000, 10_000, 1) == []
    assert line.reading(5_000, 60_000, 20_000) == []  # taken before the frame came
    assert line.reading(200_000, 60_000, 20_000) == [(1, 40_000)]  # audio waited 40 ms more
    line.push(210_000, 210_000, 2)
    line.push(211_000, 211_000, 3)  # 1 ms later
    # The audio heard with them comes out 40 ms later: a reading before that is too early.
    assert line.reading(249_000, 60_000, 20_000) == []
    assert line.reading(450_000, None, 20_000) == [(2, 40_000), (3, 40_000)]  # audio unknown
    assert line.reading(460_000, 20_000, 20_000) == []  # nothing waited
    shifts = []
    for t in range(470_000, 800_000, 40_000):  # now as long as video
        line.push(t, t, t)
        shifts += [s for _, s in line.reading(t + 40_000, 20_000, 20_000)]
    assert shifts == sorted(shifts, reverse=True) and shifts[-1] == 0  # 20 ms a frame back
    stamps = [t + s for t, s in zip(range(470_000, 800_000, 40_000), shifts, strict=True)]
    assert stamps == sorted(set(stamps))  # still forward
    line.push(900_000, 900_000, 4)
    assert line.due(1_200_000) == [] and line.due(1_300_000) == [(4, 0)]  # held 0.4 s at most
    line.push(1_400_000, 1_400_000, 5)
    assert line.reading(1_500_000, 10_000, 2_100_000) == [(5, 0)]  # nonsense is ignored
    line.push(1_600_000, 1_600_000, 6)
    assert line.flush() == [(6, 0)]


def test_receive_delay_from_two_stats_snapshots():
    before, after = BufferStats(2.0, 100, 0.5, 100), BufferStats(2.6, 120, 0.52, 120)
    assert average_delay_us(before, after, video=False) == 30_000
    assert average_delay_us(before, after, video=True) == 30_000 + 1_000 + RENDER_DELAY_US
    assert average_delay_us(after, after, video=False) is None  # nothing came out


# --- canvas -------------------------------------------------------------------------------


def test_canvas_decision():
    cfg = RecorderConfig()
    assert decide_canvas(cfg, None, None) == Size(1280, 720)
    assert decide_canvas(cfg, None, Size(640, 360)) == Size(640, 360)
    assert decide_canvas(cfg, Size(1280, 720), Size(320, 180)) == Size(1280, 720)
    assert decide_canvas(cfg, Size(1280, 720), Size(180, 320)) == Size(720, 1280)
    assert decide_canvas(cfg, None, Size(3840, 2160)) == Size(1920, 1080)
    fixed = RecorderConfig(canvas_width=640, canvas_height=480)
    assert decide_canvas(fixed, Size(1280, 720), Size(1280, 720)) == Size(640, 480)
    assert choose_canvas(Size(1081, 607), 1920, 1080) == Size(1080, 606)
    assert fit_rect(Size(640, 480), Size(1280, 720)) == (Size(960, 720), 160, 0)
    assert Size(640, 360).rotated(1) == Size(360, 640)


# --- inbox --------------------------------------------------------------------------------


def test_inbox_keeps_order_bounds_video_and_never_drops_control():
    inbox = Inbox(video_max=2, audio_max_s=3)
    for i in range(4):
        inbox.put(VideoIn(i, i, 0))
    inbox.put(Note("mute", {}))
    inbox.put(AudioIn("a", 0, 10_000))
    inbox.put(Close("done"))
    assert inbox.dropped == {"video": 2, "audio": 0}
    got = [inbox.get(0) for _ in range(5)]
    assert [type(x).__name__ for x in got] == ["VideoIn", "VideoIn", "Note", "AudioIn", "Close"]
    assert [x.frame for x in got[:2]] == [2, 3]
    assert inbox.get(0) is None


def test_inbox_bounds_audio_by_its_duration_whatever_the_frame_size():
    inbox = Inbox(video_max=1, audio_max_s=0.3)
    for i in range(4):
        inbox.put(AudioIn(i, 0, 100_000))  # 100 ms frames, as the SDK hands them over
    assert inbox.dropped == {"video": 0, "audio": 1}
    for i in range(10):
        inbox.put(AudioIn(10 + i, 0, 10_000))  # 10 ms ones push out 100 ms
    assert inbox.dropped == {"video": 0, "audio": 2}
    got = []
    while (item := inbox.get(0)) is not None:
        got.append(item.frame)
    assert got == [2, 3, *range(10, 20)]


def test_a_closed_inbox_answers_drains_at_once():
    inbox = Inbox(1, 1)
    waiting = Drain(threading.Event())
    inbox.put(waiting)
    inbox.close()
    assert waiting.reached.is_set()
    late = Drain(threading.Event())
    inbox.put(late)
    assert late.reached.is_set() and inbox.depth() == 0


# --- manifest, playlist, TS ---------------------------------------------------------------


def test_manifest_round_trip_and_event_cap(tmp_path):
    m = Manifest(room="r", participant={"identity": "a"}, label="", file="a.ts",
                 created_utc="x", codecs={"audio": {"sample_rate": 48000}})  # fmt: skip
    for i in range(3):
        m.add_event("mute", float(i), limit=2)
    assert len(m.events) == 2 and m.events_dropped == 1
    m.write(tmp_path / "m.json")
    back = Manifest.read(tmp_path / "m.json")
    assert back == m
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    with pytest.raises(ValueError):
        Manifest.read(tmp_path / "other.json")


def test_playlist_text():
    text = render_playlist([Segment("seg-00000.ts", 4.0, 0), Segment("seg-00001.ts", 1.5, 360_000)],
                           target_duration(4.0), 1_700_000_000.0, ended=True)  # fmt: skip
    lines = text.splitlines()
    assert "#EXT-X-TARGETDURATION:5" in lines and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000+00:00" in lines
    assert "#EXTINF:1.500," in lines
    assert "#EXT-X-ENDLIST" not in render_playlist([], 5, None, ended=False)


def pes_packet(pts: int) -> bytes:
    """One TS packet starting a PES with ``pts``."""
    header = bytes([0x47, 0x41, 0x00, 0x10])
    p = pts
    stamp = bytes([0x21 | ((p >> 29) & 0x0E), (p >> 22) & 0xFF, 0x01 | ((p >> 14) & 0xFE),
                   (p >> 7) & 0xFF, 0x01 | ((p << 1) & 0xFE)])  # fmt: skip
    pes = b"\0\0\1\xe0\0\0\x80\x80\x05" + stamp
    return (header + pes).ljust(188, b"\xff")


def test_pes_timestamps():
    assert pes_pts(pes_packet(123_456)[4:]) == 123_456
    data = pes_packet(3000) + pes_packet(9000) + pes_packet(6000)
    assert pes_timestamps(data) == (3000, 9000)
    assert pes_timestamps(b"") == (None, None)


# --- consent, log escaping, control settings --------------------------------------------


def test_consent_policy():
    from recorder_agent.room import consented

    out, opt_in = RecorderConfig(), RecorderConfig(consent="opt-in")
    assert consented(out, {}) and not consented(out, {"recording": "off"})
    assert not consented(opt_in, {}) and consented(opt_in, {"recording": "on"})
    assert not consented(opt_in, {"recording": "yes please"})
    custom = RecorderConfig(consent="opt-in", opt_out_attribute="rec", opt_in_value="1")
    assert consented(custom, {"rec": "1"}) and not consented(custom, {"recording": "on"})


def test_identities_are_escaped_for_logs():
    from recorder_agent.util import printable

    assert printable("alice") == "alice" and printable("🎥 emoji") == "🎥 emoji"
    assert printable("eve\nINFO forged\x1b[2J") == "eve\\nINFO forged\\x1b[2J"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"consent": "maybe"}, "consent"),
        ({"webhook_url": "ftp://host/x"}, "webhook_url #1"),
        ({"webhook_url": "https://ok.example/x, not a url"}, "webhook_url #2"),
        ({"agent_name": " padded"}, "agent_name"),
        ({"x264_preset": "fastest"}, "x264_preset"),
        ({"min_fps": 0}, "min_fps"),
        ({"x264_tune": "film"}, "adaptive_quality"),
        ({"agent_name": "bell\x07"}, "agent_name"),
    ],
)
def test_bad_control_settings_are_config_errors(settings, message):
    from recorder_agent import ConfigError

    with pytest.raises(ConfigError, match=message):
        RecorderConfig(**settings)


def test_blank_agent_name_in_the_environment_is_an_error_and_secrets_are_not_echoed():
    from recorder_agent import ConfigError

    with pytest.raises(ConfigError, match="RECORDER_AGENT_NAME is set but empty"):
        RecorderConfig.from_env({"RECORDER_AGENT_NAME": " "})
    with pytest.raises(ConfigError) as e:
        RecorderConfig(webhook_url="ftp://user:s3cret@host/x")
    assert "s3cret" not in str(e.value)


def test_sdk_data_channel_teardown_is_info_and_other_errors_stay_errors(caplog):
    quiet_sdk_teardown()
    sdk = logging.getLogger("livekit")
    with caplog.at_level(logging.INFO, logger="livekit"):
        sdk.error(
            "%s - %s",
            "livekit::rtc_engine",
            "publisher data channel '_reliable' closed unexpectedly",
        )
        sdk.error("could not establish publisher connection: timeout")
    assert [r.levelname for r in caplog.records] == ["INFO", "ERROR"]


@pytest.mark.parametrize(
    "module",
    ["recording.timeline", "recording.latency", "recording.sync", "recording.manifest",
     "recording.inbox", "recording.quality", "recording.retry", "ops.reconcile",
     "output.tsparse"],
)  # fmt: skip
def test_the_policy_docstring_examples_hold(module):
    """The examples in the pure modules' docstrings are run, so they stay true."""
    mod = importlib.import_module(f"recorder_agent.{module}")
    result = doctest.testmod(mod)
    assert result.attempted and not result.failed


def _governor() -> Governor:
    return Governor(ladder("veryfast", 30, 10), rng=random.Random(7))


def test_overload_steps_down_once_per_settle_and_not_while_draining():
    gov = _governor()
    assert gov.observe(0.0, 0.29, 0.8) is None  # under DOWN_S
    assert gov.observe(0.05, 0.14, 1.0) is None  # under EARLY_S
    first = gov.observe(0.1, 0.45, 0.8)
    assert (str(first.level), first.direction, first.index) == ("superfast@30", "down", 1)
    assert gov.observe(0.3, 0.5, 1.0) is None  # within SETTLE_S of the step
    assert gov.observe(0.7, 0.38, 1.0) is None  # behind less than at the step: draining
    assert str(gov.observe(0.8, 0.42, 1.0).level) == "ultrafast@30"  # not draining
    # Far behind: two steps at once, and never past the last level.
    assert str(gov.observe(1.4, 0.9, 1.0).level) == "ultrafast@15"
    assert str(gov.observe(2.0, 0.95, 1.0).level) == "ultrafast@10"
    assert gov.observe(3.0, 2.0, 1.0) is None


def test_a_fast_growing_backlog_steps_down_in_proportion():
    """Behind by 0.7 s more each second: 0.3 of real time, so the level must cost at
    most 0.3 x 0.8 of veryfast@30 (x264 cost 30): ultrafast@20 (6.2), in one step."""
    gov = _governor()
    change = None
    for i in range(10):
        change = gov.observe(i * 0.1, 0.07 * i, 1.0 if i > 4 else 0.5)
        if change is not None:
            break
    assert str(change.level) == "ultrafast@20" and i == 5
    # Growing slowly (0.1 s a second) after that: one ordinary step.
    readings = [(1.2 + j * 0.1, 0.35 + 0.01 * j) for j in range(3)]
    changes = [gov.observe(t, b, 1.0) for t, b in readings]
    assert [str(c.level) for c in changes if c] == ["ultrafast@15"]


def test_an_old_backlog_does_not_hold_back_a_new_step_down():
    """The backlog at the last step down counts only until the recording caught up."""
    gov = _governor()
    gov.observe(0.0, 0.9, 1.0)
    gov.observe(100.0, 0.0, 0.1)  # caught up long ago
    assert gov.observe(200.0, 0.35, 1.0).direction == "down"


def test_a_step_up_that_held_resets_the_hold_at_the_next_step_down():
    gov = _governor()
    gov.observe(0.0, 0.4, 1.0)  # down
    t = 1.0
    while gov.observe(t, 0.0, 0.1) is None:  # up
        t += 0.5
    gov.observe(t + 1, 0.4, 1.0)  # down again at once: the hold doubles
    assert gov._hold == 2 * Governor.UP_HOLD_S
    t += 2
    while gov.observe(t, 0.0, 0.1) is None:  # up after the doubled hold
        t += 0.5
    gov.observe(t + Governor.STABLE_S + 1, 0.4, 1.0)  # down long after: back to the short hold
    assert gov._hold == Governor.UP_HOLD_S


def test_a_single_stall_costs_one_step_only():
    """A thread held up once (a slow disk) after calm readings: no rate to go by."""
    gov = _governor()
    for i in range(5):
        gov.observe(i * 0.1, 0.0, 0.3)
    assert str(gov.observe(0.5, 0.4, 0.3).level) == "superfast@30"


def test_a_saturated_encoder_steps_down_earlier():
    gov = _governor()
    assert gov.observe(0.0, 0.2, 0.85) is None
    assert str(gov.observe(0.1, 0.2, 0.95).level) == "superfast@30"


def test_overload_steps_up_after_a_calm_hold_only_when_the_level_above_fits():
    gov = _governor()
    gov.observe(0.0, 0.4, 1.0)  # superfast@30
    assert gov.observe(1.0, 0.0, 0.2) is None  # calm starts
    assert gov.observe(1.0 + Governor.UP_HOLD_S - 0.1, 0.0, 0.2) is None  # too soon
    # Calm long enough, but the busy share scaled to veryfast (x 1/0.6) would not fit.
    late = 1.0 + 1.5 * Governor.UP_HOLD_S
    assert gov.observe(late, 0.0, 0.5) is None
    up = gov.observe(late + 0.1, 0.0, 0.3)
    assert (str(up.level), up.direction, up.index) == ("veryfast@30", "up", 0)
    assert gov.observe(late + 100, 0.0, 0.0) is None  # at full quality: nothing above
    # A reading that is not calm restarts the hold.
    gov.observe(200.0, 0.4, 1.0)
    gov.observe(201.0, 0.0, 0.1)
    gov.observe(201.0 + Governor.UP_HOLD_S, 0.1, 0.1)
    assert gov.observe(202.0 + Governor.UP_HOLD_S, 0.0, 0.1) is None


def test_a_step_up_undone_soon_doubles_the_hold():
    gov = _governor()
    gov.observe(0.0, 0.4, 1.0)
    t = 0.1
    holds = []
    for _ in range(3):  # up, and down again at once: the hold grows each time
        start = t
        while gov.observe(t, 0.0, 0.1) is None:
            t += 0.5
        holds.append(t - start)
        t += 1.0
        assert gov.observe(t, 0.4, 1.0).direction == "down"
        t += 1.0
    assert holds[0] < 1.5 * Governor.UP_HOLD_S + 1
    assert holds[1] >= 2 * Governor.UP_HOLD_S
    assert holds[2] >= 4 * Governor.UP_HOLD_S


def test_thinner_keeps_the_target_rate_from_any_input_rate():
    for fps_in, target in ((30, 20), (30, 15), (30, 10), (20, 15), (24, 10)):
        thin = Thinner(target)
        step = 1_000_000 // fps_in
        kept = sum(thin.keep(i * step) for i in range(fps_in * 10))
        assert abs(kept / 10 - min(target, fps_in)) <= 0.6, (fps_in, target, kept)
    # Jitter does not cost frames that are due: 30 fps in, +-5 ms, 15 kept.
    thin = Thinner(15)
    jitter = [0, 5_000, -5_000, 3_000]
    kept = sum(thin.keep(i * 33_333 + jitter[i % 4]) for i in range(300))
    assert 148 <= kept <= 152


def _participant(
    identity: str, joined_ms: int, recorder: bool = True, kind: int = api.ParticipantInfo.AGENT
) -> api.ParticipantInfo:
    attributes = {reconcile.ROLE_ATTRIBUTE: reconcile.RECORDER_ROLE} if recorder else {}
    return api.ParticipantInfo(
        identity=identity, joined_at_ms=joined_ms, attributes=attributes, kind=kind
    )


def test_of_two_recorders_in_a_room_the_one_that_joined_first_stays():
    people = [
        _participant("caller", 1000, recorder=False),
        _participant("agent-B", 2000),
        _participant("agent-A", 2500),
    ]
    assert reconcile.first_recorder(people, "agent-B")
    assert not reconcile.first_recorder(people, "agent-A")
    tie = [_participant("agent-Z", 2000), _participant("agent-Y", 2000)]
    assert reconcile.first_recorder(tie, "agent-Y") and not reconcile.first_recorder(tie, "agent-Z")
    assert reconcile.first_recorder([_participant("caller", 1, recorder=False)], "agent-A")


def test_a_caller_who_sets_the_recorder_attribute_on_themselves_is_no_recorder():
    """Attributes are untrusted: a standard participant carrying the role attribute
    neither makes a joining recorder leave nor escapes its own recording."""
    spoof = _participant("caller", 1000, kind=api.ParticipantInfo.STANDARD)
    assert not reconcile.is_recorder(spoof)
    assert reconcile.first_recorder([spoof, _participant("agent-A", 2000)], "agent-A")


def test_the_room_check_forgets_rooms_that_got_a_recorder_or_ended():
    watch = reconcile.Watch(grace_s=3, retry_s=10, unrecorded_s=10)
    seen = reconcile.RoomSeen
    assert watch.plan([seen("a", 5, False), seen("b", 5, True)], now=100) == [
        reconcile.Dispatch("a", 5.0)
    ]
    assert watch.missing == 1
    assert watch.plan([seen("a", 9, True)], now=104) == []
    assert watch.missing == 0
    # Without a recorder again (its worker died): missing since it was last recorded.
    again = watch.plan([seen("a", 60, False)], now=155)
    assert again == [reconcile.Unrecorded("a", 51.0), reconcile.Dispatch("a", 51.0)]
    assert watch.plan([seen("b", 30, True)], now=160) == [] and watch.missing == 0


# --- the CPU a process can have -----------------------------------------------------------


def test_cpu_limit_reads_cgroup_v2_and_v1_and_unlimited_is_none():
    assert cpu_limit("200000 100000\n", None, None) == 2.0
    assert cpu_limit("50000 100000", "-1", "100000") == 0.5  # v2 wins where both exist
    assert cpu_limit("max 100000\n", None, None) is None
    assert cpu_limit(None, "150000\n", "100000\n") == 1.5
    assert cpu_limit(None, "-1", "100000") is None  # v1: no quota
    assert cpu_limit(None, None, None) is None
    assert cpu_limit("garbage", None, None) is None


def test_available_cores_never_exceed_the_cpus_this_process_may_run_on():
    assert 0 < available_cores() <= len(os.sched_getaffinity(0))


def test_machine_cpu_reads_a_share_between_0_and_1():
    cpu = MachineCpu()
    cpu.share()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # busy, so that the second reading has moved on
        pass
    share = cpu.share()
    assert share is not None and 0.0 <= share <= 1.0
