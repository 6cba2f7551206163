"""Entry point: ``python agent.py dev|start|connect --room ROOM``.

Reads LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET and RECORDER_* (see README).
"""

from recorder_agent.worker import run

if __name__ == "__main__":
    run()
