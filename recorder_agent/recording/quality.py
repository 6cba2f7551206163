"""Graceful overload: when a recording falls behind real time, its video quality steps
down before any frame is lost, and back up when the load has gone.

The steps, cheapest last: x264's preset one at a time down to ultrafast, then the frame
rate (2/3, 1/2, 1/3 of the nominal rate, not below ``min_fps``). Measured at 720p on
camera-like content, 2 x264 threads, CPU per frame relative to veryfast: faster 2.1,
superfast 0.6, ultrafast 0.31 (medium 3.9); a frame-rate step cuts x264's share in
proportion. SSIM against the source fell from 0.904 (veryfast) to 0.901 (superfast) and
0.890 (ultrafast): bench/quality.py.

Down is fast. The video lane holds 30 frames (1 s at 30 fps) before it drops the
oldest, so the first step comes at ``DOWN_S`` behind (``EARLY_S`` when x264 works all
the time) and the next ones every ``SETTLE_S`` while the backlog does not drain. A step
goes as far as the backlog's growth says: a recording that falls behind by 0.7 s a
second runs at 0.3 of real time, so it goes to a level that costs at most 0.3 x
``MARGIN`` of this one. When every recording of a busy machine does this, the machine's
load falls in the same proportion. In a test that overloads one x264 thread at 1080p,
the recording was at most 0.6 s behind.

Up is slow and careful: ``UP_HOLD_S`` of calm, and only when the encoder's measured
busy share, scaled by the cost of the level above, still leaves room, and the machine's
CPU is at most ``UP_MACHINE`` busy (the caller reads it). A step up that
has to be undone within ``STABLE_S`` doubles the hold (up to ``MAX_HOLD_S``), so a
recording at the edge of the machine's capacity does not flap. Holds carry a random
part, so that the recordings of one machine do not all step up at once.

Pure policy: no clock, no I/O. The caller passes the time, how far behind real time it
is, and the encoder's busy share.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from ..config import X264_PRESETS

# CPU per frame relative to veryfast (bench/quality.py). The three slowest presets were
# not measured: each is taken as twice the one before.
PRESET_COST = {
    "ultrafast": 0.31,
    "superfast": 0.6,
    "veryfast": 1.0,
    "faster": 2.1,
    "fast": 3.5,
    "medium": 3.9,
    "slow": 12.7,
    "slower": 25.0,
    "veryslow": 50.0,
    "placebo": 100.0,
}
FPS_STEPS = (2 / 3, 1 / 2, 1 / 3, 1 / 4, 1 / 6)  # of the nominal rate, after ultrafast


@dataclass(frozen=True, slots=True)
class Level:
    """One quality level: x264's preset and the highest frame rate kept."""

    preset: str
    fps: int

    @property
    def cost(self) -> float:
        """x264's work per second, relative to veryfast at 1 fps."""
        return PRESET_COST[self.preset] * self.fps

    def __str__(self) -> str:
        return f"{self.preset}@{self.fps}"


def ladder(preset: str, fps: int, min_fps: int) -> tuple[Level, ...]:
    """The levels from ``preset`` at ``fps`` (full quality) down to the cheapest.

    >>> [str(level) for level in ladder("veryfast", 30, 10)]
    ['veryfast@30', 'superfast@30', 'ultrafast@30', 'ultrafast@20', 'ultrafast@15', 'ultrafast@10']
    >>> [str(level) for level in ladder("ultrafast", 15, 10)]
    ['ultrafast@15', 'ultrafast@10']
    """
    speeds = X264_PRESETS[: X264_PRESETS.index(preset) + 1]  # fastest first
    levels = [Level(p, fps) for p in reversed(speeds)]
    rates = sorted({round(fps * f) for f in FPS_STEPS}, reverse=True)
    levels += [Level("ultrafast", r) for r in rates if min_fps <= r < fps]
    return tuple(levels)


@dataclass(frozen=True, slots=True)
class Change:
    """A step taken: the new level, its direction, and how far behind the recording was."""

    level: Level
    index: int  # 0: full quality
    direction: str  # "down" or "up"
    behind_s: float
    busy: float


