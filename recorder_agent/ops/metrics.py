"""What the worker reports about itself: Prometheus metrics and its load.

Recordings live in job processes, one per room. The worker's main process serves
``/metrics`` and answers LiveKit's load queries. Between them is a folder of small
JSON files, one per job (``<output_dir>/.stats/<host>/<pid>-<job>.json``), rewritten
every second by ``StatsPublisher`` and read by ``WorkerStats``. Per host: workers in
other containers that share the output folder keep theirs apart (their pids mean
nothing here, and each would count the other's jobs as its own). A job's last numbers (its
file marked final, or its process dead) are folded into the worker's totals, so
counters never go backwards.

The load that LiveKit's dispatcher sees is the CPU use of this worker's job processes
that record, over ``capacity_cores``, averaged over ``LOAD_WINDOW_S``: what recording
really costs, not what other programs on the machine do, nor the start-up of job
processes or of the worker. It is 1 (full) while the upload spool is over its budget.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config import RecorderConfig
from ..log import logger as log
from ..output.naming import safe_component
from ..util import available_cores, write_atomically

STATS_DIR = ".stats"


def stats_folder(output_dir: Path) -> Path:
    """Where this host's job processes and worker share their stats files."""
    return Path(output_dir) / STATS_DIR / safe_component(socket.gethostname())


COUNTERS = (
    "bytes_written",
    "video_frames_encoded",
    "video_frames_thinned",
    "frames_dropped",
    "audio_trimmed_seconds",
    "errors",
    "quality_steps",
)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_WINDOW_S = 10.0  # seconds of CPU use the load averages: a join's spike is brief
LOAD_FRESH_S = 0.25  # a load this recent is answered again, not measured again
LOAD_MIN_SPAN_S = 2.0  # a job that began recording within the window: its rate over at least this


class StatsPublisher:
    """In a job: rewrites the job's stats file every ``interval`` seconds with the rows
    ``source()`` returns (``ParticipantRecording.status()`` of each recording, and a row
    that sums the finished ones, so that their final counts are kept); at ``aclose``,
    a last time, marked final."""

    def __init__(self, output_dir: Path, source: Callable[[], Iterable[dict[str, Any]]]) -> None:
        job = uuid.uuid4().hex[:12]
        self.path = stats_folder(output_dir) / f"{os.getpid()}-{job}.json"
        self._source = source
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float = 1.0) -> None:
        self._task = asyncio.create_task(self._run(interval), name="recorder-stats")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.publish(final=True)

    async def _run(self, interval: float) -> None:
        while True:
            self.publish()
            await asyncio.sleep(interval)

    def publish(self, final: bool = False) -> None:
        data = {"pid": os.getpid(), "final": final, "recordings": list(self._source())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(data).encode())
        except OSError as e:
            log.warning("cannot write stats file %s: %s", self.path, e)


