"""The one day every variant scores: N sessions generated once under ``WORK/raw``, reused when it matches."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from settings import DAY, bench_sets

log = logging.getLogger("bench")


def generate_day(work: Path, sessions: int, keep_existing: bool = True) -> dict[str, Any]:
    """Generate one day of ``sessions`` under ``work/raw`` (reused when a matching day is there)."""
    from raksha import synthetic
    from raksha.config import load_config

    cfg = load_config(sets=bench_sets(work, work / "out"))
    marker = work / "raw" / "generated.json"
    wanted = {
        "day": DAY.isoformat(),
        "sessions": sessions,
        "attack_rate": float(cfg.get("generate.attack_rate")),
        "seed": int(cfg.get("generate.seed")),
        "users_per_1000_sessions": int(cfg.get("generate.users_per_1000_sessions")),
    }
    if keep_existing and marker.exists():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            log.info("reusing the generated day in %s", work / "raw")
            return found
    shutil.rmtree(work / "raw", ignore_errors=True)
    log.info("generating %d sessions for %s under %s", sessions, DAY, work / "raw")
    summary = synthetic.generate(
        DAY,
        1,
        sessions,
        wanted["attack_rate"],
        wanted["seed"],
        cfg.path("sessions"),
        cfg.path("actions"),
        cfg.path("labels"),
        wanted["users_per_1000_sessions"],
    )
    found = {**wanted, "actions": int(summary["actions"]), "generate_seconds": summary["seconds"]}
    marker.write_text(json.dumps(found, indent=2) + "\n")
    return found
