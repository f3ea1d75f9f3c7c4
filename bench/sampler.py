"""Peak memory and CPU seconds of a process tree, read from ``/proc`` (no psutil: it is not in the venv)."""

from __future__ import annotations

import os
import threading
from typing import Any

SAMPLE_INTERVAL_S = 0.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_proc(path: str) -> str | None:
    """The text of a ``/proc`` file; None once its process is gone."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _processes() -> dict[int, tuple[int, str, str, float]]:
    """pid -> (ppid, comm, cmdline, CPU seconds used so far) of every process we can see."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = read_proc(f"/proc/{entry.name}/stat")
        if not stat or ")" not in stat:
            continue
        head, rest = stat.rsplit(")", 1)
        fields = rest.split()
        comm = head.split("(", 1)[-1]
        cmdline = (read_proc(f"/proc/{entry.name}/cmdline") or "").replace("\0", " ").strip()
        cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        out[int(entry.name)] = (int(fields[1]), comm, cmdline, cpu_s)
    return out


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in kB; (0, 0) once it is gone."""
    rss = hwm = 0
    for line in (read_proc(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


class TreeSampler(threading.Thread):
    """Peak RSS of the processes under ``root``, by role, sampled every ``SAMPLE_INTERVAL_S``.

    Roles: ``jvm`` (the Spark driver, a ``java`` process), ``daemon`` (``pyspark.daemon`` started
    by the JVM), ``worker`` (the Python workers it forks), ``python`` (the root process itself).
    The peak of a process is its kernel high-water mark (VmHWM), so a spike between two samples
    still counts unless the process ends before the next sample. CPU seconds (user + system) are
    each process's last sample, summed by role: where the machine's two cores went.
    """

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peaks: dict[int, dict[str, Any]] = {}
        self.concurrent_worker_rss_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def sample(self) -> None:
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_) in table.items():
            children.setdefault(ppid, []).append(pid)
        roles = {self.root: "python"}
        queue = [self.root]
        while queue:
            parent = queue.pop()
            for pid in children.get(parent, []):
                _, comm, cmdline, _ = table[pid]
                if comm == "java" and "org.apache.spark.launcher.Main" in cmdline:
                    role = "launcher"  # spark-class's short-lived java that only builds the command line
                elif comm == "java" or cmdline.split(" ", 1)[0].endswith("/java"):
                    role = "jvm"
                elif "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
                    role = "worker" if roles.get(parent) in ("daemon", "worker") else "daemon"
                else:
                    role = "other"
                roles[pid] = role
                queue.append(pid)
        worker_rss = 0
        for pid, role in roles.items():
            rss, hwm = _memory_kb(pid)
            if not hwm:
                continue
            _, _, cmdline, cpu_s = table.get(pid, (0, "", "", 0.0))
            seen = self.peaks.setdefault(pid, {"peak_kb": 0})
            if seen.get("role") != role:  # spark-submit's bash becomes the JVM by exec, with a fresh VmHWM
                seen.update(role=role, peak_kb=0, cmd=cmdline[:80])
            seen["peak_kb"] = max(seen["peak_kb"], hwm, rss)
            seen["cpu_s"] = cpu_s  # the last sample before it ends
            if role == "worker":
                worker_rss += rss
        self.concurrent_worker_rss_kb = max(self.concurrent_worker_rss_kb, worker_rss)

    def summary(self) -> dict[str, Any]:
        def peak(role: str) -> int:
            return max((p["peak_kb"] for p in self.peaks.values() if p["role"] == role), default=0) * 1024

        def cpu(role: str) -> float:
            return sum(p.get("cpu_s", 0.0) for p in self.peaks.values() if p["role"] == role)

        return {
            "driver_jvm_cpu_s": cpu("jvm"),
            "python_workers_cpu_s": cpu("worker"),
            "driver_jvm_peak_bytes": peak("jvm"),
            "python_worker_peak_bytes": peak("worker"),
            "python_daemon_peak_bytes": peak("daemon"),
            "python_driver_peak_bytes": peak("python"),
            "python_workers_seen": sum(1 for p in self.peaks.values() if p["role"] == "worker"),
            "python_workers_concurrent_rss_peak_bytes": self.concurrent_worker_rss_kb * 1024,
        }
