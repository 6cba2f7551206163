"""Control and notification, end to end: on-demand recording through LiveKit's dispatch
API, consent-first rooms driven by real attribute changes, and GET /recordings with
LiveKit access tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import urllib.error
import urllib.request

from livekit import api

from demo import devserver

from ..conftest import free_port
from ..test_upload import BUCKET, S3Server, s3_env
from ..test_webhooks import Receiver
from .conftest import HTTP_URL, create_room, join, publishing, record_and_check
from .test_worker import check_file


async def dispatch(room: str, agent_name: str) -> str:
    async with api.LiveKitAPI(HTTP_URL, devserver.API_KEY, devserver.API_SECRET) as lk:
        d = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
        )
        return d.id


async def undispatch(room: str, dispatch_id: str) -> None:
    async with api.LiveKitAPI(HTTP_URL, devserver.API_KEY, devserver.API_SECRET) as lk:
        await lk.agent_dispatch.delete_dispatch(dispatch_id, room)


def test_on_demand_recording_starts_with_a_dispatch_and_stops_when_it_is_deleted(own_worker):
    worker = own_worker(RECORDER_AGENT_NAME="rec-on-demand")
    room = "ctl-demand"

    async def run() -> None:
        await create_room(room)
        r, pub = await publishing(room, "dora")
        await pub.stream(4)
        assert not worker.logged(f"recording room {room} ")  # no dispatch, no recorder
        dispatch_id = await dispatch(room, "rec-on-demand")
        await asyncio.to_thread(
            worker.wait_for, lambda: worker.recordings(room), 30, "the on-demand recording"
        )
        await pub.stream(9)
        await undispatch(room, dispatch_id)
        # The participant goes on publishing: the recording ends with the dispatch.
        await asyncio.to_thread(worker.wait_finished, room, 1, 30)
        await pub.stream(11)
        await r.disconnect()

    asyncio.run(run())
    [manifest] = worker.manifests(room)
    assert manifest["state"] == "finished"
    assert check_file(worker.recordings(room)[0]) > 3


def test_opt_in_records_only_from_consent_to_withdrawal(own_worker):
    worker = own_worker(RECORDER_CONSENT="opt-in")
    room = "ctl-consent"

    async def run() -> None:
        await create_room(room)
        await asyncio.to_thread(
            worker.wait_for, lambda: worker.logged(f"recording room {room} "), 30, "dispatch"
        )
        quiet = await join(room, "quiet")  # never consents
        r, pub = await publishing(room, "erin")
        await pub.stream(3)
        assert not worker.recordings(room)  # nobody consented yet
        await r.local_participant.set_attributes({"recording": "on"})
        await asyncio.to_thread(worker.wait_for, lambda: worker.recordings(room), 20, "consent")
        await pub.stream(8)
        await r.local_participant.set_attributes({"recording": "off"})
        await asyncio.to_thread(worker.wait_finished, room, 1, 30)
        await pub.stream(10)
        await r.disconnect()
        await quiet.disconnect()

    asyncio.run(run())
    [manifest] = worker.manifests(room)
    assert manifest["participant"]["identity"] == "erin"
    assert manifest["end_reason"] == "consent_withdrawn"
    events = [e["type"] for e in manifest["events"]]
    assert "consent_given" in events and "consent_withdrawn" in events
    duration = check_file(worker.recordings(room)[0])
    assert 3 < duration < 7  # from consent (~3 s) to withdrawal (~8 s), not the whole call


def get_recordings(port: int, token: str | None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/recordings", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def token(secret: str = devserver.API_SECRET, room_list: bool = True) -> str:
    grants = api.VideoGrants(room_list=room_list)
    return api.AccessToken(devserver.API_KEY, secret).with_grants(grants).to_jwt()


def test_recordings_endpoint_lists_active_recordings_only_to_room_list_tokens(own_worker):
    port = free_port()
    worker = own_worker(RECORDER_HTTP_PORT=str(port))
    room = "ctl-status"
    assert get_recordings(port, token()) == (200, [])  # idle

    async def run() -> None:
        await create_room(room)
        r, pub = await publishing(room, "fay")
        streaming = asyncio.create_task(pub.stream(8))

        def listed() -> list | None:
            status, body = get_recordings(port, token())
            assert status == 200
            return [x for x in body if x["media_seconds"] > 1] or None  # type: ignore[union-attr]

        [entry] = await asyncio.to_thread(worker.wait_for, listed, 30, "a listed recording")
        assert entry["room"] == room and entry["identity"] == "fay"
        assert entry["state"] == "recording" and entry["bytes_written"] > 0
        assert entry["path"].endswith(".ts") and entry["fps"] > 5
        for bad in (None, "nonsense", token(room_list=False), token(secret="wrong-secret")):
            assert get_recordings(port, bad) == (401, []), bad
        await streaming
        await r.disconnect()

    asyncio.run(run())
    worker.wait_finished(room, 1)
    deadline = time.monotonic() + 10
    while get_recordings(port, token())[1] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert get_recordings(port, token()) == (200, [])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as health:
        assert health.status == 200  # the health check stays open


def verified_events(receiver: Receiver) -> list[dict]:
    """Bodies whose Authorization verifies with the worker's key and secret (LiveKit's
    own webhook signature: a JWT whose sha256 claim is the body's)."""
    verifier = api.TokenVerifier(devserver.API_KEY, devserver.API_SECRET)
    out = []
    for _, headers, body in receiver.requests:
        claims = verifier.verify(headers["Authorization"])
        assert base64.b64decode(claims.sha256) == hashlib.sha256(body).digest()
        out.append(json.loads(body))
    return out


def test_webhooks_signed_at_least_once_and_a_down_receiver_gets_them_after_a_restart(
    own_worker, monkeypatch
):
    s3 = S3Server(free_port())
    s3.start()
    up, down = Receiver().start(), Receiver()  # `down` listens only after the restart
    aws = s3_env(s3)
    settings = {
        "RECORDER_WEBHOOK_URL": f"{up.url},{down.url}",
        "RECORDER_UPLOAD_URL": f"s3://{BUCKET}/calls",
        **aws,
    }
    room = "ctl-hooks"
    try:
        worker = own_worker("hooks", **settings)
        record_and_check(worker, room, identity="gus", seconds=5)
        wanted = ["recording_started", "recording_finished", "recording_uploaded"]

        def got(receiver: Receiver) -> list[dict] | None:
            events = [e for e in verified_events(receiver) if e["room"] == room]
            return events if {e["event"] for e in events} >= set(wanted) else None

        events = worker.wait_for(lambda: got(up), 60, "three webhooks at the live receiver")
        by_name = {e["event"]: e for e in events}
        finished = by_name["recording_finished"]
        assert finished["identity"] == "gus" and finished["end_reason"] == "participant_left"
        assert finished["media_seconds"] > 3 and finished["bytes"] > 0
        assert finished["path"].startswith(f"{room}/") and finished["path"].endswith(".ts")
        assert finished["manifest"]["state"] == "finished"
        uploaded = by_name["recording_uploaded"]
        assert uploaded["object_key"] == f"s3://{BUCKET}/calls/{finished['path']}"
        assert len({e["id"] for e in events}) == len(events)
        assert not down.requests
        worker.stop()
        down.start()
        again = own_worker("hooks", **settings)  # same output folder: its queue
        late = again.wait_for(lambda: got(down), 60, "the queued webhooks after the restart")
        assert {e["id"] for e in late} == {e["id"] for e in events}  # the same events
        order = [e["event"] for e in late]
        assert order.index("recording_started") < order.index("recording_finished")
    finally:
        up.stop()
        down.stop()
        s3.stop()
