"""Audio frames are stamped when the SDK hands them over, not when the event loop gets
to them (receive.AudioArrivals), fed through the SDK's own FFI event queue."""

import asyncio

from livekit.rtc._ffi_client import FfiClient
from livekit.rtc._proto import ffi_pb2

from recorder_agent.receive import AudioArrivals
from recorder_agent.util import monotonic_us


def _hand_over(handle: int, eos: bool = False) -> None:
    """What the SDK's callback does with an audio stream's event."""
    event = ffi_pb2.FfiEvent()
    if eos:
        event.audio_stream_event.eos.SetInParent()
    else:
        event.audio_stream_event.frame_received.SetInParent()
    event.audio_stream_event.stream_handle = handle
    FfiClient.instance.queue.put(event)


def test_each_frame_gets_the_time_it_was_handed_over_in_order():
    async def run() -> None:
        arrivals = AudioArrivals()
        before = monotonic_us()
        for _ in range(3):
            _hand_over(7)  # stamped at once, while the event loop does nothing
        await asyncio.sleep(0.05)
        arrivals.claim(7)
        stamps = [arrivals.take(7, seq) for seq in range(3)]
        assert all(s is not None and before <= s <= before + 40_000 for s in stamps)
        assert stamps == sorted(stamps)
        assert arrivals.take(7, 3) is None  # not handed over yet
        _hand_over(7)
        assert arrivals.take(7, 3) is not None

    asyncio.run(run())


def test_a_stamp_too_far_behind_is_none_and_the_rest_stay_in_step():
    async def run() -> None:
        arrivals = AudioArrivals()
        arrivals.KEPT = 4
        for _ in range(6):
            _hand_over(8)
        arrivals.claim(8)
        assert arrivals.take(8, 0) is None and arrivals.take(8, 1) is None
        assert arrivals.take(8, 2) is not None and arrivals.take(8, 5) is not None

    asyncio.run(run())


def test_only_unclaimed_streams_are_forgotten_at_their_end():
    async def run() -> None:
        arrivals = AudioArrivals()
        for handle in (9, 10):
            _hand_over(handle)
        arrivals.claim(9)
        _hand_over(9, eos=True)  # ours: the consumer still takes what came before
        _hand_over(10, eos=True)  # somebody else's: nobody will take it
        assert arrivals.take(9, 0) is not None
        assert arrivals.take(10, 0) is None
        arrivals.release(9)
        assert arrivals.take(9, 0) is None

    asyncio.run(run())
