"""``raksha sql-server`` and ``raksha connect-server``: the raksha catalog served to analysts' tools.

The pyspark wheel ships both servers' classes but not Spark's ``sbin/start-*-server.sh``, so they
start as those scripts start them: ``spark-submit --class MAIN spark-internal``, here with the
settings every raksha SparkSession gets (``raksha.platform.session.spark_conf``: the Delta jars and
catalog, the Hive metastore, the warehouse, ``spark.conf``). Those settings go to spark-submit in a
properties file readable only by this user (``--properties-file``), not as ``--conf`` on the command
line, where ``ps`` would show a PostgreSQL metastore's password to every user of the machine.

- **Thrift JDBC/ODBC server** (``HiveThriftServer2``): beeline, JDBC and ODBC tools, Python DB-API
  clients such as impyla, at ``jdbc:hive2://HOST:PORT/``. It does no authentication (Hive's
  ``NONE``), so it binds to ``servers.sql.host``, 127.0.0.1 unless configured otherwise.
- **Spark Connect server** (``SparkConnectServer``): ``SparkSession.builder.remote(...)`` from a
  notebook, without a local JVM. It binds to 127.0.0.1 only and starts only with a token: the server
  reads it from ``SPARK_CONNECT_AUTHENTICATE_TOKEN`` in its environment (set from the variable
  ``servers.connect.token_env`` names; never on its command line) and refuses every request without
  it as a bearer token. The gRPC channel is plaintext, and pyspark's client sends a token without TLS
  only to the host name ``localhost`` (to any other host it opens TLS, which this server does not
  speak), so clients use ``sc://localhost:PORT/;token=...``.

The server runs in its own process group until Ctrl-C or SIGTERM; then the whole group (the JVM and
any Python workers it started) gets SIGTERM, SIGKILL after a grace period, and is waited for. Should
the raksha process die without stopping it, the kernel sends the server SIGTERM (PR_SET_PDEATHSIG).
It is ready when its port accepts connections; the command then prints the address clients use.

With the default Derby metastore (``catalog.metastore: derby``) the server holds the catalog while it
runs: embedded Derby allows one process, so ``raksha score`` and every other command on that catalog
fail until the server stops. A PostgreSQL metastore (``catalog.metastore: postgres``) is shared by
the server, the nightly job and analysts' sessions alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pyspark

from raksha.config import Config
from raksha.platform import jars, jvm_console, metastore, session

log = logging.getLogger(__name__)

SPARK_HOME = Path(pyspark.__file__).parent
THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_TOKEN_VARIABLE = "SPARK_CONNECT_AUTHENTICATE_TOKEN"  # where the Connect server reads its token
LOOPBACK = "127.0.0.1"
STOP_GRACE_S = 30.0
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """A server that cannot start (no token, a port in use) or that stopped by itself."""


class _StopRequested(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM (or SIGHUP) arrived: stop the server."""


@dataclass(frozen=True)
class ServerLaunch:
    """What to run and how clients reach it."""

    name: str  # for people: "Thrift JDBC/ODBC server"
    main_class: str
    app_name: str
    conf: dict[str, str] = field(repr=False)  # Spark settings, for the properties file (a password, maybe)
    args: list[str]  # the main class's own arguments
    env: dict[str, str] = field(repr=False)  # the Connect token
    host: str
    port: int
    address: str  # what clients connect to
    how_to_connect: list[str]  # lines printed when it is ready


