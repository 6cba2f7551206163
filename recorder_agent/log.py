"""The package's one logger, as livekit-plugins have theirs: ``recorder_agent``.

Also a filter for the SDK's own logger. Measured on 2026-11-26: a normal leave or room
deletion often logs ``publisher data channel '_reliable' closed unexpectedly`` at
ERROR, once per data channel, from the Rust SDK (rtc_session.rs), when the server
closes the channels before the session marks itself disconnecting. A recorder sends
nothing on data channels, so their closing never loses media: those lines become INFO.
A connection that really breaks still shows as the room's own reconnect or disconnect
lines, and as the recording's end reason.
"""

import logging
import re

logger = logging.getLogger("recorder_agent")

_DATA_CHANNEL_CLOSED = re.compile(r"publisher data channel '[^']*' closed unexpectedly")


class _SdkTeardownFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and _DATA_CHANNEL_CLOSED.search(record.getMessage()):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_sdk_teardown() -> None:
    """Log the SDK's data-channel teardown lines at INFO (idempotent)."""
    sdk = logging.getLogger("livekit")
    if not any(isinstance(f, _SdkTeardownFilter) for f in sdk.filters):
        sdk.addFilter(_SdkTeardownFilter())
