"""Webhooks, so that other systems learn of each recording as it starts, finishes,
fails or is uploaded, without polling the output folder, and can trust the sender.

Events are raised in job processes that come and go, and receivers go down, answer
errors or hang; yet every event must arrive (at least once), and a bad receiver must
hold up neither a recording, nor the other receivers, nor shutdown. So a recording
drops the event into ``<output_dir>/.webhooks/pending/`` (``WebhookQueue``, any
process); the main process (``WebhookSender``) moves it into one folder per URL,
``.webhooks/<sha256(url)[:12]>/``, where one thread per URL posts its events oldest
first, with exponential backoff until a 2xx. A restarted worker resumes from the
folders; as an event may then come twice, its ``id`` lets receivers drop repeats.

Each POST is signed as LiveKit signs its own webhooks: ``Authorization`` is a JWT of
the API key and secret whose ``sha256`` claim is base64(sha256(body)) (check it with
``livekit.api.TokenVerifier``). So userinfo in a URL is not sent; a query string is.
Logs show URLs as scheme://host[:port]/path only, and never the token.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from http.client import HTTPException
from pathlib import Path
from threading import Event, Thread
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..config import RecorderConfig
from ..log import logger as log
from ..util import redact, utc_iso, write_atomically

QUEUE_DIR = ".webhooks"
PENDING = "pending"
EVENTS = ("recording_started", "recording_finished", "recording_failed", "recording_uploaded")
TOKEN_TTL = timedelta(minutes=5)  # as LiveKit's own webhooks
_counter = itertools.count()


@dataclass(frozen=True, kw_only=True)
class WebhookEvent:
    """The whole JSON body of a webhook. Fields that do not apply are None."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # the same on a repeat
    event: str  # one of EVENTS
    created_at: str = field(default_factory=lambda: utc_iso(time.time()))
    room: str
    identity: str
    participant_kind: str | None = None
    path: str | None = None  # the media, relative to output_dir
    object_key: str | None = None  # recording_uploaded: the media's key in the store
    end_reason: str | None = None
    media_seconds: float | None = None
    bytes: int | None = None
    error: str | None = None
    manifest: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS}")

    @classmethod
    def from_json(cls, body: bytes) -> WebhookEvent:
        """An event from a body (for receivers and tests); raises ValueError or TypeError."""
        return cls(**json.loads(body))

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), default=str).encode()


def sign(body: bytes, api_key: str, api_secret: str) -> str:
    """The ``Authorization`` value for ``body``: a LiveKit JWT whose ``sha256`` claim is
    base64(sha256(body)), sent bare as LiveKit's webhook notifier does."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    from livekit import api  # in the main process only: recordings enqueue, never sign

    token = api.AccessToken(api_key, api_secret).with_ttl(TOKEN_TTL).with_sha256(digest)
    return token.to_jwt()


def _entries(folder: Path) -> list[Path]:
    """Event files of ``folder``, oldest first (temp files of writers excluded)."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []


