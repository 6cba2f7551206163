"""The package's one logger, as livekit-plugins have theirs: ``recorder_agent``."""

import logging

logger = logging.getLogger("recorder_agent")
