"""What the worker reports about itself: Prometheus metrics and its load.

Recordings live in job processes (one per room); the worker's main process serves
``/metrics`` and answers LiveKit's load queries. Between them is a folder of small
JSON files, one per job process (``<output_dir>/.stats/<pid>.json``), rewritten every
second by ``StatsPublisher`` and read by ``WorkerStats``. A dead process's last
numbers are folded into the worker's totals, so counters never go backwards.

The load that LiveKit's dispatcher sees is this worker's own CPU use (its process and
every job process) over ``capacity_cores``: what encoding really costs, not what
other programs on the machine do. It is 1 (full) while the upload spool is over its
budget.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config import RecorderConfig
from ..log import logger as log
from ..util import write_atomically

STATS_DIR = ".stats"
COUNTERS = ("bytes_written", "video_frames_encoded", "frames_dropped", "errors")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class StatsPublisher:
    """In a job process: rewrites this process's stats file every ``interval`` seconds
    with the rows ``source()`` returns (``ParticipantRecording.status()`` of each recording, and a
    row that sums the finished ones, so that their final counts are kept)."""

    def __init__(self, output_dir: Path, source: Callable[[], Iterable[dict[str, Any]]]) -> None:
        self.path = Path(output_dir) / STATS_DIR / f"{os.getpid()}.json"
        self._source = source
        self._task: asyncio.Task[None] | None = None

    def start(self, interval: float = 1.0) -> None:
        self._task = asyncio.create_task(self._run(interval), name="recorder-stats")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.publish()

    async def _run(self, interval: float) -> None:
        while True:
            self.publish()
            await asyncio.sleep(interval)

    def publish(self) -> None:
        data = {"pid": os.getpid(), "recordings": list(self._source())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(data).encode())
        except OSError as e:
            log.warning("cannot write stats file %s: %s", self.path, e)


class WorkerStats:
    """In the main process: reads the stats files, keeps totals, measures CPU load."""

    def __init__(self, config: RecorderConfig, uploader: Any | None = None) -> None:
        self.config = config
        self.folder = config.output_dir / STATS_DIR
        self.uploader = uploader
        self.webhooks: Any | None = None  # the WebhookSender, when webhooks are on
        self.cores = config.capacity_cores or float(os.cpu_count() or 1)
        self._retired = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._last_cpu: tuple[float, float] | None = None
        self._load = 0.0

    def snapshot(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """(recordings of live job processes, worker-wide counter totals)."""
        with self._lock:
            live: list[dict[str, Any]] = []
            totals = dict(self._retired)
            for path, data in self._files():
                if not _alive(data.get("pid", 0)):
                    for key in COUNTERS:  # its last numbers stay in the totals
                        last = sum(r.get(key, 0) for r in data["recordings"])
                        self._retired[key] += last
                        totals[key] += last
                    path.unlink(missing_ok=True)
                    continue
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
        """CPU seconds per second of this worker's processes over ``cores``, 0..1
        (smoothed); 1 while the upload spool is over budget."""
        self.snapshot()  # also folds the files of ended job processes away
        now, cpu = time.monotonic(), sum(tree_cpu(os.getpid()).values())
        if self._last_cpu is not None and now > self._last_cpu[0]:
            used = (cpu - self._last_cpu[1]) / (now - self._last_cpu[0]) / self.cores
            self._load = 0.5 * self._load + 0.5 * min(1.0, max(0.0, used))
        self._last_cpu = (now, cpu)
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
            ("frames_dropped", "Input frames dropped or repaired"),
            ("errors", "Recordings that failed"),
        ):
            yield CounterMetricFamily(f"recorder_{key}", doc, value=totals[key])
        lag = max((r["encoder_lag_seconds"] for r in active), default=0.0)
        yield GaugeMetricFamily("recorder_encoder_lag_seconds", "Oldest queued frame, max", lag)
        per = {
            "media_seconds": "Media recorded",
            "bytes_written": "Bytes written",
            "frames_dropped": "Input frames dropped or repaired",
            "encoder_lag_seconds": "Age of the oldest frame waiting for the encoder",
        }
        for key, doc in per.items():
            family = GaugeMetricFamily(
                f"recorder_recording_{key}", doc, labels=["room", "participant"]
            )
            for r in active:
                family.add_metric([r["room"], r["participant"]], r[key])
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
