"""The JSON sidecar of each recording: one typed object, the whole schema.

It is replaced atomically (temp file, fsync, rename) at every event and every few
seconds, so a reader, or a crash, only ever sees a complete old or a complete new
manifest. ``state`` is ``recording`` while the file grows; a worker that finds one
in that state after a crash closes it out as ``interrupted`` (see recovery.py).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..util import utc_iso, write_atomically

SCHEMA = "recorder_agent.manifest/1"


@dataclass
class Manifest:
    """Everything the sidecar says. Owned by one recording's thread while it runs.

    >>> m = Manifest(room="r", participant={"identity": "alice"}, label="", file="a.ts",
    ...              created_utc="2026-11-26T10:00:00.000+00:00", codecs={})
    >>> m.add_event("mute", 1.5, limit=1000, track_sid="TR_1")
    >>> m.events[0]["type"], m.events[0]["media_time_s"]
    ('mute', 1.5)
    """

    room: str
    participant: dict[str, str]  # identity, sid, name, kind
    label: str
    file: str | None  # the media, relative to the manifest's folder; None: no media came
    created_utc: str
    codecs: dict[str, Any]
    schema: str = SCHEMA
    start_utc: str | None = None  # wall time of media time 0
    canvas: dict[str, int] | None = None
    # Media time of the first real picture (black or nothing before it); None: none yet.
    first_video_s: float | None = None
    tracks: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    events_dropped: int = 0
    state: str = "recording"  # recording, finished, failed, interrupted
    end_reason: str | None = None
    ended_utc: str | None = None
    repaired_utc: str | None = None  # when a worker closed out an interrupted recording
    counters: dict[str, Any] = field(default_factory=dict)
    # The receiver's last measured audio and video delays (ms) and the video shift that
    # cancels their difference: the file's one clock is arrival at the receiver.
    receive_delay_ms: dict[str, float] | None = None
    segments: int | None = None  # HLS only: segments listed in the playlist

    def add_event(self, kind: str, media_time_s: float | None, limit: int, **details: Any) -> None:
        """Append an event; past ``limit`` events only ``events_dropped`` counts up, so a
        long recording's sidecar stays small."""
        if len(self.events) >= limit:
            self.events_dropped += 1
            return
        entry = {"type": kind, "at_utc": utc_iso(time.time()), "media_time_s": media_time_s}
        self.events.append({**entry, **details})

    def add_track(self, sid: str, kind: str, source: str, width: int, height: int) -> None:
        track: dict[str, Any] = {"sid": sid, "kind": kind, "source": source}
        if width > 0 and height > 0:
            track.update(width=width, height=height)
        self.tracks.append(track)

    def set_receive_delays(self, audio_us: int, video_us: int) -> None:
        self.receive_delay_ms = {
            "audio": audio_us / 1000,
            "video": video_us / 1000,
            "video_shift": (audio_us - video_us) / 1000,
        }

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2, default=str).encode()

    def write(self, path: Path) -> None:
        write_atomically(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """A manifest from disk; keys this version does not know are ignored. Raises
        OSError, ValueError or TypeError for a file that is not one."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} manifest")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
