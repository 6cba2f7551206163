"""Entry point of the standalone recorder: ``lk agent dev``, ``lk agent start``, or
``python -m livekit.agents start agent.py``, which take ``server`` from here.

Reads LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET and RECORDER_* (see README).
"""

from recorder_agent.worker import server

if __name__ == "__main__":  # `python agent.py start|dev|connect`, deprecated upstream
    from livekit.agents import cli

    cli.run_app(server)
