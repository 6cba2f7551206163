"""Reading MPEG-TS packet headers: just enough to cut HLS segments at keyframes and to
find the last timestamp of a file a crash left behind; cutting a byte stream into
whole packets.

A TS stream is a run of 188-byte packets; libavformat starts each PES (one frame) in a
new packet with ``payload_unit_start`` set, and marks keyframes as random access points.
"""

from __future__ import annotations

TS_PACKET = 188
SYNC_BYTE = 0x47
PTS_WRAP = 1 << 33  # PES timestamps count 90 kHz ticks in 33 bits


def split_whole(pending: bytearray) -> tuple[bytearray, bytearray]:
    """The whole packets at the head of ``pending`` and the rest, each in a new buffer.

    ``pending`` is never resized in place: a thread that keeps a writer's frame keeps
    that frame's views of it alive, and resizing a bytearray with a live view raises
    BufferError. LiveKit's loop watchdog takes ``sys._current_frames()`` (every thread's
    frames) while a job's loop is blocked; in a saturated 10-room run one recording
    failed on ``del pending[:whole]``.

    >>> whole, rest = split_whole(bytearray(400))
    >>> len(whole), len(rest)
    (376, 24)
    """
    whole = len(pending) - len(pending) % TS_PACKET
    return pending[:whole], pending[whole:]


def ts_header(pkt: bytes | memoryview) -> tuple[int, bool, int]:
    """(PID, payload unit start, offset of the payload) of one 188-byte TS packet."""
    payload = 4 + (1 + pkt[4] if pkt[3] & 0x20 else 0)
    return ((pkt[1] & 0x1F) << 8) | pkt[2], bool(pkt[1] & 0x40), payload


def pat_pmt_pid(pkt: bytes | memoryview, payload: int) -> int:
    """The PMT PID named by the first program of a PAT packet (one program: ours)."""
    p = payload + 1 + pkt[payload]  # past the pointer field
    return ((pkt[p + 10] & 0x1F) << 8) | pkt[p + 11]


def pes_pts(pes: bytes | memoryview) -> int | None:
    """The 33-bit PTS of a PES header, if it has one."""
    if len(pes) < 14 or not pes[7] & 0x80:
        return None
    return (
        ((pes[9] >> 1) & 0x07) << 30
        | pes[10] << 22
        | (pes[11] >> 1) << 15
        | pes[12] << 7
        | pes[13] >> 1
    )


def unwrap_pts(pts: int, near: int) -> int:
    """The timestamp equal to ``pts`` modulo 2^33 that is closest to ``near``: a PES
    timestamp has 33 bits and wraps after 26.5 hours at 90 kHz.

    >>> unwrap_pts(5, near=PTS_WRAP - 10)  # just after a wrap
    8589934597
    >>> unwrap_pts(PTS_WRAP - 10, near=PTS_WRAP + 5), unwrap_pts(7, near=0)
    (8589934582, 7)
    """
    return pts + (near - pts + PTS_WRAP // 2) // PTS_WRAP * PTS_WRAP


def video_pes_start(pkt: bytes | memoryview, pusi: bool, payload: int) -> bool:
    """Whether this packet starts a video PES (stream id 0xE0-0xEF)."""
    return pusi and pkt[payload : payload + 3] == b"\0\0\1" and (pkt[payload + 3] & 0xF0 == 0xE0)


def is_random_access(pkt: bytes | memoryview) -> bool:
    """The adaptation field's random access indicator: a keyframe starts here."""
    return bool(pkt[3] & 0x20 and pkt[4] and pkt[5] & 0x40)


def pes_timestamps(data: bytes) -> tuple[int | None, int | None]:
    """(first, last) PTS of the PES packets (any stream) that start in ``data``, a run
    of whole TS packets; ``(None, None)`` when none does. ``last`` is the highest, on
    ``first``'s count of wraps (``unwrap_pts``)."""
    first = last = None
    for off in range(0, len(data) - len(data) % TS_PACKET, TS_PACKET):
        pkt = data[off : off + TS_PACKET]
        if pkt[0] != SYNC_BYTE:
            continue
        _, pusi, payload = ts_header(pkt)
        if pusi and payload < TS_PACKET and pkt[payload : payload + 3] == b"\0\0\1":
            pts = pes_pts(pkt[payload:])
            if pts is not None:
                first = pts if first is None else first
                last = pts if last is None else max(last, unwrap_pts(pts, last))
    return first, last
