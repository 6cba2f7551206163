# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
PY := .venv/bin/python

.PHONY: help setup test lint demo bench

help:
	@echo "make demo   record two synthetic participants and inspect the files"
	@echo "make test   install everything, lint, run the whole test suite"
	@echo "make bench  benchmarks (make bench ARGS=--quick)"

setup: .venv/.synced ffmpeg

# Python dependencies from the lock file, with uv (installed with pip if missing).
.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null || python3 -m pip install -q uv
	uv sync --frozen -q
	@touch $@

# ffprobe validates the recordings in the tests (PyAV's own FFmpeg does the recording).
.PHONY: ffmpeg
ffmpeg:
	@command -v ffprobe >/dev/null || { \
	  echo "installing ffmpeg (for ffprobe)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq ffmpeg >/dev/null; }
	@command -v ffprobe >/dev/null || { echo "ffprobe still missing" >&2; exit 1; }

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: setup lint
	$(PY) -m pytest

demo: setup
	$(PY) -m demo

bench: setup
	$(PY) -m bench.run $(ARGS)
