"""End to end, hostile input and churn: names from clients stay inside the output
folder and distinct; a room with 100 join/leave cycles leaks nothing in the job."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from .conftest import Worker, publishing, room_with_agent
from .test_worker import check_file

# livekit-server refuses identities over 256 characters; longer names (10,000) and NUL
# bytes are covered by the naming tests.
HOSTILE_IDENTITIES = ["../../etc/passwd", "a/b", "a_b", "🎥 emoji", "CON", "x" * 256, ".."]


def test_hostile_identities_stay_inside_and_distinct(worker: Worker):
    room = "../e2e-hostile/🎥"

    async def run() -> None:
        await room_with_agent(worker, room)
        joined = []
        try:
            for identity in HOSTILE_IDENTITIES:
                joined.append(await publishing(room, identity, video=False))
            await asyncio.gather(*(pub.stream(3) for _, pub in joined))
        finally:
            for r, _ in joined:
                await r.disconnect()

    asyncio.run(run())
    out = worker.out.resolve()
    folders = [p for p in out.iterdir() if p.is_dir()]
    [folder] = [p for p in folders if "e2e-hostile" in p.name]
    manifests = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    deadline = time.monotonic() + 30
    while sum(m["state"] != "recording" for m in manifests) < len(HOSTILE_IDENTITIES):
        assert time.monotonic() < deadline, worker.describe()
        time.sleep(0.5)
        manifests = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert {m["participant"]["identity"] for m in manifests} == set(HOSTILE_IDENTITIES)
    assert all(m["room"] == room for m in manifests)
    files = list(folder.glob("*.ts"))
    assert len(files) == len(HOSTILE_IDENTITIES)
    for path in files:
        assert path.resolve().parent == folder.resolve()
        assert len(path.name) < 128
        check_file(path, video=False)  # they only speak: AAC alone
    assert not (out.parent / "etc").exists() and not Path("/etc/passwd.ts").exists()


def job_pid(worker: Worker, room: str) -> int:
    for line in worker.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"room": "{room}"' in line and '"job_id"' in line:
            return json.loads(line)["pid"]
    raise AssertionError(f"no job process logged for {room}\n{worker.describe()}")


def proc_counts(pid: int) -> tuple[int, int, float]:
    """Threads, open file descriptors and RSS (MB) of a process."""
    field = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    threads, rss_kb = int(field["Threads"]), int(field["VmRSS"].split()[0])
    return threads, len(os.listdir(f"/proc/{pid}/fd")), rss_kb / 1024


def written(worker: Worker, room: str, cycle: int) -> bool:
    """Churner ``cycle``'s file holds media (it is created empty when it is opened)."""
    return any(p.stat().st_size for p in (worker.out / room).glob(f"churner-{cycle}-*.ts"))


SAMPLED = (49, 59, 69, 79, 89, 99)  # cycles after which the job is measured


def test_100_join_leave_cycles_leak_nothing_in_the_job(worker: Worker):
    room = "e2e-churn"
    samples: dict[int, tuple[int, int, float]] = {}

    async def run() -> None:
        await room_with_agent(worker, room)
        pid = job_pid(worker, room)
        for cycle in range(100):
            r, pub = await publishing(room, f"churner-{cycle}", width=160, height=120)
            # Every cycle must write a recording (that is what could leak): under load the
            # agent may subscribe after a 0.5 s visit, so stream until its file has bytes.
            # Waiting for the "recording ... ->" line was not enough: it comes when the
            # file is opened, and a visitor who left 0.1 s later had sent it no frame (its
            # manifest, no file: 99 of 100 once).
            until = 0.5
            await pub.stream(until)
            deadline = time.monotonic() + 20
            while not written(worker, room, cycle) and time.monotonic() < deadline:
                until += 0.2
                await pub.stream(until)
            await r.disconnect()
            if cycle in SAMPLED:
                worker.wait_finished(room, cycle + 1, timeout=60)
                await asyncio.sleep(1)
                samples[cycle] = proc_counts(pid)

    asyncio.run(run())
    # The baseline is the most seen from half way on, not one sample: the job grows a
    # few threads and fds lazily (threads/fds 10/20 at cycle 20 and 12/24 at 100 in one
    # run, 12/24 at both in another, RSS flat), a pool filling rather than a leak. One
    # fresh-clone run read 16 fds at cycle 50 and 20 at 100; the next read 20 (10
    # sockets, 6 pipes, 3 files, an eventfd) at every tenth cycle from 10 to 100. A leak
    # of one a cycle would still show as 10.
    before = [samples[c] for c in SAMPLED[:-1]]
    t0, f0 = max(t for t, _, _ in before), max(f for _, f, _ in before)
    m0 = before[0][2]
    t1, f1, m1 = samples[SAMPLED[-1]]
    print(f"job, cycles 50-90 / 100: threads {t0}/{t1}, fds {f0}/{f1}, RSS {m0:.1f}/{m1:.1f} MB")
    assert t1 <= t0 + 2, f"threads {t0} -> {t1}"
    assert f1 <= f0 + 2, f"fds {f0} -> {f1}"
    assert m1 - m0 < 30, f"RSS {m0:.0f} -> {m1:.0f} MB"
    assert len(worker.recordings(room)) == 100
