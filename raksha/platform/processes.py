"""Whether a process on this host is still there: the one check locks and local servers share."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name (fields 3 onwards); empty where unknown."""
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return []


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return not (fields and fields[0] == "Z")


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid apart); None where unknown."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else None