class Governor:
    """Chooses the level of one recording from how far behind real time it runs.

    >>> gov = Governor(ladder("veryfast", 30, 10), rng=random.Random(1))
    >>> gov.observe(0.0, behind_s=0.02, busy=0.5) is None
    True
    >>> str(gov.observe(0.1, behind_s=0.4, busy=1.0).level)
    'superfast@30'
    >>> gov.observe(0.3, behind_s=0.5, busy=1.0) is None   # settling
    True
    >>> str(gov.observe(0.7, behind_s=0.7, busy=1.0).level)   # still growing: two steps
    'ultrafast@20'
    >>> gov.observe(5.0, behind_s=0.0, busy=0.2) is None   # calm, but not for long enough
    True
    >>> gov.observe(30.0, behind_s=0.0, busy=0.2, machine=0.9) is None  # the machine is full
    True
    >>> str(gov.observe(30.1, behind_s=0.0, busy=0.2, machine=0.5).level)
    'ultrafast@30'
    """

    DOWN_S = 0.3  # behind real time by this much: one step down
    EARLY_S = 0.15  # ...or by this much while the encoder is busy BUSY_DOWN of the time
    BUSY_DOWN = 0.9
    FAR_S = 0.6  # this much: two steps at once
    SETTLE_S = 0.3  # a step's effect shows within this; then step again if not draining
    SLOPE_S = 0.5  # readings over this long give the rate at which the backlog grows
    SLOPE_MIN_S = 0.2  # ...and at least this long: a single stall is not a rate
    MARGIN = 0.8
    DRAINING_S = 0.05  # behind this much less than at the last step: draining, wait
    CALM_S = 0.1  # behind by less than this counts as calm
    UP_HOLD_S = 10.0  # calm this long (plus up to half again, at random): one step up
    UP_BUSY = 0.7  # ...when the encoder's busy share, scaled to the level above, fits
    # ...and the machine is busy less than this. Each recording's own encoder looks idle
    # when twelve share 2 cores: they all stepped up, fell behind together and stepped
    # down again (113 steps in 90 s, bench.capacity).
    UP_MACHINE = 0.8
    STABLE_S = 60.0  # a step up undone sooner than this doubles the hold
    MAX_HOLD_S = 300.0

    def __init__(self, levels: tuple[Level, ...], rng: random.Random | None = None) -> None:
        self.levels = levels
        self.index = 0
        self._rng = rng or random.Random()
        self._hold = self.UP_HOLD_S
        self._wait = self._jittered()
        self._changed_at: float | None = None
        self._down_behind = 0.0  # how far behind at the last step down
        self._up_at: float | None = None
        self._calm_since: float | None = None
        self._readings: deque[tuple[float, float]] = deque()  # (now, behind_s)

    @property
    def level(self) -> Level:
        return self.levels[self.index]

    def observe(
        self, now: float, behind_s: float, busy: float, machine: float | None = None
    ) -> Change | None:
        """One reading: ``behind_s`` is how far behind real time the recording was (the
        worst since the last reading), ``busy`` the share of the time its encoder
        worked, ``machine`` the busy share of the whole machine's CPU (None: unknown).
        Returns the step to take, if any."""
        self._readings.append((now, behind_s))
        while now - self._readings[0][0] > self.SLOPE_S:
            self._readings.popleft()
        if behind_s >= self.CALM_S:
            self._calm_since = None
        else:
            self._down_behind = 0.0  # caught up: the last step's backlog is gone
            if self._calm_since is None:
                self._calm_since = now
        saturated = behind_s >= self.EARLY_S and busy >= self.BUSY_DOWN
        if behind_s >= self.DOWN_S or saturated:
            return self._down(now, behind_s, busy)
        if self._calm_since is not None and self.index > 0:
            return self._up(now, behind_s, busy, machine)
        return None

    def _down(self, now: float, behind_s: float, busy: float) -> Change | None:
        last = len(self.levels) - 1
        since = None if self._changed_at is None else now - self._changed_at
        settling = since is not None and since < self.SETTLE_S
        draining = since is not None and behind_s < self._down_behind - self.DRAINING_S
        if self.index == last or settling or draining:
            return None
        if self._up_at is not None:  # the first step down since a step up
            soon = now - self._up_at < self.STABLE_S
            self._hold = min(2 * self._hold, self.MAX_HOLD_S) if soon else self.UP_HOLD_S
        self._up_at = None
        self._down_behind = behind_s
        return self._step(now, self._target(behind_s), "down", behind_s, busy)

    def _target(self, behind_s: float) -> int:
        """The level to step down to: at least one step (two when far behind), and as
        far as the backlog's growth says the cost must fall."""
        last = len(self.levels) - 1
        index = min(last, self.index + (2 if behind_s >= self.FAR_S else 1))
        # The readings since the backlog began: a single stall (a slow disk, one
        # reading behind after calm ones) gives no rate, so it costs one step only.
        first = len(self._readings) - 1
        while first > 0 and self._readings[first - 1][1] >= self.CALM_S:
            first -= 1
        (t0, b0), (t1, b1) = self._readings[first], self._readings[-1]
        if t1 - t0 >= self.SLOPE_MIN_S:
            speed = max(0.05, 1 - (b1 - b0) / (t1 - t0))  # of real time, now
            budget = self.level.cost * speed * self.MARGIN
            while index < last and self.levels[index].cost > budget:
                index += 1
        return index

    def _up(self, now: float, behind_s: float, busy: float, machine: float | None) -> Change | None:
        assert self._calm_since is not None and self._changed_at is not None
        if now - self._calm_since < self._wait or now - self._changed_at < self._wait:
            return None
        if machine is not None and machine > self.UP_MACHINE:
            return None
        above = self.levels[self.index - 1]
        if busy * above.cost / self.level.cost > self.UP_BUSY:
            return None
        if self._up_at is not None and now - self._up_at >= self.STABLE_S:
            self._hold = self.UP_HOLD_S  # the last step up held: back to the short hold
        self._up_at = now
        self._down_behind = 0.0
        return self._step(now, self.index - 1, "up", behind_s, busy)

    def _step(self, now: float, index: int, direction: str, behind: float, busy: float) -> Change:
        self.index = index
        self._changed_at = now
        self._readings.clear()  # the growth before a step says nothing about after it
        self._wait = self._jittered()
        return Change(self.level, index, direction, round(behind, 3), round(busy, 2))

    def _jittered(self) -> float:
        return self._hold * (1 + 0.5 * self._rng.random())


