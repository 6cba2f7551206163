"""`pip install` of the repository gives a working plugin: the wheel carries the package,
its dependencies and the `recorder-agent` command, and registers a livekit-agents Plugin.

The suite runs in a network namespace, so the wheel is built and installed offline: into
an environment holding the locked dependencies (from uv's cache, which `make test`'s
own `uv sync` filled), where `uv pip check` proves the wheel's declared dependencies
are met. A `pip install git+…` with the network is the same wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
import recorder_agent
assert "livekit.agents" not in sys.modules  # the core alone stays light
from livekit.agents import AgentServer, Plugin
from recorder_agent import RecorderConfig, RoomRecorder, attach_services
attach_services(AgentServer(), RecorderConfig())
assert [p.package for p in Plugin.registered_plugins].count("recorder_agent") == 1
print(recorder_agent.__version__, recorder_agent.__file__)
"""


def test_the_wheel_installs_a_working_plugin(tmp_path):
    uv = shutil.which("uv")
    assert uv, "uv missing: run `make test`"
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_OFFLINE": "1", "UV_LINK_MODE": "copy"}
    env.pop("VIRTUAL_ENV", None)
    run = {"env": env, "check": True, "timeout": 600, "capture_output": True}
    subprocess.run([uv, "build", "-q", "--wheel", "--out-dir", str(tmp_path), str(ROOT)], **run)
    [wheel] = tmp_path.glob("recorder_agent-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        scripts = z.read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    assert "recorder-agent = recorder_agent.__main__:main" in scripts
    assert not any(n.startswith(("demo/", "tests/", "bench/")) for n in names)  # dev-only
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requires = [
        line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Requires-Dist")
    ]
    assert {d.split("~")[0].split(">")[0].split("=")[0] for d in declared} == {
        r.split("~")[0].split("<")[0].split(">")[0].split("=")[0] for r in requires
    }

    sync = {**env, "UV_PROJECT_ENVIRONMENT": str(venv)}
    subprocess.run(
        [uv, "sync", "-q", "--frozen", "--no-dev", "--no-install-project"],
        **{**run, "env": sync, "cwd": ROOT},
    )
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), str(wheel)], **run)
    subprocess.run([uv, "pip", "check", "-q", "--python", str(python)], **run)
    out = subprocess.run(
        [str(python), "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    version, location = out.stdout.split()
    assert version == "0.2.0" and str(venv) in location  # the installed copy, not the checkout
    help_text = subprocess.run(
        [str(venv / "bin" / "recorder-agent"), "--help"], capture_output=True, text=True
    ).stdout
    assert "start" in help_text and "inspect" in help_text
