"""Running a server as an unprivileged OS user when we are root (PostgreSQL refuses to run as root).

``server_user`` is ourselves, or under root the user named by an environment variable (created
with ``useradd --system`` if missing); ``check_reachable`` says which folder that user cannot
enter, before a server fails to start for that reason; ``OsUser.run_kwargs`` runs a child as it.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class OsUserError(RuntimeError):
    """No usable unprivileged user, or it cannot reach a folder it needs."""


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int

    def run_kwargs(self) -> dict[str, object]:
        """``subprocess`` arguments that run a child as this user (nothing when it is ourselves)."""
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_user(env: str, default: str) -> OsUser:
    """Ourselves, or, under root, the unprivileged user the server runs as (created if missing)."""
    import pwd

    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    name = os.environ.get(env, default)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        log.info("creating system user %s to run the server (it refuses to run as root)", name)
        command = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        command += ["--shell", "/usr/sbin/nologin", name]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise OsUserError(
                f"the server cannot run as root and `useradd {name}` failed ({done.stderr.strip()}); "
                f"set {env} to an existing unprivileged user"
            ) from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise OsUserError(f"{env}={name} is root; the server needs an unprivileged user")
    return OsUser(name, entry.pw_uid, entry.pw_gid)


def can_search(path: Path, user: OsUser) -> bool:
    import grp

    info = path.stat()
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    groups = {user.gid} | {g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem}
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_reachable(path: Path, user: OsUser, folders: Iterable[Path] = ()) -> None:
    """``user`` must be able to walk down to ``path`` and read ``folders``: say which folder stops it."""
    for parent in reversed(path.parents):
        if not can_search(parent, user):
            raise OsUserError(
                f"the server runs as user {user.name}, which cannot enter {parent}: "
                f"choose a --dir under a folder others may enter (e.g. /tmp), or `chmod o+x {parent}`"
            )
    for folder in folders:
        if not (can_search(folder, user) and all(can_search(p, user) for p in folder.parents)):
            raise OsUserError(f"the server's user {user.name} cannot read {folder}")
