"""The JSON sidecar of each recording, replaced atomically (temp file, fsync, rename).

A reader, or a crash, only ever sees a complete old or a complete new manifest.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .sink import write_atomically

SCHEMA = "recorder_agent.manifest/1"


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


class Manifest:
    """The sidecar's content and its writer. Owned by one recording's worker thread.

    Events are capped at ``max_events``; later ones are counted in ``events_dropped`` so a
    long recording's sidecar stays small.
    """

    def __init__(self, path: Path, max_events: int, **fields: Any) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            **fields,
            "tracks": [],
            "events": [],
            "events_dropped": 0,
            "state": "recording",
            "end_reason": None,
        }

    def event(self, kind: str, media_time_s: float | None, **details: Any) -> None:
        events = self.data["events"]
        if len(events) >= self.max_events:
            self.data["events_dropped"] += 1
            return
        entry = {"type": kind, "at_utc": utc_iso(time.time()), "media_time_s": media_time_s}
        events.append({**entry, **details})

    def write(self) -> None:
        write_atomically(self.path, json.dumps(self.data, indent=2, default=str).encode())
