"""A real Spark standalone cluster on 127.0.0.1 for the cluster test: one master and N workers,
started from the pyspark wheel (``spark-class ...deploy.master.Master`` / ``...deploy.worker.Worker``),
each in its own process group, with work directories under the test's folder and an environment in
which the repository is not importable (no PYTHONPATH, cwd outside the checkout, no virtualenv on
PATH: an executor without the shipped environment has only the system's python3). Stopped, process
group by process group, also when the test fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import commands
import pyspark

SPARK_HOME = Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _java_dir() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        return str(Path(java_home) / "bin")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if (Path(folder) / "java").is_file():
            return folder
    raise RuntimeError("java is not on PATH")


def worker_environment(root: Path) -> dict[str, str]:
    """What the daemons (and so the executors) see: no PYTHONPATH, no virtualenv, loopback only."""
    env = {
        "PATH": os.pathsep.join([_java_dir(), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(root),
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_NO_DAEMONIZE": "1",
        "LANG": "C.UTF-8",
        "SPARK_DAEMON_JAVA_OPTS": commands.SHORT_JVM_OPTIONS,  # the master and workers: short JVMs too
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


@dataclass
class Cluster:
    root: Path
    master_url: str
    master_ui: str
    worker_dirs: list[Path]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.master_ui}/json", timeout=5) as response:
            return json.load(response)

    def executors_by_worker(self, app_id: str) -> dict[int, set[str]]:
        """For each worker (by index), the executor ids it ran for ``app_id`` (its work directory)."""
        return {
            i: {p.name for p in (folder / app_id).iterdir() if p.is_dir()} if (folder / app_id).is_dir() else set()
            for i, folder in enumerate(self.worker_dirs)
        }


def _spark_class(main: str, *args: str, root: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(SPARK_HOME / "bin" / "spark-class"), main, *args],
            cwd=root,
            env=worker_environment(root),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the executors and Python workers it starts too
        )


def _wait(what: str, check, timeout: float, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: a daemon exited with {process.returncode} (see its log)")
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")


def stop(processes: list[subprocess.Popen], grace: float = 20.0) -> None:
    """SIGTERM each process group, then SIGKILL what is left after ``grace`` seconds."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def processes_under(root: Path) -> list[str]:
    """Processes whose working directory or command line is inside ``root`` (what the cluster started)."""
    found = []
    marker = str(root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes()
            if cwd.startswith(str(root)) or marker in cmdline:
                text = cmdline.replace(b"\0", b" ")[:160].decode(errors="replace")
                found.append(f"{entry.name}: {text}")
    return found


@contextlib.contextmanager
def standalone(root: Path, workers: int = 2, cores: int = 1, memory: str = "1536m") -> Iterator[Cluster]:
    """A master and ``workers`` workers on 127.0.0.1 (free ports), stopped on exit."""
    (root / "logs").mkdir(parents=True, exist_ok=True)
    port, ui = free_port(), free_port()
    cluster = Cluster(root, f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", [])
    try:
        master_args = ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)]
        cluster.processes.append(
            _spark_class(
                "org.apache.spark.deploy.master.Master", *master_args, root=root, log=root / "logs" / "master.log"
            )
        )
        _wait("master", lambda: cluster.state().get("status") == "ALIVE", 90, cluster.processes)
        for i in range(workers):
            work = root / f"worker-{i}"
            work.mkdir()
            cluster.worker_dirs.append(work)
            args = ["--host", "127.0.0.1", "--webui-port", str(free_port()), "--cores", str(cores)]
            args += ["--memory", memory, "--work-dir", str(work), cluster.master_url]
            cluster.processes.append(
                _spark_class("org.apache.spark.deploy.worker.Worker", *args, root=work, log=root / "logs" / f"w{i}.log")
            )

        def all_alive() -> bool:
            return sum(w.get("state") == "ALIVE" for w in cluster.state().get("workers", [])) == workers

        _wait("workers", all_alive, 90, cluster.processes)
        yield cluster
    finally:
        stop(cluster.processes)
