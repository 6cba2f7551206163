"""Turn untrusted room and participant names into safe, unique file paths.

Rooms, identities and names come from clients. Before they touch the file system they
are reduced to ``[A-Za-z0-9._-]``, capped in length, and, whenever that changed them,
suffixed with a hash of the original so that two different names never share a file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

MAX_COMPONENT = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Names that Windows refuses as files: recordings are often copied there.
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}


def safe_component(name: str, max_len: int = MAX_COMPONENT) -> str:
    """Return one safe path component for ``name``: never empty, '.', '..' or hidden.

    >>> safe_component("alice")
    'alice'
    >>> safe_component("../../etc/passwd")
    'etc_passwd~3754d6cb'
    """
    cleaned = _UNSAFE.sub("_", name).strip("._")
    changed = cleaned != name
    if cleaned.split(".")[0].upper() in _RESERVED:
        changed = True
    if not cleaned:
        cleaned = "_"
    if changed or len(cleaned) > max_len:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"{cleaned[: max_len - 9]}~{digest}"
    return cleaned


def utc_stamp(when: datetime) -> str:
    """A sortable UTC timestamp for file names, to the millisecond."""
    when = when.astimezone(UTC)
    return when.strftime("%Y%m%dT%H%M%S") + f".{when.microsecond // 1000:03d}Z"


def claim_recording_path(
    output_dir: Path, room: str, stem: str, started: datetime, ext: str = ".ts"
) -> Path:
    """Create and return a new, empty ``{output_dir}/{room}/{stem}-{UTC}{ext}``; with
    ``ext=""`` a new folder (for HLS segments) instead of a file.

    The file is created with ``O_EXCL`` (the folder with ``mkdir``): an existing
    recording is never reused or overwritten. On a clash ``-2``, ``-3``, … is appended.
    """
    folder = Path(output_dir) / safe_component(room)
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{safe_component(stem)}-{utc_stamp(started)}"
    for n in range(1, 10_000):
        path = folder / (base + ("" if n == 1 else f"-{n}") + ext)
        try:
            if ext:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            else:
                path.mkdir()
        except FileExistsError:
            continue
        return path
    raise OSError(errno.EEXIST, "no free recording name", str(folder / base))
