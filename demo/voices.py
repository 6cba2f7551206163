"""Many audio-only participants from one process: a load of voice-AI calls.

Each voice joins its room and publishes a microphone track that speaks a 440 Hz tone
in 100 ms frames (the SDK's source slices them into 10 ms for Opus). One process and
one event loop carry them all, so that the publishers leave the recorder its share of
a small machine. The SDK's publishing path still costs about 0.07 cores a voice on the
2-core test machines (20 voices: its tokio runtime 0.56 cores, Opus 0.25, Python 0.18):
50 voices at once need more than those 2 cores, so a burst spreads their joins.

>>> voices = Voices([("room-1", "caller"), ("room-1", "agent")])
>>> await voices.run(seconds=30)       # join, publish, speak, leave
>>> voices.joined_at["room-1/caller"]  # wall time the track was published

As a program: ``python -m demo.voices PREFIX ROOMS PER_ROOM SECONDS`` (rooms
PREFIX-1 … PREFIX-ROOMS); it prints one JSON line with the publish times.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from livekit import rtc

from demo import devserver

RATE = 48_000
FRAME_MS = 100  # per capture_frame call: ten times fewer calls than 10 ms frames


def _tone_frame(n: int) -> rtc.AudioFrame:
    t = np.arange(n) / RATE
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return rtc.AudioFrame(samples.tobytes(), RATE, 1, n)


class Voices:
    """Audio-only participants, ``(room, identity)`` each, published from this loop."""

    def __init__(self, who: list[tuple[str, str]], stagger_s: float = 0.0) -> None:
        self.who = who
        self.stagger_s = stagger_s  # joins spread evenly over this many seconds
        self.joined_at: dict[str, float] = {}  # "room/identity" → wall time of publish
        self.failed: dict[str, str] = {}  # "room/identity" → why it never published

    async def run(self, seconds: float) -> None:
        """Join (all at once, or spread over ``stagger_s``), speak ``seconds`` each from
        its own publish, leave."""
        step = self.stagger_s / max(1, len(self.who))
        await asyncio.gather(
            *(
                self._speak(room, ident, seconds, i * step)
                for i, (room, ident) in enumerate(self.who)
            )
        )

    async def _speak(self, room_name: str, identity: str, seconds: float, delay: float) -> None:
        await asyncio.sleep(delay)
        key = f"{room_name}/{identity}"
        room = rtc.Room()
        try:
            await room.connect(devserver.URL, devserver.token(room_name, identity))
            source = rtc.AudioSource(RATE, 1, queue_size_ms=2 * FRAME_MS)
            track = rtc.LocalAudioTrack.create_audio_track("mic", source)
            opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await room.local_participant.publish_track(track, opts)
            self.joined_at[key] = time.time()
            frame = _tone_frame(RATE * FRAME_MS // 1000)
            for _ in range(int(seconds * 1000 / FRAME_MS)):
                await source.capture_frame(frame)  # waits while the queue is full
            await source.wait_for_playout()
        except Exception as e:  # one voice's failure is reported, the others go on
            self.failed[key] = repr(e)
        finally:
            await room.disconnect()


async def main(prefix: str, rooms: int, per_room: int, seconds: float) -> None:
    names = [(f"{prefix}-{r}", f"voice-{i}") for r in range(1, rooms + 1) for i in range(per_room)]
    voices = Voices(names)
    await voices.run(seconds)
    print(json.dumps({"joined_at": voices.joined_at, "failed": voices.failed}), flush=True)


if __name__ == "__main__":
    prefix, rooms, per_room, seconds = sys.argv[1:5]
    asyncio.run(main(prefix, int(rooms), int(per_room), float(seconds)))
