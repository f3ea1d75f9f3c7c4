"""Starting a variant: a fresh child process (``bench/run.py --child X``) whose process tree is sampled."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from breakdown import breakdown_from_event_log
from sampler import TreeSampler
from settings import HISTORY_DAY, REPO, RUN_SCRIPT, VARIANTS, WITH_BASELINES, out_dir

log = logging.getLogger("bench")


def run_variant(
    variant: str, work: Path, sessions: int, logs: Path, day_kind: str = "generated", profile: bool = False
) -> dict[str, Any]:
    """Run one variant on the ``day_kind`` day in a fresh child process, sampling the memory of its process tree."""
    out = out_dir(work, day_kind, VARIANTS[variant])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result_path = out / "result.json"
    log_path = logs / f"{day_kind}-{VARIANTS[variant]}.log"
    command = [
        sys.executable,
        str(RUN_SCRIPT),
        "--child",
        variant,
        "--work",
        str(work),
        "--sessions",
        str(sessions),
        "--day",
        day_kind,
        "--result",
        str(result_path),
    ]
    history_s = None
    if variant in WITH_BASELINES:
        history_s = _build_history(command, logs / f"{day_kind}-{VARIANTS[variant]}-history.log", variant)
        if history_s is None:
            return {"variant": VARIANTS[variant], "error": f"no user baselines for {HISTORY_DAY}"}
    command += ["--profile"] if profile else []
    log.info("%s day, variant %s (%s): running, log in %s", day_kind, variant, VARIANTS[variant], log_path)
    load_before = os.getloadavg()
    clock = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log_file:
        child = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(REPO))
        sampler = TreeSampler(child.pid)
        sampler.start()
        code = child.wait()
        sampler.stop()
    process_s = time.monotonic() - clock
    if code != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        log.error("variant %s failed (exit %s):\n  %s", VARIANTS[variant], code, "\n  ".join(tail))
        return {"variant": VARIANTS[variant], "error": f"exit {code}; see {log_path}", "log_tail": tail}
    result = json.loads(result_path.read_text())
    result.update(sampler.summary(), process_s=process_s, load_average_before=load_before, history_s=history_s)
    result["load_average_after"] = os.getloadavg()
    if variant == "d":  # no JVM: the notebook is one Python process
        result["python_worker_peak_bytes"] = result["python_driver_peak_bytes"]
    if "event_log" in result:
        try:
            result["breakdown"] = breakdown_from_event_log(
                Path(result["event_log"]), result["phase_intervals"], result["python_workers_cpu_s"]
            )
        except Exception as exc:  # noqa: BLE001 - a breakdown that cannot be read must not lose the timing
            log.warning("variant %s: no stage breakdown from %s: %s", VARIANTS[variant], result["event_log"], exc)
            result["breakdown"] = {"error": f"{type(exc).__name__}: {exc}"}
    log.info("variant %s: %.1f s", VARIANTS[variant], result["wall_s"])
    return result


def _build_history(command: list[str], log_path: Path, variant: str) -> float | None:
    """The users' baselines of ``HISTORY_DAY`` in the variant's warehouse (``raksha baseline build``'s code, in
    a child process of its own, untimed); its seconds, or None when it failed."""
    log.info(
        "variant %s: building the user baselines of %s first (untimed), log in %s",
        VARIANTS[variant],
        HISTORY_DAY,
        log_path,
    )
    clock = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log_file:
        code = subprocess.call([*command, "--history"], stdout=log_file, stderr=subprocess.STDOUT, cwd=str(REPO))
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        log.error("variant %s: its history failed (exit %s):\n  %s", VARIANTS[variant], code, "\n  ".join(tail))
        return None
    return time.monotonic() - clock
