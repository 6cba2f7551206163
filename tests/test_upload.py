"""Upload to object storage, against a real S3 server on loopback (moto's standalone
server, started here): byte-for-byte copies, outage and recovery, spool budget."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest

from demo.testsignal import Participant, now_us
from recorder_agent import ParticipantRecording, RecordingInfo, RecordingState
from recorder_agent.ops.metrics import WorkerStats
from recorder_agent.ops.upload import Uploader, open_store

from .conftest import free_port

BUCKET = "recordings"


class S3Server:
    """moto_server on 127.0.0.1; ``stop``/``start`` make an outage."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        assert exe.exists(), "moto_server missing: run `make test`, which installs it"
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(  # creates the bucket (moto accepts it unsigned)
                    urllib.request.Request(f"{self.url}/{BUCKET}", method="PUT"), timeout=2
                )
                return
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def s3_env(server: S3Server) -> dict[str, str]:
    """What obstore (and so the worker) needs to reach ``server``."""
    return {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ALLOW_HTTP": "true",
    }


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    server = S3Server(free_port())
    for key, value in s3_env(server).items():
        monkeypatch.setenv(key, value)
    yield server
    server.stop()


def remote_objects(config) -> dict[str, bytes]:
    """Every object in the bucket, by full key (the URL's prefix included)."""
    store = open_store(f"s3://{BUCKET}")
    keys = [m["path"] for batch in obstore.list(store) for m in batch]
    return {k: bytes(obstore.get(store, k).bytes()) for k in keys}


def record_hls(config, seconds: float, identity: str = "up") -> ParticipantRecording:
    rec = ParticipantRecording(config, RecordingInfo("room", identity))
    Participant(rec, now_us()).feed(seconds)
    rec.close("test_done")
    assert rec.wait(60) and rec.state is RecordingState.FINISHED, rec.error
    return rec


def local_files(config) -> dict[str, bytes]:
    root = config.output_dir
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".")
    }


def test_segments_playlist_and_manifest_arrive_byte_for_byte(config, s3):
    s3.start()
    config = dataclasses.replace(
        config, output_format="hls", segment_seconds=2.0, upload_url=f"s3://{BUCKET}/live"
    )
    uploader = Uploader(config).start()
    rec = record_hls(config, 7.0)
    assert uploader.finish(timeout=60)
    local = local_files(config)
    remote = remote_objects(config)
    assert {f"live/{k}" for k in local} == set(remote)
    for key, data in local.items():
        assert remote[f"live/{key}"] == data, key
    names = [k for k in local if k.endswith(".ts")]
    assert len(names) == 4  # 2+2+2+1 s
    assert "#EXT-X-ENDLIST" in remote[f"live/{rec.path.relative_to(config.output_dir)}"].decode()
    assert uploader.failures == 0 and uploader.backlog == 0


def test_store_outage_then_recovery_and_the_spool_budget(config, s3):
    config = dataclasses.replace(
        config,
        output_format="hls",
        segment_seconds=1.0,
        upload_url=f"s3://{BUCKET}/outage",
        upload_retry_max=1.0,
        upload_spool_budget_mb=0.01,
    )
    uploader = Uploader(config).start()  # the store is down from the start
    stats = WorkerStats(config, uploader)
    record_hls(config, 4.0, "first")
    deadline = time.monotonic() + 30
    while not (uploader.failures >= 2 and uploader.over_budget):
        assert time.monotonic() < deadline, (uploader.failures, uploader.spool_bytes)
        time.sleep(0.2)
    assert not uploader.store_ok and uploader.backlog > 0
    assert stats.load() == 1.0  # no new rooms while the spool is over budget
    record_hls(config, 2.0, "second")  # recording goes on during the outage

    s3.start()
    assert uploader.finish(timeout=60)
    assert uploader.store_ok and not uploader.over_budget and uploader.spool_bytes == 0
    local = local_files(config)
    remote = remote_objects(config)
    assert {f"outage/{k}" for k in local} == set(remote)
    assert all(remote[f"outage/{k}"] == v for k, v in local.items())


def test_local_segments_deleted_after_confirmed_upload(config, s3):
    s3.start()
    config = dataclasses.replace(
        config,
        output_format="hls",
        segment_seconds=1.0,
        upload_url=f"s3://{BUCKET}/del",
        upload_delete_local=True,
    )
    uploader = Uploader(config).start()
    rec = record_hls(config, 3.0)
    assert uploader.finish(timeout=60)
    assert not list(rec.path.parent.glob("*.ts"))  # segments gone locally …
    remote = remote_objects(config)
    assert sum(k.endswith(".ts") for k in remote) == 3  # … and in the store
    assert rec.path.exists() and rec.manifest_path.exists()  # small files stay
