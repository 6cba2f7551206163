"""A voice-style agent that records its whole room, itself included, with recorder_agent.

Every participant gets a file of their own: the user, and this agent's own voice (read
from the track it publishes, before encoding). Run it like any LiveKit agent:

    lk agent dev examples/voice_agent.py
    python -m livekit.agents start examples/voice_agent.py

The "voice" is a tone spoken in one-second bursts, so the example needs no speech
models; in a real agent the ``RoomRecorder`` lines are all you add to your entrypoint.
Recordings go to ``./recordings`` (``RECORDINGS_DIR`` to change it); to upload them,
pass ``upload_url="s3://bucket/prefix"`` and keep ``recorder_agent.attach_services``.
"""

from __future__ import annotations

import os

import numpy as np
from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext

from recorder_agent import RecorderConfig, RoomRecorder, attach_services

RATE = 48_000
FRAME = RATE // 100  # 10 ms

recording = RecorderConfig(
    output_dir=os.environ.get("RECORDINGS_DIR", "recordings"),
    participant_kinds="standard,sip,agent",
)

server = AgentServer()
# The uploader and metrics (when configured) run once, in the worker's main process.
attach_services(server, recording)


@server.rtc_session()
async def voice_agent(ctx: JobContext) -> None:
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_ALL)
    recorder = RoomRecorder(ctx.room, recording, record_self=True)
    ctx.add_shutdown_callback(recorder.aclose)
    recorder.start()

    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("voice", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await ctx.room.local_participant.publish_track(track, options)
    await speak(source)


async def speak(source: rtc.AudioSource) -> None:
    """A 440 Hz tone, on for a second, off for a second, until the job ends."""
    t = np.arange(FRAME) / RATE
    n = 0
    while True:
        on = (n // 100) % 2 == 0
        wave = 0.3 * np.sin(2 * np.pi * 440 * (t + n * FRAME / RATE)) if on else 0 * t
        pcm = (wave * 32767).astype(np.int16)
        await source.capture_frame(rtc.AudioFrame(pcm.tobytes(), RATE, 1, FRAME))
        n += 1


if __name__ == "__main__":
    from livekit.agents import cli

    cli.run_app(server)
