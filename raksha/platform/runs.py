"""Run identity: the one maker of run ids, and the code version every run records.

A run id is ``{kind}-{YYYYMMDDTHHMMSSZ}-{6 hex}`` (kind: score, label, export, restore, vacuum):
sortable by start time, unique across hosts, and readable in a lock message or a Delta commit.
"""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
from pathlib import Path

import raksha

KINDS = ("score", "label", "export", "restore", "vacuum", "baseline")


def new_run_id(kind: str, now: dt.datetime | None = None) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown run kind '{kind}' (one of {', '.join(KINDS)})")
    now = now or dt.datetime.now(dt.UTC)
    return f"{kind}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{raksha.__version__}+{sha}"
    except (OSError, subprocess.SubprocessError):
        return raksha.__version__
