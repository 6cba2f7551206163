"""End to end: two workers on one server share rooms, steered by the recorder's own
load (its CPU use over RECORDER_CAPACITY_CORES), and the Prometheus endpoint."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from ..conftest import free_port
from .conftest import create_room, publishing, room_with_agent


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for line in body.splitlines():
        if m := re.match(r"^(recorder_\w+)(\{[^}]*\})? ([-\d.e+]+)$", line):
            values[m[1] + (m[2] or "")] = float(m[3])
    return values


def test_a_full_worker_gets_no_rooms_the_other_takes_them(own_worker):
    port = free_port()
    # A: a tiny CPU budget, so that recording one participant makes it full.
    a = own_worker(
        "a",
        RECORDER_CAPACITY_CORES="0.02",
        RECORDER_LOAD_THRESHOLD="0.7",
        RECORDER_METRICS_PORT=str(port),
    )

    async def run() -> None:
        await room_with_agent(a, "fleet-1")  # the only worker: A takes it
        room, pub = await publishing("fleet-1", "ann")
        streaming = asyncio.create_task(pub.stream(25))

        def full() -> bool:
            m = scrape(port)
            return (
                m.get("recorder_worker_load", 0) >= 0.7 and m.get("recorder_active_recordings") == 1
            )

        await asyncio.to_thread(a.wait_for, full, 20, "worker A to report itself full")
        b = own_worker("b", RECORDER_LOAD_THRESHOLD="0.7")
        for n in (2, 3, 4):  # one at a time: a worker spawns a job process per room
            await create_room(f"fleet-{n}")
            await asyncio.to_thread(
                b.wait_for, lambda n=n: b.logged(f"recording room fleet-{n} "), 20, f"B: {n}"
            )
        assert not any(a.logged(f"recording room fleet-{n} ") for n in (2, 3, 4)), a.describe()

        metrics = scrape(port)
        assert metrics["recorder_bytes_written_total"] > 0, metrics
        assert metrics['recorder_recording_media_seconds{participant="ann",room="fleet-1"}'] > 1
        assert metrics["recorder_encoder_lag_seconds"] < 1
        # Anchor corrections at the start: tens of ms (recording/timeline.py).
        assert metrics["recorder_audio_trimmed_seconds_total"] < 0.5
        streaming.cancel()
        await room.disconnect()

    asyncio.run(run())
    [manifest] = a.wait_finished("fleet-1", 1)
    assert manifest["state"] == "finished"
