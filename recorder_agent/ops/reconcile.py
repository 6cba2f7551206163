"""Every room gets a recorder: the worker checks the server's room list itself.

livekit-server (v1.13.5, ``rtc/room.go``, ``service/agentservice.go``) dispatches a
room once, when the room is created, to a worker that reports itself available with a
load under 0.7, and waits 3 s for the answer. A refusal, a timeout, a full fleet or a
worker that is down at that moment loses the room for good: nothing retries, and a
worker that registers later is not sent the rooms that already exist. Measured: 3 of
10 rooms of a burst were never recorded, and no log line said so.

So the worker's main process lists the rooms every ``reconcile_interval`` seconds. A
room with no agent participant marked ``recorder_agent.role=recorder`` (hidden ones
are listed too) gets a dispatch of this worker's agent (``CreateDispatch`` with the agent
name, empty for automatic dispatch, reaches the same workers). With an agent name
(on-demand recording), only rooms that have a dispatch for it count. A room still
without a recorder ``UNRECORDED_AFTER_S`` after it began is an ERROR line and a count
in ``recorder_rooms_unrecorded_total``, and it is dispatched again while it lasts.
Two workers may dispatch the same room at once: the job that joined second leaves
(``first_recorder``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from livekit import api, rtc

from ..config import RecorderConfig
from ..log import logger as log
from ..util import printable

ROLE_ATTRIBUTE = "recorder_agent.role"  # set by the standalone worker on itself
RECORDER_ROLE = "recorder"
GRACE_S = 3.0  # a room this young may still be in LiveKit's own dispatch
RETRY_S = 10.0  # a dispatch's job may take this long to join (process start, burst)
UNRECORDED_AFTER_S = 10.0


@dataclass(frozen=True)
class RoomSeen:
    name: str
    age_s: float  # since the server created it
    has_recorder: bool


@dataclass(frozen=True)
class Dispatch:
    room: str
    missing_s: float  # how long the room has been without a recorder


@dataclass(frozen=True)
class Unrecorded:
    room: str
    missing_s: float


class Watch:
    """Which rooms need a recorder dispatched, and which went unrecorded too long.
    Pure: the rooms seen in, actions out.

    >>> w = Watch()
    >>> w.plan([RoomSeen("a", age_s=1, has_recorder=False)], now=100)
    []
    >>> w.plan([RoomSeen("a", age_s=4, has_recorder=False)], now=103)
    [Dispatch(room='a', missing_s=4.0)]
    >>> w.plan([RoomSeen("a", age_s=12, has_recorder=False)], now=111)
    [Unrecorded(room='a', missing_s=12.0)]
    >>> w.plan([RoomSeen("a", age_s=14, has_recorder=False)], now=113)
    [Dispatch(room='a', missing_s=14.0)]
    """

    def __init__(
        self,
        grace_s: float = GRACE_S,
        retry_s: float = RETRY_S,
        unrecorded_s: float = UNRECORDED_AFTER_S,
    ) -> None:
        self.grace_s, self.retry_s, self.unrecorded_s = grace_s, retry_s, unrecorded_s
        self._since: dict[str, float] = {}  # room → when it was first without a recorder
        self._dispatched: dict[str, float] = {}  # room → when it was last dispatched
        self._reported: set[str] = set()
        self._recorded: dict[str, float] = {}  # room → when it was last seen recorded

    def undo_dispatch(self, room: str) -> None:
        """The dispatch ``plan`` asked for failed: ask again at the next ``plan``."""
        self._dispatched.pop(room, None)

    @property
    def missing(self) -> int:
        """Rooms without a recorder at the last ``plan``."""
        return len(self._since)

    def plan(self, rooms: list[RoomSeen], now: float) -> list[Dispatch | Unrecorded]:
        actions: list[Dispatch | Unrecorded] = []
        names = {r.name for r in rooms if not r.has_recorder}
        for gone in set(self._since) - names:  # recorded now, or deleted
            self._since.pop(gone)
            self._dispatched.pop(gone, None)
            self._reported.discard(gone)
        listed = {r.name for r in rooms}
        self._recorded = {n: t for n, t in self._recorded.items() if n in listed}
        for room in rooms:
            if room.has_recorder:
                self._recorded[room.name] = now
                continue
            if room.age_s < self.grace_s:
                continue
            # Missing since the room began, or since its recorder was last seen.
            began = max(now - room.age_s, self._recorded.get(room.name, -math.inf))
            missing = float(round(now - self._since.setdefault(room.name, began), 1))
            if missing >= self.unrecorded_s and room.name not in self._reported:
                self._reported.add(room.name)
                actions.append(Unrecorded(room.name, missing))
            last = self._dispatched.get(room.name)
            if last is None or now - last >= self.retry_s:
                self._dispatched[room.name] = now
                actions.append(Dispatch(room.name, missing))
        return actions


def is_recorder(participant: api.ParticipantInfo | rtc.Participant) -> bool:
    """Marked as a recorder, as the server lists it or as a room sees it: an agent (a
    kind that comes from the server-signed token) carrying the role attribute. Anyone
    allowed to set their own attributes can carry the attribute too; by it alone, they
    would escape their recording and make a joining recorder leave the room.

    >>> is_recorder(api.ParticipantInfo(kind=api.ParticipantInfo.AGENT,
    ...                                 attributes={ROLE_ATTRIBUTE: RECORDER_ROLE}))
    True
    >>> is_recorder(api.ParticipantInfo(attributes={ROLE_ATTRIBUTE: RECORDER_ROLE}))
    False
    """
    return (
        participant.kind == api.ParticipantInfo.AGENT
        and participant.attributes.get(ROLE_ATTRIBUTE) == RECORDER_ROLE
    )


def first_recorder(participants: list[api.ParticipantInfo], identity: str) -> bool:
    """Whether ``identity`` joined first among the room's recorders (ties: by
    identity), so that of two recorders dispatched at once exactly one stays."""
    joined = sorted(
        (p.joined_at_ms or p.joined_at * 1000, p.identity) for p in participants if is_recorder(p)
    )
    return not joined or joined[0][1] == identity


class Reconciler:
    """The check, as a task on the worker's event loop: ``asyncio.create_task(r.run())``.
    ``own_rooms`` names the rooms this worker's jobs record (no need to ask for them);
    ``paused`` is true while the worker drains."""

    def __init__(
        self,
        config: RecorderConfig,
        credentials: tuple[str, str, str],
        own_rooms: Callable[[], set[str]],
        paused: Callable[[], bool],
    ) -> None:
        self.config = config
        self._credentials = credentials  # url, key, secret
        self._own_rooms = own_rooms
        self._paused = paused
        self.watch = Watch()
        self.dispatches = 0  # dispatches this worker created
        self.unrecorded = 0  # rooms reported unrecorded

    async def run(self) -> None:
        async with api.LiveKitAPI(*self._credentials) as lk:
            while True:
                # Jitter, so that two workers started together do not check in step.
                await asyncio.sleep(self.config.reconcile_interval * random.uniform(0.8, 1.2))
                if self._paused():
                    continue
                try:
                    await self._check(lk)
                except Exception as e:  # the server is restarting, a timeout: next time
                    log.warning("could not check the rooms for recorders: %s", e)

    async def _check(self, lk: api.LiveKitAPI) -> None:
        own = self._own_rooms()
        now = time.time()
        seen = []
        for room in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms:
            has = room.name in own or await self._has_recorder(lk, room.name)
            if not has and self.config.agent_name and not await self._wanted(lk, room.name):
                continue
            age = now - (room.creation_time_ms / 1000 or room.creation_time)
            seen.append(RoomSeen(room.name, age, has))
        for action in self.watch.plan(seen, now):
            try:  # one room's failure (deleted meanwhile, a timeout) spares the others
                await self._act(lk, action)
            except Exception as e:
                if isinstance(action, Dispatch):
                    self.watch.undo_dispatch(action.room)
                log.warning("room check: %s failed: %s", action, e)

    async def _act(self, lk: api.LiveKitAPI, action: Dispatch | Unrecorded) -> None:
        match action:
            case Dispatch(name, missing):
                await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(room=name, agent_name=self.config.agent_name)
                )
                self.dispatches += 1
                log.warning(
                    "room %s has had no recorder for %.0f s: dispatched one",
                    printable(name),
                    missing,
                )
            case Unrecorded(name, missing):
                self.unrecorded += 1
                log.error(
                    "room %s is not being recorded, %.0f s after it began: no worker took it "
                    "(all full, or none running); dispatching again while it lasts",
                    printable(name),
                    missing,
                )

    @staticmethod
    async def _has_recorder(lk: api.LiveKitAPI, room: str) -> bool:
        res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        return any(is_recorder(p) for p in res.participants)

    async def _wanted(self, lk: api.LiveKitAPI, room: str) -> bool:
        """On-demand recording: the room has a dispatch for this agent name."""
        dispatches = await lk.agent_dispatch.list_dispatch(room_name=room)
        return any(d.agent_name == self.config.agent_name for d in dispatches)