class WebhookQueue:
    """The producer side, used by recordings in any process. Enqueue only while
    ``config.webhooks`` is set: nothing else empties the queue."""

    def __init__(self, output_dir: Path) -> None:
        self.root = Path(output_dir) / QUEUE_DIR
        self.pending = self.root / PENDING

    def enqueue(self, event: WebhookEvent) -> None:
        self.pending.mkdir(parents=True, exist_ok=True)
        # Names sort in enqueue order: nanoseconds, then pid and a counter for ties.
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(_counter):06d}.json"
        write_atomically(self.pending / name, event.to_json())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not a delivery (urllib would repeat a POST as a bodiless GET)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Target:
    """One URL: its folder and the thread that delivers it, oldest first."""

    def __init__(
        self, url: str, root: Path, config: RecorderConfig, keys: tuple[str, str], stop: Event
    ) -> None:
        parts = urlsplit(url)  # userinfo cannot be sent: Authorization carries the token
        self.name = redact(url)
        self.url = urlunsplit(parts._replace(netloc=urlsplit(self.name).netloc))
        self.folder = root / hashlib.sha256(url.encode()).hexdigest()[:12]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.keys = keys
        self.stop = stop
        self.delivered = 0
        self.failures = 0  # failed attempts
        self.ok = True
        self.thread = Thread(target=self._run, name="webhook", daemon=True)
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _run(self) -> None:
        backoff = 0.0
        while not self.stop.is_set():
            try:
                entries = _entries(self.folder)
                delivered = not entries or self._deliver(entries[0])
            except Exception:  # a bug or the local disk: keep the thread, retry later
                log.exception("webhook: unexpected error; retrying")
                entries, delivered = [], False
            if delivered and not entries:
                self.stop.wait(0.2)
            elif delivered:
                backoff = 0.0
            else:
                self.failures += 1
                backoff = min(max(backoff * 2, 0.5), self.config.webhook_retry_max)
                self.stop.wait(backoff)

    def _deliver(self, entry: Path) -> bool:
        """One attempt at the oldest event; True when it is done with (or unreadable)."""
        try:
            body = entry.read_bytes()
            json.loads(body)
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            log.warning("webhook: dropping unreadable event %s", entry.name)
            entry.unlink(missing_ok=True)
            return True
        headers = {"Content-Type": "application/json", "Authorization": sign(body, *self.keys)}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.webhook_timeout):
                pass  # 2xx: urllib raises HTTPError for any other status
        except urllib.error.HTTPError as e:
            e.close()
            return self._failed(f"HTTP {e.code}")
        except (OSError, HTTPException) as e:  # refused, timed out, reset, bad answer
            return self._failed(str(getattr(e, "reason", e)) or type(e).__name__)
        entry.unlink(missing_ok=True)
        self.delivered += 1
        if not self.ok:
            log.info("webhook %s reachable again", self.name)
        self.ok = True
        return True

    def _failed(self, why: str) -> bool:
        report = log.error if self.ok else log.debug  # once per outage
        report("webhook %s failed, will retry: %s", self.name, why[:200])
        self.ok = False
        return False


class WebhookSender:
    """Delivers queued events to every configured URL, from ``start`` to ``stop``."""

    def __init__(self, config: RecorderConfig, api_key: str, api_secret: str) -> None:
        if not config.webhooks or not api_key or not api_secret:
            raise ValueError("webhooks need webhook_url, an API key and its secret")
        self.queue = WebhookQueue(config.output_dir)
        self._stop = Event()
        keys = (api_key, api_secret)
        self.targets = [
            _Target(url, self.queue.root, config, keys, self._stop)
            for url in dict.fromkeys(config.webhooks)
        ]
        if any(urlsplit(u).username is not None for u in config.webhooks):
            log.warning("webhook_url: userinfo (user:password@) is not sent; use the query")
        self._dispatcher = Thread(target=self._dispatch, name="webhooks", daemon=True)

    @property
    def delivered(self) -> int:
        """Deliveries confirmed with 2xx (an event counts once per URL)."""
        return sum(t.delivered for t in self.targets)

    @property
    def failures(self) -> int:
        """Failed attempts (each retried)."""
        return sum(t.failures for t in self.targets)

    @property
    def backlog(self) -> int:
        """Deliveries waiting: pending events once per URL, plus each URL's queue."""
        pending = len(_entries(self.queue.pending)) * len(self.targets)
        return pending + sum(len(_entries(t.folder)) for t in self.targets)

    def start(self) -> WebhookSender:
        self._dispatcher.start()
        for target in self.targets:
            target.thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop the threads; waits at most ``timeout`` s in all (a post in flight is
        abandoned, its event sent again at the next start)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in [self._dispatcher, *(t.thread for t in self.targets)]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _dispatch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.dispatch_once()
            except OSError as e:  # a full or read-only disk: try again, lose nothing
                log.error("webhook dispatch failed, will retry: %s", e)
                self._stop.wait(2.0)

    def dispatch_once(self) -> None:
        """Move each pending event into every URL's folder. The pending file goes only
        once all its copies are on disk, so a crash repeats an event, never loses one."""
        entries = _entries(self.queue.pending)
        if not entries:
            return
        for target in self.targets:
            target.folder.mkdir(parents=True, exist_ok=True)
            for entry in entries:
                _link(entry, target.folder / entry.name)
            fd = os.open(target.folder, os.O_RDONLY)  # the links durable before the unlink
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for entry in entries:
            entry.unlink(missing_ok=True)


def _link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src``, or an atomic copy where links fail."""
    try:
        os.link(src, dst)
    except FileExistsError:
        pass  # linked before a crash
    except OSError:
        write_atomically(dst, src.read_bytes())
