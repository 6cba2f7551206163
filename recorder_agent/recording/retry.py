"""When a participant whose recording failed gets a new file. Pure: the room asks.

A write error (a full disk, EIO, a file over its size limit) ends a recording with its
file valid up to the error and its manifest marked failed. Before this, the rest of
that participant's call was only counted as dropped until they left. Now the room
starts a new file for the same tracks after a wait that doubles with each failure in a
row, ``FIRST_S`` up to ``MAX_S``: a disk that stays full leaves about one small failed
file a minute, not one every tick. A file that recorded ``RESET_S`` of media before it
failed starts the count again.
"""

from __future__ import annotations

FIRST_S = 1.0
MAX_S = 60.0
RESET_S = 60.0


class Retry:
    """The failures in a row of one participant's recording, and when to try again.

    >>> r = Retry()
    >>> r.failed(at_s=10.0, media_s=5.0), r.failed(at_s=12.0, media_s=0.0)
    (11.0, 14.0)
    >>> [r.failed(at_s=100.0, media_s=0.0) for _ in range(6)][-1]  # at most MAX_S
    160.0
    >>> r.failed(at_s=500.0, media_s=90.0)  # that one ran long: a new count
    501.0
    """

    def __init__(self) -> None:
        self.failures = 0

    def failed(self, at_s: float, media_s: float) -> float:
        """A recording failed at ``at_s`` after ``media_s`` of media: when the next
        file may start (same clock as ``at_s``)."""
        self.failures = 1 if media_s >= RESET_S else self.failures + 1
        return at_s + min(MAX_S, FIRST_S * 2 ** (self.failures - 1))
