"""The package's ``livekit.agents.Plugin``: the worker logs it, and its forkserver
preloads the package, so job processes start with PyAV and numpy already imported.

Registering needs livekit-agents, whose import alone holds ~80 MB of RSS (measured:
``import recorder_agent`` 67 MB without it, 148 MB with it). So the package registers
when livekit-agents is already loaded (an agent file, ``python -m livekit.agents``),
and when worker services are attached; the recording core alone stays light.
"""

from __future__ import annotations

import threading

from livekit.agents import Plugin

from .log import logger
from .version import __version__


class RecorderPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__("recorder_agent", __version__, "recorder_agent", logger)


def register() -> None:
    """Register once; livekit-agents allows it on the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not any(isinstance(p, RecorderPlugin) for p in Plugin.registered_plugins):
        Plugin.register_plugin(RecorderPlugin())
