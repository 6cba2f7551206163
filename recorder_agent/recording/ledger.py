"""What a recording says about itself: its manifest on disk, its counters, its
warnings, the files it hands to the uploader and the events it hands to the webhook
sender (both on-disk queues, emptied by the worker's main process). Runs on the
recording's thread.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import RecorderConfig
from ..encode.encoders import video_settings
from ..log import logger as log
from ..ops.upload import UploadQueue
from ..ops.webhooks import WebhookEvent, WebhookQueue
from ..output import Output
from ..util import redact, utc_iso
from .info import RecordingInfo, RecordingStats
from .manifest import Manifest


def new_manifest(
    config: RecorderConfig, info: RecordingInfo, output: Output, created: datetime
) -> Manifest:
    """The manifest of a recording that starts now."""
    return Manifest(
        room=info.room,
        participant={
            "identity": info.identity,
            "sid": info.participant_sid,
            "name": info.name,
            "kind": info.kind,
        },
        label=info.label,
        file=output.path.relative_to(output.manifest_path.parent).as_posix(),
        created_utc=utc_iso(created.timestamp()),
        codecs={
            "container": "mpegts",
            "video": video_settings(config),
            "audio": {
                "codec": "aac",
                "profile": "LC",
                "sample_rate": config.audio_sample_rate,
                "channels": config.audio_channels,
                "bitrate": config.audio_bitrate,
            },
        },
    )


class Ledger:
    """The manifest and counters of one recording.

    >>> ledger = Ledger(config, info, stats, output, created, queue_drops=inbox.dropped)
    >>> ledger.event("mute", 1.5, track_sid="TR_1")     # written at once
    >>> ledger.bad_input("bad_size", "9000x9000", 2.0)  # counted, logged at 1, 10, 100…
    """

    def __init__(
        self,
        config: RecorderConfig,
        info: RecordingInfo,
        stats: RecordingStats,
        output: Output,
        created: datetime,
        queue_drops: dict[str, int],
    ) -> None:
        self.manifest = new_manifest(config, info, output, created)
        self.path = output.manifest_path
        self.state = "recording"
        self._config = config
        self._stem = info.shown
        self._stats = stats
        self._output = output
        self._queue_drops = queue_drops
        self._uploads = UploadQueue(config.output_dir) if config.upload_url else None
        self._webhooks = WebhookQueue(config.output_dir) if config.webhooks else None
        self._bad_input_seen: dict[str, int] = {}
        self._written = 0.0

    def event(self, kind: str, media_time_s: float | None, **details: Any) -> None:
        """Record an event in the manifest and write it."""
        self.manifest.add_event(kind, media_time_s, self._config.max_manifest_events, **details)
        self.write()

    def bad_input(self, reason: str, detail: str, media_time_s: float | None) -> None:
        """Count a dropped or repaired input; log it at 1, 10, 100, … occurrences."""
        self._stats.count_drop(reason)
        n = self._bad_input_seen[reason] = self._bad_input_seen.get(reason, 0) + 1
        if str(n).rstrip("0") == "1":
            log.warning("recording %s: %s (%d so far): %s", self._stem, reason, n, detail)
            self.event("bad_input", media_time_s, reason=reason, count=n, detail=detail[:200])

    def maybe_write(self) -> None:
        if time.monotonic() - self._written >= self._config.manifest_interval:
            self.write()

    def write(self) -> None:
        """Counters into the manifest, the manifest onto disk (atomically)."""
        stats = self._stats
        for lane, n in self._queue_drops.items():
            if n:
                stats.count_drop(f"{lane}_queue_full", n)
        stats.bytes_written = self._output.bytes_written
        self.manifest.counters = stats.snapshot()
        self.manifest.state = self.state
        self._written = time.monotonic()
        try:
            self.manifest.write(self.path)
        except OSError as e:
            self.bad_input("manifest_write_failed", str(e), None)

    def write_final(self, state: str, reason: str, error: str | None, ended: bool = False) -> None:
        """How the recording ended, into the manifest and onto disk."""
        self.manifest.end_reason = reason if error is None else f"error: {error}"
        if ended:
            self.manifest.ended_utc = utc_iso(time.time())
        self.state = state
        self.write()

    def webhook(self, event: str, **fields: Any) -> WebhookEvent:
        """This recording's webhook event, as its manifest stands now."""
        m = self.manifest
        media = None if m.file is None else self.path.parent / m.file
        return WebhookEvent(
            event=event,
            room=m.room,
            identity=m.participant["identity"],
            participant_kind=m.participant["kind"],
            path=None if media is None else self._key(media),
            end_reason=m.end_reason,
            manifest=dataclasses.asdict(m),
            **fields,
        )

    def notify(self, event: str, **fields: Any) -> None:
        """Queue a webhook event of this recording, if webhooks are on."""
        if self._webhooks is not None:
            try:
                self._webhooks.enqueue(self.webhook(event, **fields))
            except OSError as e:
                log.error("recording %s: cannot queue webhook %s: %s", self._stem, event, e)

    def finished(self, state: str, error: str | None, files: list[tuple[Path, str]]) -> None:
        """The end: ``recording_finished`` (or ``_failed``), and the last files to upload;
        ``recording_uploaded`` follows once the store confirmed them all (the final
        manifest goes last, in a queue sent in order)."""
        stats = self._stats
        done = "recording_failed" if state == "failed" else "recording_finished"
        self.notify(done, media_seconds=stats.media_seconds, bytes=stats.bytes_written, error=error)
        uploaded = None
        if self._webhooks and self._uploads and self.manifest.file is not None:
            key = self._key(self.path.parent / self.manifest.file)
            uploaded = self.webhook(
                "recording_uploaded",
                object_key=f"{redact(self._config.upload_url).rstrip('/')}/{key}",
                media_seconds=stats.media_seconds,
                bytes=stats.bytes_written,
            )
        self.announce([*files, (self.path, "manifest")], then=uploaded)

    def _key(self, path: Path) -> str:
        return path.resolve().relative_to(Path(self._config.output_dir).resolve()).as_posix()

    def announce(self, files: list[tuple[Path, str]], then: WebhookEvent | None = None) -> None:
        """Files complete (for now): queue them for upload, if uploading. A rewritten
        playlist takes the manifest (live counters) along. ``then`` is sent once the
        store confirmed the last file."""
        if self._uploads is None:
            return
        for i, (path, kind) in enumerate(files):
            last = then if i == len(files) - 1 else None
            try:
                self._uploads.enqueue(path, kind, then=last)
                if kind == "playlist":
                    self._uploads.enqueue(self.path, "manifest")
            except OSError as e:
                log.error("recording %s: cannot queue %s for upload: %s", self._stem,
                          path.name, e)  # fmt: skip
