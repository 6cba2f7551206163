"""A local livekit-server for development: `make demo` and the end-to-end tests.

`livekit-server --dev` hands clients public STUN servers and advertises whatever
address it finds; this configuration keeps every candidate and STUN request on
loopback. Keys are the dev pair, `devkey`/`secret`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

URL = "ws://127.0.0.1:7880"
API_KEY, API_SECRET = "devkey", "secret"
PORT = 7880

CONFIG = """\
port: 7880
bind_addresses: [127.0.0.1]
rtc:
  tcp_port: 7881
  port_range_start: 50000
  port_range_end: 50400
  use_external_ip: false
  node_ip: 127.0.0.1
  # Without a STUN server of its own the server hands clients public ones.
  stun_servers: [127.0.0.1:3478]
room:
  empty_timeout: 10
  departure_timeout: 2
keys:
  devkey: secret
logging:
  level: info
"""


class DevServerError(RuntimeError):
    pass


def find_binary(root: Path) -> str:
    """LIVEKIT_SERVER_BIN, then .cache/bin/livekit-server (built by make), then PATH."""
    for candidate in (
        os.environ.get("LIVEKIT_SERVER_BIN", ""),
        str(root / ".cache/bin/livekit-server"),
        shutil.which("livekit-server") or "",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)  # the server runs in another folder
    raise DevServerError(
        "livekit-server is missing: `make demo` / `make test` build it into .cache/bin "
        "(go install github.com/livekit/livekit-server/cmd/server@v1.13.5)"
    )


def port_open(port: int = PORT) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(binary: str, folder: Path, timeout: float = 30) -> subprocess.Popen:
    """Start the server with its log in ``folder/server.log``; wait until it listens."""
    if port_open():
        raise DevServerError(f"port {PORT} is taken: is another livekit-server running?")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "livekit.yaml").write_text(CONFIG)
    with open(folder / "server.log", "ab") as log:  # a restart appends
        proc = subprocess.Popen(
            [binary, "--dev", "--config", "livekit.yaml"],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while not port_open():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise DevServerError(f"livekit-server did not start; see {folder / 'server.log'}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def token(room: str, identity: str, kind: str = "standard", **attributes: str) -> str:
    """A join token for this server; ``kind`` as in ``RECORDER_PARTICIPANT_KINDS``."""
    from livekit import api

    # can_update_own_metadata: a client app sets its own consent attribute
    grants = api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True)
    t = api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(grants)
    t = t.with_kind(kind)
    return (t.with_attributes(attributes) if attributes else t).to_jwt()


def worker_env(output_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of the worker against this server."""
    env = {
        **os.environ,
        "LIVEKIT_URL": URL,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "RECORDER_OUTPUT_DIR": str(output_dir),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("LIVEKIT_AGENT_NAME", None)
    return env
