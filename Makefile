# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
PY := .venv/bin/python
LIVEKIT_SERVER_VERSION := v1.13.5
LIVEKIT_SERVER := .cache/bin/livekit-server
VOICEPUB := .cache/bin/voicepub
export LIVEKIT_SERVER_BIN := $(CURDIR)/$(LIVEKIT_SERVER)

.PHONY: help setup test lint demo bench bench-e2e bench-soak

help:
	@echo "make demo   record two synthetic participants and inspect the files"
	@echo "make test   install everything, lint, run the whole test suite"
	@echo "make bench  benchmarks (make bench ARGS=--quick)"
	@echo "make bench-e2e / bench-soak  end-to-end capacity / one-hour memory soak"

setup: .venv/.synced ffmpeg $(LIVEKIT_SERVER) $(VOICEPUB)

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

# The end-to-end tests and the demo need a real LiveKit server: built from the Go module
# proxy unless one is on PATH.
$(LIVEKIT_SERVER):
	@mkdir -p $(@D)
	@if command -v livekit-server >/dev/null; then \
	  ln -sf "$$(command -v livekit-server)" $@; \
	else \
	  command -v go >/dev/null || { echo "Go is needed to build livekit-server" >&2; exit 1; }; \
	  echo "building livekit-server $(LIVEKIT_SERVER_VERSION) (a few minutes, once)"; \
	  GOBIN=$(CURDIR)/.cache/gobin go install github.com/livekit/livekit-server/cmd/server@$(LIVEKIT_SERVER_VERSION); \
	  mv .cache/gobin/server $@; \
	fi

# Voice-AI load for the tests and benchmarks: many audio-only publishers in one Go process
# that sends Opus from a file (demo/voices.py). Dev-only: not in the runtime image.
$(VOICEPUB): demo/voicepub/main.go demo/voicepub/go.mod demo/voicepub/go.sum
	@command -v go >/dev/null || { echo "Go is needed to build voicepub" >&2; exit 1; }
	@mkdir -p $(@D)
	@echo "building voicepub (voice publishers for the tests, once)"
	cd demo/voicepub && go build -o $(CURDIR)/$@ .

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# The browser tests publish from headless Chromium (Debian's package) running
# livekit-client from npm, pinned by tests/browser/package-lock.json and served from
# loopback: no CDN, no browser download.
BROWSER_CLIENT := tests/browser/node_modules/livekit-client/package.json
.PHONY: browser
browser: $(BROWSER_CLIENT)
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (for the browser tests)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium still missing" >&2; exit 1; }

$(BROWSER_CLIENT): tests/browser/package-lock.json
	@command -v npm >/dev/null || { \
	  echo "installing npm"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq npm >/dev/null; }
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Under tests/netns.sh: a private network namespace, so WebRTC traffic cannot leave.
test: setup browser lint
	tests/netns.sh $(PY) -m pytest

demo: setup
	tests/netns.sh $(PY) -m demo

bench: setup
	$(PY) -m bench.run $(ARGS)

bench-e2e: setup
	tests/netns.sh $(PY) -m bench.e2e_capacity $(ARGS)
	tests/netns.sh $(PY) -m bench.e2e_voice

bench-soak: setup
	$(PY) -m bench.soak $(ARGS)