class WorkerStats:
    """In the main process: reads the stats files, keeps totals, measures CPU load."""

    def __init__(self, config: RecorderConfig, uploader: Any | None = None) -> None:
        self.config = config
        self.folder = stats_folder(config.output_dir)
        self.uploader = uploader
        self.webhooks: Any | None = None  # the WebhookSender, when webhooks are on
        self.reconciler: Any | None = None  # the Reconciler, in the standalone worker
        self.cores = config.capacity_cores or available_cores()
        # The load of a room not measured yet (``room_cost_cores``). Its default, one voice
        # participant at the 0.02 cores aimed for (bench/e2e_voice.py), lets a burst of 50
        # rooms into an idle 2-core worker stay under LiveKit's 0.7 (at 0.05, 28 of 50
        # were refused).
        self.room_prior = config.room_cost_cores / self.cores
        self.measured_jobs = 0  # job processes whose recording counts in the load
        self._retired = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        # (monotonic s, {pid: CPU s}) of the processes that record, over the window
        self._cpu: deque[tuple[float, dict[int, float]]] = deque()
        # (monotonic s, CPU s) of a job process when it began to record
        self._first: dict[int, tuple[float, float]] = {}
        self._job_pids: set[int] = set()  # job processes with a live stats file
        self._load = 0.0

    def fold_stale(self) -> None:
        """At the worker's start: every stats file is from a run before it (a job killed
        past its timeout leaves one, and pids come back after a restart). Their last
        numbers go into the totals; the files go."""
        with self._lock:
            for path, data in self._files():
                for key in COUNTERS:
                    self._retired[key] += sum(r.get(key, 0) for r in data["recordings"])
                path.unlink(missing_ok=True)

    def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """(recordings of live job processes, worker-wide counter totals)."""
        with self._lock:
            live: list[dict[str, Any]] = []
            totals = dict(self._retired)
            self._job_pids = set()
            for path, data in self._files():
                if data.get("final") or not _alive(data.get("pid", 0)):
                    for key in COUNTERS:  # its last numbers stay in the totals
                        last = sum(r.get(key, 0) for r in data["recordings"])
                        self._retired[key] += last
                        totals[key] += last
                    path.unlink(missing_ok=True)
                    continue
                self._job_pids.add(data["pid"])
                for rec in data["recordings"]:
                    for key in COUNTERS:
                        totals[key] += rec.get(key, 0)
                    live.append(rec)
            return live, totals

    def _files(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        try:
            paths = list(self.folder.glob("*.json"))
        except OSError:
            return
        for path in paths:
            try:
                yield path, json.loads(path.read_text())
            except (OSError, ValueError):
                continue

    def load(self) -> float:
        """CPU seconds per second over ``cores``, 0..1, over the last ``LOAD_WINDOW_S``,
        of the job processes that record: a process spawned or warming up for a room
        counts from its first recording on, not before (a burst of 10 rooms read as a
        full worker while their processes started), and this main process (start-up,
        the room check, uploads) not at all; 1 while the upload spool is over budget."""
        now = time.monotonic()
        if self._cpu and now - self._cpu[-1][0] < LOAD_FRESH_S:
            return self._reported()  # a burst asks once per room, within milliseconds
        self.snapshot()  # also folds the files of ended jobs away
        tree = tree_cpu(os.getpid())
        with self._lock:
            pids = self._job_pids & tree.keys()
            cpu = {pid: tree[pid] for pid in pids}
            self._first = {pid: self._first.get(pid, (now, c)) for pid, c in cpu.items()}
            self._cpu.append((now, cpu))
            while now - self._cpu[0][0] > LOAD_WINDOW_S and len(self._cpu) > 2:
                self._cpu.popleft()
            t0, cpu0 = self._cpu[0]
            used = 0.0  # cores: each process over the part of the window it recorded in
            for pid, c in cpu.items():
                since, base = (t0, cpu0[pid]) if pid in cpu0 else self._first[pid]
                used += (c - base) / max(now - since, LOAD_MIN_SPAN_S)
            self._load = min(1.0, max(0.0, used / self.cores))
            self.measured_jobs = len(cpu)
        return self._reported()

    def _reported(self) -> float:
        if self.uploader is not None and self.uploader.over_budget:
            return 1.0
        return self._load

    def collect(self) -> Iterator[Any]:
        """prometheus_client custom collector protocol."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        live, totals = self.snapshot()
        active = [r for r in live if r["state"] == "recording"]
        yield GaugeMetricFamily("recorder_active_recordings", "Recordings in progress", len(active))
        yield GaugeMetricFamily("recorder_worker_load", "Load reported to LiveKit", self._load)
        for key, doc in (
            ("bytes_written", "Bytes of TS written"),
            ("video_frames_encoded", "Video frames encoded (repeats included)"),
            ("video_frames_thinned", "Video frames left out on purpose (frame rate)"),
            ("frames_dropped", "Input frames dropped or repaired"),
            ("audio_trimmed_seconds", "Received audio cut: it came earlier than its place"),
            ("errors", "Recordings that failed"),
            ("quality_steps", "Quality steps taken under overload (down and up)"),
        ):
            yield CounterMetricFamily(f"recorder_{key}", doc, value=totals[key])
        lag = max((r["encoder_lag_seconds"] for r in active), default=0.0)
        yield GaugeMetricFamily("recorder_encoder_lag_seconds", "Oldest queued frame, max", lag)
        degraded = sum(1 for r in active if r.get("quality_level", 0) > 0)
        yield GaugeMetricFamily(
            "recorder_recordings_degraded", "Recordings below full quality (overload)", degraded
        )
        per = {
            "media_seconds": "Media recorded",
            "bytes_written": "Bytes written",
            "frames_dropped": "Input frames dropped or repaired",
            "encoder_lag_seconds": "Age of the oldest frame waiting for the encoder",
            "quality_level": "Quality steps below full (0: full quality)",
        }
        for key, doc in per.items():
            family = GaugeMetricFamily(
                f"recorder_recording_{key}", doc, labels=["room", "participant"]
            )
            for r in active:
                family.add_metric([r["room"], r["participant"]], r.get(key, 0))
            yield family
        if self.webhooks is not None:
            hooks = self.webhooks
            yield GaugeMetricFamily("recorder_webhook_backlog", "Deliveries waiting", hooks.backlog)
            yield CounterMetricFamily(
                "recorder_webhooks_delivered", "Webhook deliveries acknowledged",
                value=hooks.delivered,
            )  # fmt: skip
            yield CounterMetricFamily(
                "recorder_webhook_failures", "Failed webhook attempts (retried)",
                value=hooks.failures,
            )  # fmt: skip
        if self.reconciler is not None:
            rc = self.reconciler
            yield GaugeMetricFamily(
                "recorder_rooms_without_recorder", "Rooms seen without a recorder", rc.watch.missing
            )
            yield CounterMetricFamily(
                "recorder_room_dispatches", "Recorders dispatched by the room check",
                value=rc.dispatches,
            )  # fmt: skip
            yield CounterMetricFamily(
                "recorder_rooms_unrecorded", "Rooms still without a recorder 10 s after they began",
                value=rc.unrecorded,
            )  # fmt: skip
        if self.uploader is not None:
            up = self.uploader
            yield GaugeMetricFamily("recorder_upload_backlog_files", "Queued", up.backlog)
            yield GaugeMetricFamily("recorder_upload_backlog_bytes", "Spool", up.spool_bytes)
            yield CounterMetricFamily(
                "recorder_uploaded_objects", "Objects uploaded", value=up.uploaded
            )
            yield CounterMetricFamily(
                "recorder_upload_failures", "Failed upload attempts (retried)", value=up.failures
            )


def serve_metrics(stats: WorkerStats, port: int) -> None:
    """Start the Prometheus endpoint (``/metrics``) in a thread of this process."""
    from prometheus_client import start_http_server
    from prometheus_client.core import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(stats)  # type: ignore[arg-type]
    start_http_server(port, registry=registry)
    log.info("Prometheus metrics on :%d/metrics", port)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def proc_stat(path: str) -> tuple[str, int, float]:
    """``(name, parent pid, CPU seconds user + system)`` from a /proc ``stat`` file, of a
    process or of one thread (``/proc/self/task/<tid>/stat``). Raises OSError when the
    process or thread is gone."""
    with open(path) as f:
        stat = f.read()
    name, rest = stat.split("(", 1)[1].rsplit(")", 1)
    fields = rest.split()  # fields[1]: ppid; fields[11], [12]: utime, stime
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``root`` and each of its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            _, ppid, seconds = proc_stat(f"/proc/{entry.name}/stat")
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(ppid, []).append(pid)
        cpu[pid] = seconds
    tree: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        tree[pid] = cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return tree
