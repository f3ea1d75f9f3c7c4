"""One writer at a time: the single lock every command that writes a table takes.

Delta Lake makes each commit atomic, but its commit is exclusive only inside one JVM on a local
filesystem (and on object stores without a commit coordinator), so two processes committing to
one table need this lock; and two runs of the same table and date must not interleave at all.
Every writer takes, through ``hold``:

- ``{table}/dt={D}`` for each table and date it writes, for the whole run: a second run of the
  same table and date is refused at once, with a message naming the holder;
- ``{table}/_commit`` around each commit to the table (waits up to ``publish.commit_wait_s``):
  runs of different dates compute side by side and commit one after the other.

A lock is a folder ``{paths.warehouse}/_locks/{key}/`` of numbered entries, each created
exclusively and holding who took it (run id, host, pid, the process's start time, when). The
highest entry speaks for the lock: a holder, or a release. To take a lock a process creates the
next number after the highest it saw, then checks that no higher entry appeared; so when two
processes see the same dead holder, exactly one takes over (the other's number is taken, or is
not the highest) and no one ever deletes another's entry. A holder on this host whose process is
gone (or whose pid now names another process) is dead and taken over, with a warning. A holder on
another host is never broken automatically: the message names the folder to clear if that run is
gone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.platform import processes
from raksha.platform.storage import Storage

log = logging.getLogger(__name__)

ENTRY_DIGITS = 12
UNREADABLE_GRACE_S = 60.0  # an entry being written is held this long before it counts as dead
UNREADABLE_RETRIES_S = (0.05, 0.1, 0.2, 0.4)  # an unreadable entry is read again after these pauses


class LockHeldError(RuntimeError):
    """Another run holds a lock this run needs."""


def lock_folder(cfg: Config, key: str) -> str:
    return f"{cfg.path('warehouse').rstrip('/')}/_locks/{key}"


def date_key(table: str, day: dt.date) -> str:
    return f"{table}/dt={day.isoformat()}"


def commit_key(table: str) -> str:
    return f"{table}/_commit"


def _me(run_id: str) -> dict:
    pid = os.getpid()
    return {
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": pid,
        "process_start": processes.start_time(pid),
        "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def holder_is_dead(holder: dict) -> bool:
    """True only for a holder on this host whose process is gone (never for another host's)."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        pid = int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid <= 0 or not processes.alive(pid):
        return True
    started = holder.get("process_start")
    return started is not None and processes.start_time(pid) not in (None, started)


def describe(holder: dict) -> str:
    return (
        f"run {holder.get('run_id')} on host {holder.get('host')} pid {holder.get('pid')} "
        f"since {holder.get('acquired_at')}"
    )


class _Lock:
    def __init__(self, storage: Storage, folder: str, run_id: str) -> None:
        self.storage, self.folder, self.run_id = storage, folder, run_id
        self.entry: str | None = None

    def _entries(self) -> list[tuple[int, str]]:
        out = []
        for path in self.storage.list_files(self.folder):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            stem = name.removesuffix(".json")
            if stem.isdigit():
                out.append((int(stem), path))
        return sorted(out)

    def _read(self, path: str) -> dict | None:
        try:
            return json.loads(self.storage.read_bytes(path) or b"null")
        except (OSError, ValueError):
            return None
        except Exception:  # noqa: BLE001 - py4j: the entry vanished (released and cleaned) while reading
            return None

    def _read_settled(self, path: str) -> dict | None:
        """The entry at ``path``; an unreadable one is read again for a moment, as on filesystems
        where a new file is created and then written a reader can catch it empty."""
        for delay in (0.0, *UNREADABLE_RETRIES_S):
            time.sleep(delay)
            if (holder := self._read(path)) is not None:
                return holder
        return None

    def _entry_path(self, number: int) -> str:
        return f"{self.folder}/{number:0{ENTRY_DIGITS}d}.json"

    def try_acquire(self) -> dict | None:
        """Take the lock, or return the live holder."""
        for _ in range(20):
            entries = self._entries()
            top_number, top_path = entries[-1] if entries else (0, None)
            if top_path is not None:
                holder = self._read_settled(top_path)
                if holder is None:
                    try:
                        age = time.time() - self.storage.modified_at(top_path)
                    except Exception:  # noqa: BLE001 - py4j: the entry vanished (released and cleaned): look again
                        continue
                    if age < UNREADABLE_GRACE_S:
                        return {"run_id": "(being written)", "host": "?", "pid": "?", "acquired_at": top_path}
                elif not holder.get("released"):
                    if not holder_is_dead(holder):
                        return holder
                    log.warning("taking over the lock %s of a run that is gone: %s", self.folder, describe(holder))
            mine = self._entry_path(top_number + 1)
            if not self.storage.create_exclusive(mine, json.dumps(_me(self.run_id)).encode()):
                continue  # someone else took that number: look again
            if self._entries()[-1][0] != top_number + 1:
                self.storage.delete(mine)  # a higher entry appeared: it speaks for the lock
                continue
            self.entry = mine
            for number, path in entries:  # older entries: dead holders and releases
                if number < top_number + 1:
                    self.storage.delete(path)
            return None
        raise LockHeldError(f"could not take the lock {self.folder}: it changed hands too often")

    def release(self) -> None:
        if self.entry is None:
            return
        number = int(self.entry.rsplit("/", 1)[-1].removesuffix(".json"))
        released = {"released": True, "run_id": self.run_id, "at": dt.datetime.now(dt.UTC).isoformat()}
        if self.storage.create_exclusive(self._entry_path(number + 1), json.dumps(released).encode()):
            self.storage.delete(self.entry)
        self.entry = None


@contextmanager
def hold(spark: SparkSession, cfg: Config, keys: Sequence[str], run_id: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold every lock in ``keys`` (taken in sorted order) for the block.

    With ``wait_s`` 0 a held lock is refused at once (LockHeldError naming the holder);
    otherwise it is retried until ``wait_s`` has passed.
    """
    storage = Storage(spark)
    with ExitStack() as stack:
        for key in sorted(set(keys)):
            lock = _Lock(storage, lock_folder(cfg, key), run_id)
            deadline = time.monotonic() + wait_s
            delay = 0.2
            while (holder := lock.try_acquire()) is not None:
                if time.monotonic() >= deadline:
                    another_host = holder.get("host") not in (socket.gethostname(), "?")
                    hint = f" (if that run is gone, remove {lock.folder})" if another_host else ""
                    raise LockHeldError(f"{key}: another run holds it: {describe(holder)}{hint}")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            stack.callback(lock.release)
        yield


def commit_wait_s(cfg: Config) -> float:
    return float(cfg.get("publish.commit_wait_s"))
