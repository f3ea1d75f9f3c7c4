"""Running the commands as a scheduler and an analyst do: each a separate process with its own JVM,
through the installed ``raksha`` script (or ``spark-submit``), with the real ``build_session``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
# a command's JVM lives a minute or two beside the other test worker's: the C1 compiler alone and the serial
# collector cost it less CPU than C2 compiling in the background (a cold small day: about 15% less). The
# shared test sessions keep C2: they live the whole run, and their warm runs are faster with it.
SHORT_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment for a process of its own: without the test session's gateway, this
    virtualenv's scripts first on PATH (spark-submit finds SPARK_HOME with this python), every JVM that
    spark-submit starts a short one (``SHORT_JVM_OPTIONS`` through ``SPARK_SUBMIT_OPTS``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("SPARK_SUBMIT_OPTS", SHORT_JVM_OPTIONS)
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``cmd`` in ``cwd`` with ``environment()`` plus ``env``."""
    return subprocess.run(cmd, cwd=cwd, env=environment(**(env or {})), capture_output=True, text=True, timeout=900)


def raksha(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``raksha ARGS`` as a separate process."""
    return run([str(BIN / "raksha"), *args], cwd, env)
