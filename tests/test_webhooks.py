"""Webhooks against real HTTP receivers on loopback: signatures that livekit-api's
verifier accepts, a receiver down then up, 500s, a hanging receiver beside a healthy
one, restarts, and no secrets in the logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from livekit import api

from recorder_agent.config import RecorderConfig
from recorder_agent.ops.webhooks import EVENTS, WebhookEvent, WebhookQueue, WebhookSender, sign

from .conftest import free_port

KEY, SECRET = "APIwebhooktest", "a-test-secret-that-is-long-enough-for-hs256"


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every POST. The first ``fail``
    requests get a 500; with ``hang`` every request waits (until ``stop``)."""

    def __init__(self, port: int | None = None, fail: int = 0, hang: bool = False) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.fail, self.hang = fail, hang
        self.requests: list[tuple[str, dict[str, str], bytes]] = []  # path, headers, body
        self.accepted: list[str] = []  # ids answered 200, in arrival order
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                    ok = len(receiver.requests) > receiver.fail and not receiver.hang
                    if ok:
                        receiver.accepted.append(json.loads(body)["id"])
                if receiver.hang:
                    receiver.release.wait(30)
                try:
                    self.send_response(200 if ok else 500)
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.stop()


@pytest.fixture
def senders() -> Iterator[list[WebhookSender]]:
    made: list[WebhookSender] = []
    yield made
    for s in made:
        s.stop(timeout=5)


def sender(tmp_path: Path, senders: list, url: str, **settings: float) -> WebhookSender:
    settings = {"webhook_timeout": 5.0, "webhook_retry_max": 1.0, **settings}
    config = RecorderConfig(output_dir=tmp_path, webhook_url=url, **settings)
    senders.append(WebhookSender(config, KEY, SECRET).start())
    return senders[-1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def enqueue(tmp_path: Path, n: int, room: str = "room") -> list[str]:
    """``n`` events into the queue; their ids in enqueue order."""
    events = [
        WebhookEvent(event="recording_started", room=room, identity=f"p{i}") for i in range(n)
    ]
    for e in events:
        WebhookQueue(tmp_path).enqueue(e)
    return [e.id for e in events]


def first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_signature_verifies_with_livekit_api():
    body = WebhookEvent(event="recording_finished", room="r", identity="a").to_json()
    auth = sign(body, KEY, SECRET)
    claims = api.TokenVerifier(KEY, SECRET).verify(auth)
    assert claims.sha256 == digest(body)
    assert claims.sha256 != digest(body + b" ")  # a changed body no longer matches
    unverified = jwt.decode(auth, options={"verify_signature": False})
    assert unverified["iss"] == KEY and unverified["exp"] - time.time() <= 600  # short-lived
    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "another-secret-that-is-long-enough-for-hs256").verify(auth)


def test_events_follow_the_schema_and_arrive_signed(tmp_path, receivers, senders):
    rx = Receiver().start()
    receivers.append(rx)
    common = {"room": "r", "identity": "alice", "participant_kind": "sip", "path": "r/alice.ts",
              "end_reason": "participant_left", "manifest": {"file": "alice.ts"}}  # fmt: skip
    events = [WebhookEvent(event=kind, **common) for kind in EVENTS]
    uploaded = WebhookEvent(
        event="recording_uploaded", object_key="live/r/alice.ts", bytes=1234, media_seconds=5.5,
        **common,
    )  # fmt: skip
    for e in [*events, uploaded]:
        WebhookQueue(tmp_path).enqueue(e)
    s = sender(tmp_path, senders, rx.url + "?secret=in-query")
    wait_until(lambda: s.delivered == 5, 15, "5 deliveries")
    assert rx.accepted == [e.id for e in [*events, uploaded]]
    assert len(set(rx.accepted)) == 5 and all(len(i) == 32 for i in rx.accepted)
    assert s.delivered == 5 and s.failures == 0 and s.backlog == 0
    verifier = api.TokenVerifier(KEY, SECRET)
    for path, headers, body in rx.requests:
        assert path == "/hook?secret=in-query"
        assert headers["Content-Type"] == "application/json"
        assert verifier.verify(headers["Authorization"]).sha256 == digest(body)
    got = WebhookEvent.from_json(rx.requests[-1][2])
    assert got == uploaded
    assert (got.path, got.identity, got.participant_kind) == ("r/alice.ts", "alice", "sip")
    assert got.end_reason == "participant_left" and got.manifest["file"] == "alice.ts"
    assert set(json.loads(rx.requests[0][2])) == {
        "id", "event", "created_at", "room", "identity", "participant_kind", "path",
        "object_key", "end_reason", "media_seconds", "bytes", "error", "manifest",
    }  # fmt: skip
    assert json.loads(rx.requests[0][2])["object_key"] is None
    with pytest.raises(ValueError):
        WebhookEvent(event="recording_paused", room="r", identity="a")


