"""What a worker runs once, in its main process, beside LiveKit's jobs: crash recovery of
the output folder, the uploader, the webhook sender, the metrics endpoint, and the
answer to ``GET /recordings``.

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

import asyncio
import atexit
import os
import threading
import time
from typing import Any

from livekit import api
from livekit.agents import AgentServer

from .config import RecorderConfig
from .log import logger as log
from .ops.metrics import WorkerStats, serve_metrics
from .ops.reconcile import RETRY_S, Reconciler
from .ops.upload import Uploader
from .ops.webhooks import WebhookSender
from .plugin import register
from .recording.recovery import recover
from .util import redact

register()  # a worker is starting in this process: the Plugin, if not yet (plugin.py)


class WorkerServices:
    """The main-process side of a recording worker. ``stats.load`` is its load function.
    ``reconcile``: check that every room has a recorder (the standalone worker, whose
    jobs carry the recorder role; see ops/reconcile.py)."""

    def __init__(self, config: RecorderConfig, reconcile: bool = False) -> None:
        self.config = config
        self.stats = WorkerStats(config)
        self.uploader: Uploader | None = None
        self.webhooks: WebhookSender | None = None
        self._reconcile = reconcile and config.reconcile_interval > 0
        self._server: AgentServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted: dict[str, float] = {}  # room → when this worker took its job
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start everything, once; later calls do nothing."""
        with self._lock:
            if self._started:
                return
            self._started = True
        cfg = self.config
        self.stats.fold_stale()
        # Recordings a crash left open: closed out (and queued) in a thread of its own,
        # so that the event loop (LiveKit's connection) never waits for a big folder.
        threading.Thread(target=recover, args=(cfg,), name="recover", daemon=True).start()
        if cfg.upload_url:
            self.uploader = self.stats.uploader = Uploader(cfg).start()
            log.info("uploading recordings to %s", redact(cfg.upload_url))
        if cfg.webhooks:
            # run() refuses to start without a key and secret, and puts them in the
            # environment before worker_started, whatever the runner.
            key, secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]
            self.webhooks = self.stats.webhooks = WebhookSender(cfg, key, secret).start()
            log.info("webhooks to %s", ", ".join(redact(u) for u in cfg.webhooks))
        if self._reconcile and self._server is not None:
            self._start_reconciler(self._server)
        if cfg.metrics_port:
            serve_metrics(self.stats, cfg.metrics_port)
        atexit.register(self.stop)
        log.info("recorder services started (pid %d)", os.getpid())

    def attach(self, server: AgentServer) -> WorkerServices:
        """Start with ``server``'s ``run()``, in its main process."""
        self._server = server
        server.on("worker_started", self.start)
        return self

    def _start_reconciler(self, server: AgentServer) -> None:
        """On the server's loop (``worker_started`` fires inside ``run()``)."""
        url = os.environ["LIVEKIT_URL"]  # run() put them there, whatever the runner
        key, secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]
        reconciler = self.stats.reconciler = Reconciler(
            self.config,
            (url, key, secret),
            own_rooms=lambda: self._own_rooms(server),
            paused=lambda: server.draining,
        )
        task = asyncio.get_running_loop().create_task(reconciler.run(), name="reconcile")
        self._tasks.add(task)  # held: the loop keeps only a weak reference
        task.add_done_callback(_ended)

    def accepted(self, room: str) -> None:
        """This worker took a job for ``room`` (its recorder may take seconds to join)."""
        self._accepted[room] = time.monotonic()

    def _own_rooms(self, server: AgentServer) -> set[str]:
        """Rooms whose recorder is this worker's: running, or accepted recently."""
        now = time.monotonic()
        self._accepted = {r: t for r, t in self._accepted.items() if now - t < RETRY_S}
        return {j.job.room.name for j in server.active_jobs} | set(self._accepted)

    def recordings(self, authorization: str | None) -> tuple[int, list[dict[str, Any]]]:
        """(HTTP status, body) of ``GET /recordings``: this worker's active recordings,
        for a bearer LiveKit access token signed with the worker's key and secret that
        grants ``room_list``; 401 and nothing listed otherwise (the list names people)."""
        if not _grants_room_list(authorization):
            return 401, []
        live, _ = self.stats.snapshot()
        keys = ("room", "identity", "path", "state", "media_seconds", "bytes_written",
                "fps", "frames_dropped", "quality")  # fmt: skip
        return 200, [{k: r.get(k) for k in keys} for r in live if r["state"] == "recording"]

    def stop(self) -> None:
        """Let the upload queue empty for up to ``shutdown_timeout``, then stop."""
        if self.uploader is not None:
            self.uploader.finish(timeout=self.config.shutdown_timeout)
            self.uploader = None
        if self.webhooks is not None:  # what is undelivered stays queued on disk
            self.webhooks.stop(timeout=self.config.webhook_timeout + 1)
            self.webhooks = None


def _grants_room_list(authorization: str | None) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    token = authorization.removeprefix("Bearer ").strip()
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not token or not key or not secret:
        return False
    try:
        claims = api.TokenVerifier(key, secret).verify(token)
    except Exception:  # any invalid, expired or foreign token
        return False
    return bool(claims.video and claims.video.room_list)


def attach_services(server: AgentServer, config: RecorderConfig) -> WorkerServices:
    """Run the recorder's main-process services with ``server``, whichever runner
    starts it. For your own ``AgentServer`` that records with ``RoomRecorder``."""
    return WorkerServices(config).attach(server)


def _ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.error("the room check stopped: %r", e)
