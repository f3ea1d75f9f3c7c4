"""One run per date: a lock file under ``{paths.staging}/locks/`` while a run of that date is on.

The lock is created atomically (exclusive create); it holds who took it: run_id, host, pid and
when. A second run of the same date is refused with a message naming the holder. A lock left
by a run that died (killed, machine lost) would block the date for ever, so a lock whose holder
ran on this host with a process id that no longer exists is taken over, with a warning. A lock
held from another host is never broken automatically: if that run is gone, remove the file
named in the message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.storage import Storage

log = logging.getLogger(__name__)


class DateLockedError(RuntimeError):
    """Another run of the same date holds the lock."""


def lock_path(cfg: Config, day: dt.date) -> str:
    return f"{cfg.path('staging').rstrip('/')}/locks/dt={day.isoformat()}.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_is_gone(holder: dict) -> bool:
    return holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1)))


def _describe(holder: dict) -> str:
    return (
        f"run {holder.get('run_id')} on host {holder.get('host')} pid {holder.get('pid')} "
        f"since {holder.get('acquired_at')}"
    )


@contextmanager
def date_lock(spark: SparkSession, cfg: Config, day: dt.date, run_id: str) -> Iterator[None]:
    """Hold the date's lock for the block; refuse if a live run holds it."""
    storage = Storage(spark)
    path = lock_path(cfg, day)
    me = {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    payload = json.dumps(me).encode()
    for _ in range(2):
        if storage.create_exclusive(path, payload):
            break
        try:
            holder = json.loads(storage.read_bytes(path) or b"{}")
        except (OSError, ValueError):
            holder = {}
        if holder and not _holder_is_gone(holder):
            raise DateLockedError(f"{day}: another run holds this date: {_describe(holder)} (lock file {path})")
        log.warning("%s: taking over the lock of a run that is gone: %s", day, _describe(holder) if holder else path)
        storage.delete(path)
    else:
        raise DateLockedError(f"{day}: could not take the lock at {path}")
    try:
        yield
    finally:
        try:
            held = json.loads(storage.read_bytes(path))
        except (OSError, ValueError):
            held = {}
        if held.get("run_id") == run_id:
            storage.delete(path)
