"""Room events → per-participant recordings: the plugin's public entry point.

One ``RoomRecorder`` per room (one job). It turns the room's events into recordings:
one ``ParticipantRecording`` per participant for camera and microphone, and, by
default, another for screen share and its audio. Each subscribed track gets a feed
(receive.py) that moves frames from the SDK's stream into the recording, on the SDK's
own thread.

Inside your own agent it can also record the agent's own published tracks
(``record_self``): the SDK's ``AudioStream`` reads a local track before encoding, and
sends 10 ms of silence whenever nothing is captured (measured with livekit 1.1), so
the agent's file runs continuously.

A recording that fails (a write error) is replaced by a new file for the same tracks,
after a wait that grows with each failure in a row (recording/retry.py).

Recorders never record each other: the standalone worker joins hidden (others do not
see it) as an agent carrying the attribute ``recorder_agent.role=recorder``, and such
a participant is skipped (``is_recorder``: the attribute alone is not enough).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Coroutine
from typing import Any

from livekit import rtc

from .config import PARTICIPANT_KINDS, RecorderConfig
from .log import logger as log
from .log import quiet_sdk_teardown
from .ops.metrics import COUNTERS, StatsPublisher
from .ops.reconcile import is_recorder
from .receive import STATS_TICK_S, AudioFeed, DelayProbe, Feed, VideoFeed
from .recording import ParticipantRecording, RecordingInfo, RecordingState
from .recording.info import RateMeter
from .recording.retry import Retry
from .util import printable

TS = rtc.TrackSource
_SCREEN = (TS.SOURCE_SCREENSHARE, TS.SOURCE_SCREENSHARE_AUDIO)

Participant = rtc.RemoteParticipant | rtc.LocalParticipant


def kind_name(participant: Participant) -> str:
    kind = int(participant.kind)
    return PARTICIPANT_KINDS[kind] if 0 <= kind < len(PARTICIPANT_KINDS) else f"kind{kind}"


def consented(config: RecorderConfig, attributes: dict[str, str]) -> bool:
    """Whether a participant with these attributes may be recorded.

    >>> consented(RecorderConfig(consent="opt-in"), {"recording": "on"})
    True
    >>> consented(RecorderConfig(), {"recording": "off"})
    False
    """
    value = attributes.get(config.opt_out_attribute)
    if config.consent == "opt-in":
        return value == config.opt_in_value
    return value != config.opt_out_value


def source_name(source: int) -> str:
    return TS.Name(source).removeprefix("SOURCE_").lower()


def kind_of(track: rtc.Track) -> str:
    return "video" if track.kind == rtc.TrackKind.KIND_VIDEO else "audio"


class RoomRecorder:
    """Records every eligible participant of one connected ``rtc.Room``, each into a
    file of their own. Settings by keyword (see ``RecorderConfig``), or a whole config.

    >>> recorder = RoomRecorder(ctx.room, output_dir="recordings", record_self=True)
    >>> ctx.add_shutdown_callback(recorder.aclose)
    >>> await ctx.connect()
    >>> recorder.start()                # existing participants, then events
    """

    def __init__(
        self,
        room: rtc.Room,
        config: RecorderConfig | None = None,
        *,
        record_self: bool = False,
        **settings: object,
    ) -> None:
        self.room = room
        self.config = dataclasses.replace(config or RecorderConfig(), **settings)
        self.record_self = record_self
        # (participant sid, group) → its recording; group is "" (camera/mic) or "screen"
        self._recordings: dict[tuple[str, str], ParticipantRecording] = {}
        self._feeds: dict[str, Feed] = {}  # track sid → what moves its frames
        self._track_group: dict[str, tuple[str, str]] = {}  # track sid → recording key
        self._tracks: dict[str, rtc.Track] = {}  # track sid → the track being consumed
        self._sources: dict[str, str] = {}  # track sid → its source ("microphone", …)
        self._probes: dict[tuple[str, str], DelayProbe] = {}
        self._receiver_drops: dict[str, int] = {}  # video track sid → drops counted
        self._grace: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._retries: dict[tuple[str, str], Retry] = {}  # of keys that failed
        self._retry_at: dict[tuple[str, str], float] = {}  # failed key → monotonic s
        self._progress_meters: dict[tuple[str, str], RateMeter] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._progress: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._room_gone = False  # the room's disconnect came
        # Counters of this room's finished recordings, for the worker's totals.
        self._retired: dict[str, Any] = {
            "room": room.name, "participant": "", "state": "finished",
            **dict.fromkeys(COUNTERS, 0),
        }  # fmt: skip
        self._finalizing: set[ParticipantRecording] = set()
        self._stats = StatsPublisher(self.config.output_dir, self.stats_rows)

    # ----- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Hook the room's events, pick up who is already there, start progress logs."""
        quiet_sdk_teardown()
        room = self.room
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("track_unsubscribed", self._on_track_unsubscribed)
        room.on("track_muted", lambda p, pub: self._on_mute(pub, "mute"))
        room.on("track_unmuted", lambda p, pub: self._on_mute(pub, "unmute"))
        room.on("participant_disconnected", self._on_participant_disconnected)
        room.on("participant_attributes_changed", self._on_attributes_changed)
        room.on("reconnecting", lambda: self._broadcast("room_reconnecting"))
        room.on("reconnected", lambda: self._broadcast("room_reconnected"))
        room.on("disconnected", self._on_disconnected)
        if self.record_self:
            room.on("local_track_published", self._on_local_track_published)
            room.on("local_track_unpublished", self._on_local_track_unpublished)
            for pub in room.local_participant.track_publications.values():
                if pub.track is not None:
                    self._on_local_track_published(pub, pub.track)
        for participant in room.remote_participants.values():
            self._pick_up_tracks(participant)
        self._progress = asyncio.create_task(self._log_progress(), name="recorder-progress")
        self._watcher = asyncio.create_task(self._watch(), name="recorder-watch")
        self._stats.start()

    async def wait_for_room_end(self, timeout: float) -> None:
        """At a job's end: wait up to ``timeout`` for the server's own disconnect, so
        that a deleted room ends its recordings as ``room_closed`` even when the job's
        termination arrived first. Not ``room.isconnected()``: the SDK sends the new
        connection state and then, in an event of its own, the disconnect with its
        reason; in between the room reads disconnected (a fresh-clone run ended 1 of 3
        deleted rooms as ``parent process shutdown`` that way)."""
        if self._room_gone or not self._recordings:
            return
        ended = asyncio.Event()
        self.room.once("disconnected", lambda *_: ended.set())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), timeout)

    async def aclose(self, reason: str = "job_shutdown") -> None:
        """Finalize every recording; safe to call more than once."""
        self._closed = True
        for task in (self._progress, self._watcher):
            if task is not None:
                task.cancel()
        for key in list(self._recordings):
            self._close(key, reason)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self._stats.aclose()

    def stats_rows(self) -> list[dict[str, Any]]:
        """Numbers of every recording in progress, plus the finished ones summed."""
        live = [*self._recordings.values(), *self._finalizing]
        return [r.status().to_dict() for r in live] + [dict(self._retired)]

    # ----- events -------------------------------------------------------------------------

    def _wanted(self, participant: rtc.RemoteParticipant) -> bool:
        if kind_name(participant) not in self.config.kinds:
            return False
        if is_recorder(participant):
            return False
        return consented(self.config, participant.attributes)

    def _group(self, source: int) -> str | None:
        if source in _SCREEN:
            return None if self.config.screen_share == "off" else "screen"
        return ""

    def _pick_up_tracks(self, participant: rtc.RemoteParticipant) -> None:
        """Record the participant's subscribed tracks that are not recorded yet (an
        attribute change must not restart a feed that is running)."""
        for pub in participant.track_publications.values():
            if pub.track is not None and pub.subscribed and pub.sid not in self._feeds:
                self._on_track_subscribed(pub.track, pub, participant)

    def _on_track_subscribed(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if not self._closed and self._wanted(participant):
            self._attach(track, pub, participant)

    def _on_local_track_published(
        self, pub: rtc.LocalTrackPublication, track: rtc.LocalTrack
    ) -> None:
        if not self._closed:
            self._attach(track, pub, self.room.local_participant)

    def _on_local_track_unpublished(self, pub: rtc.LocalTrackPublication) -> None:
        self._on_track_unsubscribed(pub.track, pub, self.room.local_participant)

    def _attach(
        self, track: rtc.Track, pub: rtc.TrackPublication, participant: Participant
    ) -> None:
        """Feed ``track`` into its participant's recording (started if need be)."""
        group = self._group(pub.source)
        if group is None or track is None:
            return
        key = (participant.sid, group)
        if timer := self._grace.pop(key, None):
            timer.cancel()
        kind, source = kind_of(track), source_name(pub.source)
        size = (pub.width, pub.height) if kind == "video" else (0, 0)
        rec = self._recordings.get(key) or self._start_recording(
            key,
            RecordingInfo(
                room=self.room.name,
                identity=participant.identity,
                participant_sid=participant.sid,
                name=participant.name,
                kind=kind_name(participant),
                label=group,
            ),
        )
        if not rec.add_track(pub.sid, kind, source, *size):
            # A video track for a file decided audio-only (no video by layout_wait).
            rec = self._reopen(key, "video_started")
            rec.add_track(pub.sid, kind, source, *size)
        self._feed(pub.sid, track, source, key, rec)
        log.info("recording %s %s of %s", source, pub.sid, printable(participant.identity))

    def _start_recording(self, key: tuple[str, str], info: RecordingInfo) -> ParticipantRecording:
        self._progress_meters[key] = RateMeter()
        rec = self._recordings[key] = ParticipantRecording(self.config, info)
        return rec

    def _reopen(self, key: tuple[str, str], reason: str) -> ParticipantRecording:
        """End ``key``'s file and go on in a new one, fed by the same tracks."""
        tracks = [(sid, self._tracks[sid], self._sources[sid])
                  for sid, k in self._track_group.items() if k == key]  # fmt: skip
        info = self._recordings[key].info
        self._close(key, reason)
        rec = self._start_recording(key, info)
        for sid, track, source in tracks:
            rec.add_track(sid, kind_of(track), source)
            self._feed(sid, track, source, key, rec)
        return rec

    def _feed(
        self,
        sid: str,
        track: rtc.Track,
        source: str,
        key: tuple[str, str],
        rec: ParticipantRecording,
    ) -> None:
        """Start the feed that moves ``track``'s frames into ``rec``."""
        self._stop_track(sid)
        self._track_group[sid] = key
        self._tracks[sid] = track
        self._sources[sid] = source
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self._feeds[sid] = VideoFeed(track, rec)
        else:
            cfg = self.config
            self._feeds[sid] = AudioFeed(track, rec, cfg.audio_sample_rate, cfg.audio_channels)

    def _on_track_unsubscribed(
        self, track: rtc.Track | None, pub: rtc.TrackPublication, participant: Participant
    ) -> None:
        key = self._track_group.get(pub.sid)
        self._stop_track(pub.sid)
        rec = self._recordings.get(key) if key else None
        if rec is None or key is None:
            return
        rec.end_track(pub.sid, source_name(pub.source))
        if not any(k == key for k in self._track_group.values()):
            # Nothing feeds this recording now: close it unless a track comes back soon.
            loop = asyncio.get_running_loop()
            self._grace[key] = loop.call_later(
                self.config.track_end_grace, self._close, key, "tracks_ended"
            )

    def _on_mute(self, pub: rtc.TrackPublication, what: str) -> None:
        key = self._track_group.get(pub.sid)
        if key and (rec := self._recordings.get(key)):
            rec.add_event(what, track_sid=pub.sid, source=source_name(pub.source))

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        # A deleted room disconnects everyone: they did not leave, the room closed.
        deleted = participant.disconnect_reason == rtc.DisconnectReason.ROOM_DELETED
        self._close_participant(participant.sid, "room_closed" if deleted else "participant_left")

    def _on_attributes_changed(
        self, changed: dict[str, str], participant: rtc.RemoteParticipant
    ) -> None:
        attribute = self.config.opt_out_attribute
        if attribute not in changed:
            return
        detail = {"attribute": attribute, "value": changed[attribute][:64]}
        if self._wanted(participant):
            before = set(self._recordings)
            self._pick_up_tracks(participant)  # consent given mid-call: a new file
            for key in set(self._recordings) - before:
                self._recordings[key].add_event("consent_given", **detail)
        else:
            for key in [k for k in self._recordings if k[0] == participant.sid]:
                self._recordings[key].add_event("consent_withdrawn", **detail)
            reason = "opted_out" if self.config.consent == "opt-out" else "consent_withdrawn"
            self._close_participant(participant.sid, reason)

    def _on_disconnected(self, reason: Any = None) -> None:
        self._room_gone = True
        if reason == rtc.DisconnectReason.CLIENT_INITIATED:
            return  # our own job's shutdown: aclose(reason) names it
        for key in list(self._recordings):
            self._close(key, "room_closed")

    def _broadcast(self, event: str) -> None:
        for rec in self._recordings.values():
            rec.add_event(event)

    # ----- tracks and recordings ----------------------------------------------------------

    def _stop_track(self, track_sid: str) -> None:
        self._track_group.pop(track_sid, None)
        self._tracks.pop(track_sid, None)
        self._sources.pop(track_sid, None)
        if feed := self._feeds.pop(track_sid, None):
            feed.cancel()

    def _close_participant(self, sid: str, reason: str) -> None:
        for key in [k for k in self._recordings if k[0] == sid]:
            self._close(key, reason)
            self._retries.pop(key, None)

    def _close(self, key: tuple[str, str], reason: str) -> None:
        """Stop feeding a recording and finalize it in the background."""
        rec = self._recordings.pop(key, None)
        self._progress_meters.pop(key, None)
        self._probes.pop(key, None)
        self._retry_at.pop(key, None)
        if timer := self._grace.pop(key, None):
            timer.cancel()
        if rec is None:
            return
        for sid in [s for s, k in self._track_group.items() if k == key]:
            self._stop_track(sid)
        self._finalizing.add(rec)
        self._spawn(self._finalize(rec, reason))

    async def _finalize(self, rec: ParticipantRecording, reason: str) -> None:
        await rec.aclose(reason, timeout=self.config.shutdown_timeout)
        final = rec.status().to_dict()
        for key in COUNTERS:
            self._retired[key] += final[key]
        self._finalizing.discard(rec)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _watch(self) -> None:
        """Four times a second: failed recordings replaced, receive delays read."""
        while True:
            await asyncio.sleep(STATS_TICK_S)
            self._replace_failed()
            await self._read_delays()

    def _replace_failed(self) -> None:
        """A recording that failed gets a new file for the same tracks once its wait is
        over (recording/retry.py); until then its media is counted as dropped."""
        now = time.monotonic()
        for key, rec in list(self._recordings.items()):
            if rec.state is not RecordingState.FAILED:
                continue
            if key not in self._track_group.values():
                self._close(key, "failed")  # its tracks ended meanwhile: nothing to go on with
            elif key not in self._retry_at:
                retry = self._retries.setdefault(key, Retry())
                at = self._retry_at[key] = retry.failed(now, rec.stats.media_seconds)
                log.warning("recording %s failed; a new file in %.0f s (failure %d in a row)",
                            rec.info.shown, at - now, retry.failures)  # fmt: skip
            elif now >= self._retry_at[key]:
                new = self._reopen(key, "failed")
                new.add_event("replaces_failed", file=rec.path and rec.path.name, error=rec.error)

    async def _read_delays(self) -> None:
        """The receive delays of each recording with both audio and video, and the frames
        the receiver dropped of each with video, from its tracks' stats (see receive.py);
        audio-only recordings cost nothing here."""
        for key, rec in list(self._recordings.items()):
            by_kind: dict[int, rtc.Track] = {}
            for sid, k in list(self._track_group.items()):
                if k == key and (track := self._tracks.get(sid)) is not None:
                    by_kind[track.kind] = track
            audio = by_kind.get(rtc.TrackKind.KIND_AUDIO)
            video = by_kind.get(rtc.TrackKind.KIND_VIDEO)
            if video is None or self._recordings.get(key) is not rec:
                continue  # a roll-over or a close during an earlier await
            probe = self._probes.get(key)
            if probe is None or probe.rec is not rec:
                probe = self._probes[key] = DelayProbe(rec, self._receiver_drops)
            await probe.read(audio, video)

    async def _log_progress(self) -> None:
        """One line per recording every few seconds: the progress bar of a server."""
        while True:
            await asyncio.sleep(self.config.progress_interval)
            for key, rec in list(self._recordings.items()):
                s = rec.stats
                # From the recording's start: the first line shows the real rate too.
                meter = self._progress_meters.setdefault(key, RateMeter())
                fps = meter.rate(s.video_frames_encoded)
                trimmed = s.audio_trimmed_seconds
                log.info(
                    "progress %s/%s: %.1f s, %.2f MB, %.1f fps%s, %d dropped%s, queue %d",
                    printable(self.room.name),
                    rec.info.shown,
                    s.media_seconds,
                    s.bytes_written / 1e6,
                    fps,
                    f" ({s.quality})" if s.quality_level else "",
                    s.drops(),
                    f", {trimmed:.2f} s audio trimmed" if trimmed >= 0.005 else "",
                    rec.queue_depth,
                )
