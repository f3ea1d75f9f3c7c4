"""The day every variant scores, under ``WORK/raw/<day kind>``: generated once, reused when it matches.

Two kinds of day:

- ``generated``: ``raksha.synthetic.generate`` with the ``generate.*`` defaults of ``conf/base.yaml``
  (about 5% of sessions flagged: the attacks and the odd normal ones);
- ``stress``: ``stress_day`` (every feature uniformly random within its range, random action
  sequences: every session flagged, every autoencoder reason computed).

Each is written with the day before it (``HISTORY_DAY``, the same users, other sessions): the variants that
keep user baselines build its snapshot before they are timed (``launch``), so the timed day is scored
as every night after the first, against yesterday's baselines.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from settings import DAY, HISTORY_DAY, bench_sets, raw_dir

log = logging.getLogger("bench")


def generate_day(work: Path, sessions: int, day_kind: str = "generated", keep_existing: bool = True) -> dict[str, Any]:
    """Generate one day of ``sessions`` under ``work/raw/<day_kind>`` (reused when a matching day is there)."""
    from raksha.config import load_config

    raw = raw_dir(work, day_kind)
    cfg = load_config(sets=bench_sets(raw, work / "out"))
    marker = raw / "generated.json"
    wanted: dict[str, Any] = {
        "kind": day_kind,
        "day": DAY.isoformat(),
        "history_day": HISTORY_DAY.isoformat(),
        "sessions": sessions,
    }
    if day_kind == "generated":
        wanted.update(
            attack_rate=float(cfg.get("generate.attack_rate")),
            seed=int(cfg.get("generate.seed")),
            users_per_1000_sessions=int(cfg.get("generate.users_per_1000_sessions")),
        )
    else:
        from stress_day import STRESS_LENGTHS, STRESS_SEED

        wanted.update(seed=STRESS_SEED, actions_per_session=list(STRESS_LENGTHS))
    if keep_existing and marker.exists():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            log.info("reusing the %s day in %s", day_kind, raw)
            return found
    shutil.rmtree(raw, ignore_errors=True)
    log.info(
        "generating a %s day of %d sessions for %s (and its history, %s) under %s",
        day_kind,
        sessions,
        DAY,
        HISTORY_DAY,
        raw,
    )
    clock = time.monotonic()
    if day_kind == "generated":
        from raksha import synthetic

        for day in (HISTORY_DAY, DAY):  # the same users (seeded by the seed), each day its own sessions
            summary = synthetic.generate(
                day,
                1,
                sessions,
                wanted["attack_rate"],
                wanted["seed"],
                cfg.path("sessions"),
                cfg.path("actions"),
                cfg.path("labels"),
                wanted["users_per_1000_sessions"],
            )
    else:
        from stress_day import write_stress_day

        for day in (HISTORY_DAY, DAY):
            summary = write_stress_day(day, sessions, cfg.path("sessions"), cfg.path("actions"))
    found = {**wanted, "actions": int(summary["actions"]), "generate_seconds": round(time.monotonic() - clock, 1)}
    marker.write_text(json.dumps(found, indent=2) + "\n")
    return found
