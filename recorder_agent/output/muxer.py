"""libavformat's mpegts muxer, driven so that every packet reaches the sink at once.

Two defaults of libavformat would hold data back (measured: an idle microphone
left a 0-byte file): the interleaver waits up to 10 s for a packet of every stream, and AVIO
buffers output. ``max_interleave_delta=1`` (1 µs) makes the interleaver release a packet
as soon as any later one arrives, whatever the other stream does, and
``flush_packets=1`` pushes AVIO's buffer to the sink after every packet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import av

from ..util import BadFrame
from .sink import Sink
from .tsparse import TS_PACKET

MUXER_OPTIONS = {
    "flush_packets": "1",
    "max_interleave_delta": "1",
    # PAT/PMT before every keyframe as well as on their usual period, so that a
    # reader that starts anywhere (or a file cut anywhere) finds its tables quickly.
    "mpegts_flags": "+resend_headers",
}


class TsMuxer:
    """One MPEG-TS output. Streams are added before the first ``write``; after that,
    ``write`` may be called from several threads (the video encoder has its own).

    >>> muxer = TsMuxer(FileSink(path))   # or any Sink
    >>> video = muxer.add_stream("libx264", rate=30)   # configure video.codec_context
    >>> muxer.write(video.encode(frame))
    >>> muxer.close()
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._lock = threading.Lock()
        self._container: Any = av.open(
            sink,
            "w",
            format="mpegts",
            # A multiple of 188, so AVIO's own buffer boundaries fall between packets.
            buffer_size=TS_PACKET * 64,
            container_options=MUXER_OPTIONS,
        )

    def add_stream(self, codec_name: str, **kwargs: Any) -> Any:
        """Declare a stream; its codec context is the encoder (see encoders.py)."""
        return self._container.add_stream(codec_name, **kwargs)

    def write(self, packets: Iterable[av.Packet]) -> None:
        """Mux packets; a packet libavformat refuses raises ``BadFrame``, a sink
        failure ``SinkError``."""
        for packet in packets:
            with self._lock:
                try:
                    self._container.mux_one(packet)
                except av.FFmpegError as e:
                    raise BadFrame("encode_error", repr(e)) from e

    def close(self) -> None:
        """Flush the interleaver and write what is left. Safe to call twice."""
        with self._lock:
            try:
                self._container.close()
            except av.FFmpegError as e:
                raise BadFrame("mux_error", repr(e)) from e
