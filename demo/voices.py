"""Many audio-only participants from one process: a load of voice-AI calls.

The voices are ``voicepub`` (``demo/voicepub``, LiveKit's Go SDK, built by ``make`` into
``.cache/bin``): each joins its room subscribing to nothing, publishes a microphone and
then sends it, in real time, the Opus packets of an Ogg file made here (a 440 Hz tone),
so nothing is encoded or decoded. The Python SDK's publishing path cost about 0.07
cores a voice on the 2-core test machines (20 voices: its tokio runtime 0.56 cores, Opus
0.25, Python 0.18), so 50 voices needed more than the machine and took the recorder's
share. voicepub: 0.04-0.06 cores for 10 voices, 0.10-0.13 for 50 (``bench.e2e_voice``).

>>> voices = Voices([("room-1", "caller"), ("room-1", "agent")])
>>> await voices.run(seconds=30)       # join, publish, speak, leave
>>> voices.joined_at["room-1/caller"]  # wall time the track was published

As a program: ``python -m demo.voices PREFIX ROOMS PER_ROOM SECONDS`` (rooms
PREFIX-1 … PREFIX-ROOMS); it prints one JSON line with the publish times.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from demo import devserver

ROOT = Path(__file__).resolve().parent.parent


class VoicesError(RuntimeError):
    pass


def find_voicepub() -> str:
    """VOICEPUB_BIN, then .cache/bin/voicepub (built by make)."""
    for candidate in (os.environ.get("VOICEPUB_BIN", ""), str(ROOT / ".cache/bin/voicepub")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise VoicesError(
        "voicepub is missing: `make setup` builds it into .cache/bin (needs Go; "
        "cd demo/voicepub && go build -o ../../.cache/bin/voicepub .)"
    )


def tone_ogg(seconds: float, folder: Path) -> Path:
    """``seconds`` of a 440 Hz tone as Ogg Opus in 20 ms packets."""
    path = folder / f"tone-{seconds:g}s.ogg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=f=440:d={seconds}",
         "-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "32k",
         "-frame_duration", "20", str(path)],
        check=True,
    )  # fmt: skip
    return path


class Voices:
    """Audio-only participants, ``(room, identity)`` each, published from one process."""

    def __init__(self, who: list[tuple[str, str]], stagger_s: float = 0.0) -> None:
        self.who = who
        self.stagger_s = stagger_s  # joins spread evenly over this many seconds
        self.joined_at: dict[str, float] = {}  # "room/identity" → wall time of publish
        self.failed: dict[str, str] = {}  # "room/identity" → why it never published

    async def run(self, seconds: float) -> None:
        """Join (all at once, or spread over ``stagger_s``), speak ``seconds`` each from
        its own publish, leave."""
        with tempfile.TemporaryDirectory() as tmp:
            ogg = tone_ogg(seconds, Path(tmp))
            proc = await asyncio.create_subprocess_exec(
                find_voicepub(),
                f"-url={devserver.URL}",
                f"-key={devserver.API_KEY}",
                f"-secret={devserver.API_SECRET}",
                f"-ogg={ogg}",
                f"-stagger={self.stagger_s}s",
                *(f"{room}/{ident}" for room, ident in self.who),
                stdout=subprocess.PIPE,
            )
            out, _ = await proc.communicate()
        if proc.returncode:
            raise VoicesError(f"voicepub exited with {proc.returncode}")
        report = json.loads(out)
        self.joined_at, self.failed = report["joined_at"], report["failed"]


async def main(prefix: str, rooms: int, per_room: int, seconds: float) -> None:
    names = [(f"{prefix}-{r}", f"voice-{i}") for r in range(1, rooms + 1) for i in range(per_room)]
    voices = Voices(names)
    await voices.run(seconds)
    print(json.dumps({"joined_at": voices.joined_at, "failed": voices.failed}), flush=True)


if __name__ == "__main__":
    prefix, rooms, per_room, seconds = sys.argv[1:5]
    asyncio.run(main(prefix, int(rooms), int(per_room), float(seconds)))
