"""Files written whole or not at all: a temporary file in the same folder renamed over the target, so a
reader (or a run killed mid-write) sees the old file or the complete new one, never half of it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from dlcourse.errors import OutputError


def write_json(path: Path, obj) -> None:
    """Atomic write: a run killed mid-write never leaves a half file that parses as something else."""
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    """As write_text, for a binary file (a figure's PNG)."""
    write_text(path, data)


def write_text(path: Path, text: str | bytes, newline: str | None = None) -> None:
    """Write through a temporary file renamed over `path`: readers see the old file or the whole new one;
    a failed write (a full disk, a folder in the way) leaves no temporary file and is one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": newline})) as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as the run's other files (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        raise
