"""Closing out what a crashed run left in the output folder, when a worker starts.

A recording killed mid-way (``kill -9``, OOM, power loss) leaves valid media (whole TS
packets, fsynced every second) but a manifest still in state ``recording`` and, for
HLS, a playlist without ``#EXT-X-ENDLIST`` whose last segment is not listed. At start
the worker's main process finds those and closes each one out:

* the playlist lists every segment with media in it, and ends;
* the manifest goes to state ``interrupted``, with the last media time really in the
  file (read from its last timestamps, not from the manifest's last counters);
* the files go to the upload queue when upload is on.

A recording another live worker is still writing on the same disk is never touched:
its writer holds a ``flock`` on the file or HLS folder (output/sink.py), which the
kernel releases only when that process ends.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..config import RecorderConfig
from ..encode.encoders import start_offset
from ..log import logger as log
from ..ops.upload import UploadQueue
from ..output.hls import PLAYLIST, listed_segments, repair_playlist
from ..output.sink import being_written
from ..output.tsparse import TS_PACKET, pes_timestamps, unwrap_pts
from ..util import VIDEO_CLOCK, utc_iso
from .manifest import Manifest

_TAIL_BYTES = 4 * 1024 * 1024  # the last timestamps of a TS file are in its tail


def last_pts(path: Path) -> int | None:
    """The highest PES timestamp in the tail of a TS file (90 kHz), if any."""
    size = path.stat().st_size
    start = max(0, size - _TAIL_BYTES) // TS_PACKET * TS_PACKET
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    return pes_timestamps(data)[1]


def recover(config: RecorderConfig) -> list[Path]:
    """Close out every interrupted recording under ``config.output_dir``; returns the
    manifests it changed. Safe to run while other workers record on the same disk."""
    repaired = []
    for path in sorted(Path(config.output_dir).glob("*/*.json")):
        try:
            manifest = Manifest.read(path)
        except (OSError, ValueError, TypeError):
            continue  # not a manifest of ours
        if manifest.state != "recording":
            continue
        media = path.parent / manifest.file if manifest.file else None
        if media is not None and media.name == PLAYLIST:
            media = media.parent  # HLS: the folder is what its writer locks
        if media is not None and being_written(media):
            continue
        try:
            files = _close_out(config, path, manifest, media)
            if config.upload_url:
                uploads = UploadQueue(config.output_dir)
                for file, kind in [*files, (path, "manifest")]:
                    uploads.enqueue(file, kind)
        except Exception as e:  # one odd folder must not stop the others, or the worker
            log.error("cannot repair interrupted recording %s: %r", path, e)
            continue
        repaired.append(path)
        log.warning("repaired interrupted recording %s (%.1f s of media)", path,
                    manifest.counters.get("media_seconds", 0.0))  # fmt: skip
    return repaired


def _close_out(
    config: RecorderConfig, path: Path, manifest: Manifest, media: Path | None
) -> list[tuple[Path, str]]:
    """Repair the media, update and write the manifest; the files to upload."""
    rate = manifest.codecs.get("audio", {}).get("sample_rate", config.audio_sample_rate)
    offset = start_offset(RecorderConfig(audio_sample_rate=rate))
    files: list[tuple[Path, str]] = []
    pts: int | None = None
    if media is not None and media.is_dir():
        origin = _epoch(manifest.start_utc)
        origin_utc = None if origin is None else origin - offset / VIDEO_CLOCK
        pts, new = repair_playlist(media, config.segment_seconds, origin_utc)
        files = [(p, "segment") for p in new] + [(media / PLAYLIST, "playlist")]
        manifest.segments = len(listed_segments(media / PLAYLIST))
    elif media is not None and media.exists():
        if media.stat().st_size:
            pts = last_pts(media)
            if pts is not None:  # the wraps of 2^33 since the start: the manifest knows
                written_s = manifest.counters.get("media_seconds", 0.0)
                pts = unwrap_pts(pts, near=offset + round(written_s * VIDEO_CLOCK))
            files = [(media, "recording")]
        else:
            media.unlink()
            manifest.file = None
    media_s = 0.0 if pts is None else round(max(0, pts - offset) / VIDEO_CLOCK, 3)
    manifest.counters["media_seconds"] = media_s
    manifest.add_event("interrupted", media_s, config.max_manifest_events)
    manifest.state = "interrupted"
    manifest.end_reason = "interrupted: the recording process ended without finalizing"
    manifest.ended_utc = None
    manifest.repaired_utc = utc_iso(datetime.now().timestamp())
    manifest.write(path)
    return files


def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None
