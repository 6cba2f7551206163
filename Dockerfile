# The recorder worker, for LiveKit Cloud (`lk agent create`) or any container platform.
# LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET and RECORDER_* come from the
# environment (secrets); recordings go to /app/recordings unless RECORDER_OUTPUT_DIR says.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv==0.13.9 \
    && useradd --create-home --uid 10001 recorder

WORKDIR /app
# Dependencies first, from the lock file, so code changes reuse this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY recorder_agent ./recorder_agent
COPY agent.py ./
RUN uv sync --frozen --no-dev \
    && mkdir -p /app/recordings \
    && chown -R recorder:recorder /app/recordings

USER 10001
ENV PATH="/app/.venv/bin:$PATH" \
    RECORDER_OUTPUT_DIR=/app/recordings
CMD ["python", "-m", "livekit.agents", "start", "agent.py"]
