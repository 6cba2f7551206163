"""What a worker runs once, in its main process, beside LiveKit's jobs: crash recovery of
the output folder, the uploader, the metrics endpoint.

Every runner (``lk agent dev|start``, ``python -m livekit.agents start agent.py``,
``python agent.py start|dev|connect``) imports the entry file in the main process and
again in each job process, and ends in ``AgentServer.run()`` in the main process only
(measured with livekit-agents 1.8.9). So nothing starts at import: the services start on
the server's ``worker_started`` event, which ``run()`` emits once, in the main process,
and stop at interpreter exit (job processes leave through ``os._exit`` and never run it).
What is still queued for upload stays on disk for the next start.

>>> server = AgentServer()
>>> services = attach_services(server, RecorderConfig(upload_url="s3://bucket/prefix"))
"""

from __future__ import annotations

import atexit
import os
import threading

from livekit.agents import AgentServer

from .config import RecorderConfig
from .log import logger as log
from .ops.metrics import WorkerStats, serve_metrics
from .ops.upload import Uploader
from .recording.recovery import recover


class WorkerServices:
    """The main-process side of a recording worker. ``stats.load`` is its load function."""

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self.stats = WorkerStats(config)
        self.uploader: Uploader | None = None
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start everything, once; later calls do nothing."""
        with self._lock:
            if self._started:
                return
            self._started = True
        cfg = self.config
        # Recordings a crash left open: closed out (and queued) before new ones start.
        recover(cfg)
        if cfg.upload_url:
            self.uploader = self.stats.uploader = Uploader(cfg).start()
            log.info("uploading recordings to %s", cfg.upload_url.split("?")[0])
        if cfg.metrics_port:
            serve_metrics(self.stats, cfg.metrics_port)
        atexit.register(self.stop)
        log.info("recorder services started (pid %d)", os.getpid())

    def attach(self, server: AgentServer) -> WorkerServices:
        """Start with ``server``'s ``run()``, in its main process."""
        server.on("worker_started", self.start)
        return self

    def stop(self) -> None:
        """Let the upload queue empty for up to ``shutdown_timeout``, then stop."""
        if self.uploader is not None:
            self.uploader.finish(timeout=self.config.shutdown_timeout)
            self.uploader = None


def attach_services(server: AgentServer, config: RecorderConfig) -> WorkerServices:
    """Run the recorder's main-process services with ``server``, whichever runner
    starts it. For your own ``AgentServer`` that records with ``RoomRecorder``."""
    return WorkerServices(config).attach(server)
