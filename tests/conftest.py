from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from recorder_agent import RecorderConfig


@pytest.fixture
def config(tmp_path: Path) -> RecorderConfig:
    return RecorderConfig(output_dir=tmp_path / "recordings")


def ffprobe(path: Path) -> dict:
    """ffprobe's view of a file: an independent check next to PyAV's."""
    exe = shutil.which("ffprobe")
    assert exe, "ffprobe is missing: run `make test`, which installs it"
    out = subprocess.run(
        [exe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