def test_receiver_down_then_up_without_secrets_in_logs(tmp_path, receivers, senders, caplog):
    caplog.set_level(logging.DEBUG, logger="recorder_agent")
    port = free_port()  # nothing listens yet: connection refused
    s = sender(tmp_path, senders, f"http://user:pw-s3cr3t@127.0.0.1:{port}/hook?q=qu3ry-s3cr3t")
    ids = enqueue(tmp_path, 3)
    wait_until(lambda: s.failures >= 2, 15, "failed attempts")
    assert s.delivered == 0 and s.backlog == 3
    rx = Receiver(port).start()
    receivers.append(rx)
    wait_until(lambda: s.delivered == 3, 15, "delivery after the outage")
    assert first_seen(rx.accepted) == ids and set(rx.accepted) == set(ids)
    assert all(path == "/hook?q=qu3ry-s3cr3t" for path, _, _ in rx.requests)
    tokens = [headers["Authorization"] for _, headers, _ in rx.requests]
    assert f"127.0.0.1:{port}/hook" in caplog.text
    for secret in ["pw-s3cr3t", "qu3ry-s3cr3t", SECRET, *tokens]:
        assert secret not in caplog.text


def test_errors_are_retried_until_accepted(tmp_path, receivers, senders):
    rx = Receiver(fail=3).start()
    receivers.append(rx)
    s = sender(tmp_path, senders, rx.url)
    ids = enqueue(tmp_path, 2)
    wait_until(lambda: s.delivered == 2, 20, "delivery after three 500s")
    assert s.failures >= 3 and len(rx.requests) >= 5
    assert rx.accepted == ids  # the first event only after its retries, then in order


def test_a_hanging_receiver_holds_up_neither_the_others_nor_stop(tmp_path, receivers, senders):
    slow, fast = Receiver(hang=True).start(), Receiver().start()
    receivers.extend([slow, fast])
    s = sender(tmp_path, senders, f"{slow.url},{fast.url}", webhook_timeout=2.0)
    ids = enqueue(tmp_path, 1)
    wait_until(lambda: len(slow.requests) >= 1, 10, "a request hanging at the slow receiver")
    ids += enqueue(tmp_path, 3)  # while a post to the slow one is in flight
    wait_until(lambda: s.delivered == 4, 10, "the fast receiver's events")
    assert fast.accepted == ids
    assert slow.accepted == [] and s.backlog == 4  # kept for the slow one
    started = time.monotonic()
    s.stop(timeout=3)
    assert time.monotonic() - started < 6


def test_a_restart_delivers_what_was_left(tmp_path, receivers, senders):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    first = sender(tmp_path, senders, url)
    ids = enqueue(tmp_path, 2)
    wait_until(lambda: first.failures >= 1, 15, "a failed attempt")
    first.stop(timeout=5)
    ids += enqueue(tmp_path, 1)  # while no sender runs
    rx = Receiver(port).start()
    receivers.append(rx)
    second = sender(tmp_path, senders, url)
    wait_until(lambda: second.delivered == 3, 15, "delivery after the restart")
    assert first_seen(rx.accepted) == ids and set(rx.accepted) == set(ids)


def test_an_unreadable_event_is_dropped_and_the_rest_delivered(tmp_path, receivers, senders):
    rx = Receiver().start()
    receivers.append(rx)
    queue = WebhookQueue(tmp_path)
    ids = enqueue(tmp_path, 1)
    (queue.pending / "00000000000000000001-0000001-000000.json").write_bytes(b"{not json")
    ids += enqueue(tmp_path, 1)
    s = sender(tmp_path, senders, rx.url)
    wait_until(lambda: s.delivered == 2 and s.backlog == 0, 15, "the readable events")
    assert rx.accepted == ids and len(rx.requests) == 2
