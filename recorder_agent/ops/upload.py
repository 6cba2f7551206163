"""Upload of finished files (segments, playlists, whole recordings, manifests) to
object storage: S3 and S3-compatible stores, GCS and Azure, through obstore.

Recordings run in job processes that come and go; the upload must outlive them and
the store's outages. So the queue is on disk: a recording drops a small entry file
into ``<output_dir>/.upload-queue/`` when a file is closed (``UploadQueue.enqueue``),
and one ``Uploader`` thread in the worker's main process sends entries oldest first,
retrying with exponential backoff, and removes each entry once the store confirmed it.
A worker restarted after a crash resumes where the queue stands.

The local files are the spool. While the store is down, recording goes on into them;
``spool_bytes`` above ``RECORDER_UPLOAD_SPOOL_BUDGET_MB`` makes the worker report
itself full (no new rooms) and is logged, but nothing recorded is ever thrown away.

Credentials come from each provider's standard environment variables (``AWS_*``,
``GOOGLE_*``, ``AZURE_*``), read by obstore itself; they are never logged.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..config import RecorderConfig
from ..log import logger as log
from ..util import write_atomically
from .webhooks import WebhookEvent, WebhookQueue

QUEUE_DIR = ".upload-queue"
DELETABLE = ("segment", "recording")  # kinds removed locally after upload, if asked
_counter = itertools.count()


class UploadQueue:
    """The producer side, used by recordings in any process.

    >>> UploadQueue(config.output_dir).enqueue(path, "segment")
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = Path(output_dir)
        self.folder = self.output_dir / QUEUE_DIR

    def enqueue(self, path: Path, kind: str, then: WebhookEvent | None = None) -> None:
        """Ask for ``path`` (inside output_dir) to be uploaded under the same relative key;
        ``then`` is a webhook event to send once the store confirmed it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = Path(path).resolve().relative_to(self.output_dir.resolve()).as_posix()
        # Names sort in enqueue order: nanoseconds, then pid and a counter for ties.
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(_counter):06d}.json"
        item: dict[str, Any] = {"key": key, "kind": kind}
        if then is not None:
            item["then"] = json.loads(then.to_json())
        write_atomically(self.folder / name, json.dumps(item).encode())

    def entries(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir() if p.suffix == ".json")
        except FileNotFoundError:
            return []

    def read(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every entry with its content, oldest first; unreadable entries are dropped."""
        items = []
        for entry in self.entries():
            try:
                item = json.loads(entry.read_text())
                if not isinstance(item.get("key"), str) or not isinstance(item.get("kind"), str):
                    raise ValueError("not an upload entry")
                items.append((entry, item))
            except (OSError, ValueError, AttributeError):
                log.warning("dropping unreadable upload entry %s", entry.name)
                entry.unlink(missing_ok=True)
        return items


def open_store(url: str) -> Any:
    """The obstore store for ``url`` (s3://bucket/prefix, gs://…, az://…), configured
    from the environment. obstore's own retries are kept short (by default they go on
    for minutes): the uploader retries for ever, with its own backoff."""
    from obstore.store import from_url

    # No client_options: given any, obstore stops reading them (AWS_ALLOW_HTTP, …)
    # from the environment.
    return from_url(url, retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=15)})