class Thinner:
    """Keeps at most ``fps`` frames a second, from timestamps alone: a token bucket that
    fills at ``fps``, lets a frame through from ``1 - EARLY`` of a token and holds at
    most ``BURST``. A recording always has one, at the nominal rate (the rate its file
    declares) or at a lowered level's.

    At the nominal rate it keeps what the file's video timeline can place: frames at
    least one nominal frame apart and at most two frames later than they came
    (timeline.py). A 60 fps participant in a 30 fps file had every other frame put one
    90 kHz tick after the one before, and ``ffmpeg -f null`` reported 88
    non-monotonic timestamps in 3 s. Keeping at most ``BURST + EARLY`` (under 3) frames
    beyond the rate in any stretch keeps the timeline within its two frames, while a
    source at or below the rate keeps every frame through jitter and short bunches.

    >>> thin = Thinner(15)
    >>> [t // 1000 for t in range(0, 400_000, 50_000) if thin.keep(t)]   # 20 fps in, ms
    [0, 50, 150, 200, 250, 350]
    >>> cap = Thinner(30)
    >>> sum(cap.keep(t) for t in range(0, 3_000_000, 16_667))   # 60 fps in, 3 s
    90
    >>> jitter = Thinner(30)   # 30 fps in, 28-38 ms apart
    >>> all(jitter.keep(t) for t in [0, 38_000, 66_000, 104_000, 132_000, 170_000])
    True
    >>> bunch = Thinner(30)   # 20 fps, then four frames in 25 ms: the timeline holds three
    >>> [t // 1000 for t in [0, 50_000, 100_000, 150_000, 155_000, 165_000, 175_000]
    ...  if bunch.keep(t)]
    [0, 50, 100, 150, 155, 165]
    """

    BURST = 2.7  # tokens; with EARLY under three frames: see above
    EARLY = 0.25  # of an interval: jitter on a stream at the rate itself

    def __init__(self, fps: int) -> None:
        self.fps = fps
        self._tokens = 1.0
        self._last: int | None = None

    def keep(self, ts_us: int) -> bool:
        """Whether to keep the frame stamped ``ts_us``. One that does not move forward is
        not judged here (the timeline refuses it, and counts it)."""
        if self._last is not None:
            if ts_us <= self._last:
                return True
            refill = (ts_us - self._last) * self.fps / 1_000_000
            self._tokens = min(self.BURST, self._tokens + refill)
        self._last = ts_us
        if self._tokens < 1 - self.EARLY:
            return False
        self._tokens -= 1
        return True
