"""Running the commands as a scheduler and an analyst do: each a separate process with its own JVM,
through the installed ``raksha`` script (or ``spark-submit``), with the real ``build_session``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``cmd`` in ``cwd`` with this environment (minus the test session's gateway) plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    full["PATH"] = f"{BIN}{os.pathsep}{full.get('PATH', '')}"  # spark-submit finds SPARK_HOME with this python
    full.update(env or {})
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=900)


def raksha(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``raksha ARGS`` as a separate process."""
    return run([str(BIN / "raksha"), *args], cwd, env)