class Uploader:
    """Sends queued files to the store, oldest first, until ``stop``.

    Entries for the same key that are already superseded by a newer entry (a playlist
    rewritten, a manifest updated) are skipped: the newer one sends the current file.
    """

    def __init__(self, config: RecorderConfig, store: Any | None = None) -> None:
        self.config = config
        self.queue = UploadQueue(config.output_dir)
        self._webhooks = WebhookQueue(config.output_dir) if config.webhooks else None
        self.store = store if store is not None else open_store(config.upload_url)
        self.uploaded = 0  # objects
        self.uploaded_bytes = 0
        self.failures = 0  # failed attempts (each retried)
        self.spool_bytes = 0  # local bytes waiting for upload
        self.backlog = 0  # entries waiting
        self.store_ok = True
        self._stop = threading.Event()
        self._over_budget = False
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)

    def start(self) -> Uploader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def finish(self, timeout: float) -> bool:
        """At shutdown: let the queue empty for up to ``timeout`` s, then stop.
        Returns whether everything was sent."""
        deadline = time.monotonic() + timeout
        while self.queue.entries() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.stop()
        left = len(self.queue.entries())
        if left:
            log.warning("%d uploads still queued in %s; sent at the next start", left,
                        self.queue.folder)  # fmt: skip
        return left == 0

    @property
    def over_budget(self) -> bool:
        return self._over_budget

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                delay = 0.2 if self.drain_once() else 0.5
            except UploadFailed:
                self.failures += 1
                delay = min(max(delay * 2, 0.5), self.config.upload_retry_max)
            except Exception:  # a bug or the local disk: keep the thread, retry later
                log.exception("uploader: unexpected error; retrying")
                self.failures += 1
                delay = self.config.upload_retry_max

    def drain_once(self) -> bool:
        """Send every queued entry in order; stop at the first failure (raised).
        Returns whether anything was sent."""
        parsed = self.queue.read()
        self._account(parsed)
        latest = {item["key"]: entry for entry, item in parsed}  # the newest entry per key
        sent = False
        for entry, item in parsed:
            if self._stop.is_set():
                break
            if latest[item["key"]] is entry or "then" in item:  # its webhook must follow
                self._send(item)
                sent = True
            entry.unlink(missing_ok=True)
            self.backlog = max(0, self.backlog - 1)
        if sent:
            self._account(self.queue.read())
        return sent

    def _send(self, item: dict[str, Any]) -> None:
        import obstore

        path = self.config.output_dir / item["key"]
        if not path.exists():
            log.warning("upload: %s vanished before upload; skipped", item["key"])
            return
        size = path.stat().st_size
        try:
            obstore.put(self.store, item["key"], path)
        except Exception as e:  # obstore raises its own error types per provider
            if self.store_ok:
                log.error("upload of %s failed, will retry: %s", item["key"], _short(e))
            self.store_ok = False
            raise UploadFailed(item["key"]) from e
        if not self.store_ok:
            log.info("upload store reachable again")
        self.store_ok = True
        self.uploaded += 1
        self.uploaded_bytes += size
        if (then := item.get("then")) and self._webhooks is not None:
            try:
                self._webhooks.enqueue(WebhookEvent(**then))  # e.g. recording_uploaded
            except (TypeError, ValueError) as e:
                log.warning("upload: dropping a malformed webhook of %s: %s", item["key"], e)
        if self.config.upload_delete_local and item["kind"] in DELETABLE:
            path.unlink(missing_ok=True)

    def _account(self, items: list[tuple[Path, dict[str, str]]]) -> None:
        """Backlog and spool size; logs crossing the spool budget."""
        self.backlog = len(items)
        spool = 0
        for _, item in items:
            try:
                spool += (self.config.output_dir / item["key"]).stat().st_size
            except (OSError, KeyError):
                continue
        self.spool_bytes = spool
        over = spool > self.config.upload_spool_budget_mb * 1024 * 1024
        if over != self._over_budget:
            if over:
                log.error(
                    "upload spool at %.1f MB, over its %g MB budget: taking no new rooms "
                    "until the store catches up (recording goes on)",
                    spool / 2**20,
                    self.config.upload_spool_budget_mb,
                )
            else:
                log.info("upload spool back under budget (%.0f MB)", spool / 2**20)
        self._over_budget = over


class UploadFailed(Exception):
    """One attempt failed; the entry stays at the head of the queue."""


def _short(e: Exception) -> str:
    """The first line of a store error, without anything that could carry secrets
    (obstore errors show the request URL and status, never credentials)."""
    return str(e).splitlines()[0][:300] if str(e) else type(e).__name__
