"""Output: where a recording's TS stream goes. ``open_output`` is the one place that
chooses the output format; everything above sees only the ``Output`` protocol.

* ``ts``: one growing ``.ts`` file (``FileSink``).
* ``hls``: a folder of TS segments and a live playlist (``SegmentSink``).

To add a format: a class with the protocol's members, and a branch in ``open_output``.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..config import RecorderConfig
from ..util import VIDEO_CLOCK
from .hls import SegmentSink
from .muxer import TsMuxer
from .naming import claim_recording_path
from .sink import FileSink, Sink, SinkError

__all__ = ["Output", "SinkError", "open_output"]


class Output(Protocol):
    """One recording's media on disk."""

    path: Path  # what a player opens: the .ts file, or the HLS playlist
    manifest_path: Path
    keyframe_every: int  # 90 kHz ticks between forced keyframes (0: the encoder's GOP)
    allows_audio_only: bool  # a file may lack video (HLS cuts its segments at keyframes)

    @property
    def bytes_written(self) -> int: ...

    def open_muxer(self, origin_utc: float) -> TsMuxer:
        """The muxer, once media starts; ``origin_utc`` is the wall time of pts 0."""
        ...

    def maybe_fsync(self) -> None: ...

    def take_finished(self) -> list[tuple[Path, str]]:
        """Files complete since the last call, as (path, kind), for the uploader."""
        ...

    def close(self) -> None:
        """Flush the muxer (if any) and close the files; raises the first failure, and
        closes the files in any case."""
        ...

    def discard(self) -> None:
        """Remove the media of a recording that never got any."""
        ...

    @property
    def segments(self) -> int | None: ...


class _Common:
    sink: Sink
    _muxer: TsMuxer | None = None

    @property
    def bytes_written(self) -> int:
        return self.sink.bytes_written

    def maybe_fsync(self) -> None:
        self.sink.maybe_fsync()

    def close(self) -> None:
        try:
            if self._muxer is not None:
                self._muxer.close()
        finally:
            self.sink.close()


class TsOutput(_Common):
    keyframe_every = 0
    allows_audio_only = True
    segments = None

    def __init__(self, path: Path, fsync_interval: float) -> None:
        self.path = path
        self.manifest_path = path.with_suffix(".json")
        self.sink = FileSink(path, fsync_interval)
        self._finished: list[tuple[Path, str]] = []

    def open_muxer(self, origin_utc: float) -> TsMuxer:
        self._muxer = TsMuxer(self.sink)
        return self._muxer

    def take_finished(self) -> list[tuple[Path, str]]:
        out, self._finished = self._finished, []
        return out

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.sink.bytes_written:
                self._finished.append((self.path, "recording"))

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class HlsOutput(_Common):
    allows_audio_only = False

    def __init__(self, folder: Path, config: RecorderConfig) -> None:
        self.folder = folder
        self.manifest_path = folder.with_name(folder.name + ".json")
        self.sink = self._segments = SegmentSink(
            folder, config.segment_seconds, config.fsync_interval
        )
        self.path = self._segments.path
        self.keyframe_every = int(config.segment_seconds * VIDEO_CLOCK)

    def open_muxer(self, origin_utc: float) -> TsMuxer:
        self._segments.origin_utc = origin_utc
        self._muxer = TsMuxer(self.sink)
        return self._muxer

    def take_finished(self) -> list[tuple[Path, str]]:
        return self._segments.take_finished()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def segments(self) -> int | None:
        return len(self._segments.segments)


def open_output(config: RecorderConfig, room: str, stem: str, created: datetime) -> Output:
    """Claim a new, unique place for a recording and open it for writing.

    >>> out = open_output(RecorderConfig(), "room", "alice", datetime.now(UTC))
    >>> out.path, out.manifest_path     # recordings/room/alice-<UTC>.ts and .json
    """
    if config.output_format == "hls":
        return HlsOutput(claim_recording_path(config.output_dir, room, stem, created, ""), config)
    return TsOutput(
        claim_recording_path(config.output_dir, room, stem, created), config.fsync_interval
    )