def server_conf(cfg: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A raksha session's Spark settings plus ``extra``, the console as a command's (``jvm_console``)."""
    conf = {**session.spark_conf(cfg), **(extra or {})}
    # The servers open a session per client on their own threads, whose class loader does not see
    # spark.jars (ClassNotFoundException: DeltaCatalog at the first JDBC connection): the jars go on
    # the driver's class path as well.
    class_path = [p for p in conf.get("spark.driver.extraClassPath", "").split(os.pathsep) if p]
    class_path += [p for p in jars.jar_paths() if p not in class_path]
    conf["spark.driver.extraClassPath"] = os.pathsep.join(class_path)
    conf.update(jvm_console.console_conf(conf))
    return conf


def server_env(cfg: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment as the server needs it: the venv's python for workers and spark-submit's own
    scripts, loopback for a local master, no gateway of a session this process might hold."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYSPARK_GATEWAY") and key != CONNECT_TOKEN_VARIABLE
    }
    env["SPARK_HOME"] = str(SPARK_HOME)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in session.WORKER_ENV.items():
        env.setdefault(key, value)
    master = cfg.get("spark.master", None)
    if master and str(master).startswith("local"):
        env.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    env.update(extra or {})
    return env


def _port(given: int | None, configured: int) -> int:
    port = configured if given is None else given
    if not 1 <= int(port) <= 65535:
        raise ServerError(f"--port {port}: expected a TCP port, 1 to 65535")
    return int(port)


def thrift_server(cfg: Config, port: int | None = None) -> ServerLaunch:
    """``raksha sql-server``: the Thrift JDBC/ODBC server on ``servers.sql.host``."""
    host = str(cfg.get("servers.sql.host"))
    port = _port(port, cfg.get("servers.sql.port"))
    args = ["--hiveconf", f"hive.server2.thrift.bind.host={host}", "--hiveconf", f"hive.server2.thrift.port={port}"]
    url = f"jdbc:hive2://{host}:{port}/"
    database = cfg.get("catalog.database")
    return ServerLaunch(
        name="Thrift JDBC/ODBC server",
        main_class=THRIFT_SERVER_CLASS,
        app_name="raksha-sql-server",
        conf=server_conf(cfg),
        args=args,
        env=server_env(cfg),
        host=host,
        port=port,
        address=url,
        how_to_connect=[
            f'  beeline -u {url} -e "show tables in {database}"   (beeline ships in {SPARK_HOME / "bin"})',
            f"  impyla: impala.dbapi.connect(host='{host}', port={port}, auth_mechanism='PLAIN',"
            " user='YOUR_NAME', password='unused')",
        ],
    )


def connect_token(cfg: Config) -> str:
    """The token of ``raksha connect-server``, from the environment variable ``servers.connect.token_env``."""
    variable = str(cfg.get("servers.connect.token_env"))
    token = os.environ.get(variable, "")
    if not token.strip():
        raise ServerError(
            f"${variable} is not set: the Spark Connect server starts only with a token "
            f"(servers.connect.token_env names the variable; clients give it as ;token=...)"
        )
    return token


def connect_server(cfg: Config, port: int | None = None) -> ServerLaunch:
    """``raksha connect-server``: the Spark Connect server on 127.0.0.1, with token authentication."""
    token = connect_token(cfg)
    port = _port(port, cfg.get("servers.connect.port"))
    extra = {
        "spark.connect.grpc.binding.address": LOOPBACK,
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.grpc.port.maxRetries": "0",  # this port or none: clients were told this one
    }
    variable = cfg.get("servers.connect.token_env")
    url = f"sc://localhost:{port}/"
    return ServerLaunch(
        name="Spark Connect server",
        main_class=CONNECT_SERVER_CLASS,
        app_name="raksha-connect-server",
        conf=server_conf(cfg, extra),
        args=[],
        env=server_env(cfg, {CONNECT_TOKEN_VARIABLE: token}),
        host=LOOPBACK,
        port=port,
        address=url,
        how_to_connect=[
            f"  SparkSession.builder.remote(f\"{url};token={{os.environ['{variable}']}}\").getOrCreate()",
            "  (the host name localhost, not 127.0.0.1: pyspark sends a token without TLS only to localhost)",
        ],
    )


def spark_submit_line(launch: ServerLaunch, properties_file: Path, master: str | None) -> list[str]:
    """The spark-submit line that runs the server, as Spark's start scripts build it."""
    line = [str(SPARK_HOME / "bin" / "spark-submit"), "--properties-file", str(properties_file)]
    if master:
        line += ["--master", master]
    line += ["--name", launch.app_name, "--class", launch.main_class, "spark-internal"]
    return line + launch.args


def write_properties(conf: Mapping[str, str], path: Path) -> None:
    """``conf`` as a Java properties file only this user can read."""

    def escape(text: str) -> str:
        text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return "\\" + text if text[:1] in (" ", "\t") else text

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for key, value in conf.items():
            out.write(f"{key.replace(':', chr(92) + ':').replace('=', chr(92) + '=')}={escape(value)}\n")


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def listening(host: str, port: int) -> bool:
    target = LOOPBACK if host in ("0.0.0.0", "") else host
    try:
        with socket.create_connection((target, port), timeout=1.0):
            return True
    except OSError:
        return False


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM when the raksha process that started it dies (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM to the server's process group, SIGKILL after ``grace_s``; returns its exit code once gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        log.warning("server (pid %s) still running after SIGTERM: killing it", process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever else of its group is left (Python workers)
    return process.wait()


def _wait_until_listening(launch: ServerLaunch, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise ServerError(f"the {launch.name} exited with code {code} before it listened (its log is above)")
        if listening(launch.host, launch.port):
            return
        time.sleep(0.5)
    raise ServerError(f"the {launch.name} did not listen on {launch.host}:{launch.port} within {timeout_s:.0f} s")


def serve(cfg: Config, launch: ServerLaunch, out: TextIO = sys.stdout) -> int:
    """Run the server until Ctrl-C or SIGTERM; 0 when it was stopped so, an error when it stopped itself."""
    if port_in_use(launch.host, launch.port):
        raise ServerError(f"port {launch.port} on {launch.host} is in use (choose another with --port)")
    # Derby: its folder; PostgreSQL: the database and the Hive schema, once, before the server's session
    metastore.ensure_schema(cfg)
    master = cfg.get("spark.master", None)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    started = time.monotonic()
    process: subprocess.Popen | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="raksha-server-") as private:
            properties = Path(private) / "spark.properties"
            write_properties(launch.conf, properties)
            line = spark_submit_line(launch, properties, str(master) if master else None)
            log.debug("starting %s: %s", launch.name, " ".join(line))
            print(f"starting the {launch.name} on {launch.host}:{launch.port} ...", file=out, flush=True)
            quiet = not jvm_console.verbose()
            process = subprocess.Popen(
                line,
                env=launch.env,
                stderr=subprocess.PIPE if quiet else None,  # without the JVM's start-up line
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=_stop_with_parent,  # noqa: PLW1509 - no threads in this process yet
            )
            if quiet:
                threading.Thread(target=jvm_console.pump_stderr, args=(process.stderr,), daemon=True).start()
            _wait_until_listening(launch, process, float(cfg.get("servers.start_timeout_s")))
            # spark-submit has read its settings by now
        print(
            f"{launch.name} ready in {time.monotonic() - started:.0f} s: {launch.address}  (pid {process.pid})",
            file=out,
        )
        for line_text in launch.how_to_connect:
            print(line_text, file=out)
        print("Ctrl-C or SIGTERM stops it.", file=out, flush=True)
        code = process.wait()
        raise ServerError(f"the {launch.name} stopped by itself with code {code} (its log is above)")
    except (KeyboardInterrupt, _StopRequested):
        print(f"stopping the {launch.name} ...", file=out, flush=True)
        if process is not None:
            stop(process)
        print(f"{launch.name} stopped", file=out, flush=True)
        return 0
    finally:
        if process is not None and process.poll() is None:
            stop(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_stop(signum: int, frame: object) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def run_command(cfg: Config, which: str, port: int | None) -> int:
    """``raksha sql-server`` (``which="sql"``) or ``raksha connect-server`` (``"connect"``)."""
    build = thrift_server if which == "sql" else connect_server
    return serve(cfg, build(cfg, port))
