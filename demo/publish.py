"""One synthetic participant, in a process of its own like a real client:
``python -m demo.publish ROOM IDENTITY SECONDS WIDTH HEIGHT``. It prints one JSON
line, when its first frame goes out (``streaming_utc``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from livekit import rtc

from demo import devserver
from demo.testsignal import Publisher


async def main(room_name: str, identity: str, seconds: float, width: int, height: int) -> None:
    room = rtc.Room()
    await room.connect(devserver.URL, devserver.token(room_name, identity))
    pub = Publisher(
        width=width, height=height, markers=[m + 0.5 for m in range(2, int(seconds), 2)]
    )
    await pub.publish(room)
    print(json.dumps({"identity": identity, "streaming_utc": time.time()}), flush=True)
    await pub.stream(seconds)
    await room.disconnect()


if __name__ == "__main__":
    room, identity, seconds, width, height = sys.argv[1:6]
    asyncio.run(main(room, identity, float(seconds), int(width), int(height)))
