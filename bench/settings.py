"""What every variant of the bench shares: the day, the Spark master, the shipped models, the ``--set`` lines.

The bench's modules sit side by side in ``bench/`` and import each other by name (``bench/run.py`` is
run as a script, so its folder is first on ``sys.path``, in the parent and in every child process).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUN_SCRIPT = BENCH / "run.py"  # what the parent starts, with ``--child X``, for each variant
RESULTS = BENCH / "results"
MODELS = REPO / "models"
NOTEBOOK_REFERENCE = REPO / "tests" / "notebook_reference.py"  # the notebooks' per-row functions
DAY = dt.date(2026, 11, 2)
# the day before: its users' baselines are built (untimed) before a variant that keeps them scores DAY, so
# DAY is scored as every night after the first is, against yesterday's snapshot (issue 15's cost)
HISTORY_DAY = DAY - dt.timedelta(days=1)
MASTER = "local[2]"
VARIANTS = {
    "g": "bare",
    "a": "floor",
    "b": "raksha",
    "c": "recipe",
    "d": "notebook",
    "e": "crossing",
    "f": "raksha-keras",
    "h": "raksha-no-baselines",
    "m": "bare-models",
    "u": "bare-baselines",
}
BARE_VARIANTS = ("g", "m", "u")  # bare.run_bare (m: with the models, u: with user baselines), not raksha's pipeline
DEFAULT_VARIANTS = ["g", "a", "b", "c", "d"]
WITH_BASELINES = ("a", "b", "c", "e", "f", "u")  # scored against HISTORY_DAY's user baselines (h: disabled)
DAYS = ("generated", "stress")  # --day both runs them in this order
# issue 17: raksha / bare floor on a 1M-session day, per day
BARE_TARGETS = {"generated": 1.5, "stress": 2.0}
NOTEBOOK_SAMPLE = 200
RECIPE_BATCH_SIZE = 100  # the batch_size of the predict_batch_udf example in the Spark docs
SCALE_SIZES = (250_000, 1_000_000, 4_000_000)
SCALE_VARIANTS = ("g", "b", "a")  # bare, raksha, floor
GB = 1024**3
MB = 1024**2


def raw_dir(work: Path, day_kind: str) -> Path:
    """Where a day's inputs are: ``WORK/raw/<generated|stress>`` (sessions, action_log, labels)."""
    return work / "raw" / day_kind


def out_dir(work: Path, day_kind: str, variant_name: str) -> Path:
    """A variant's own warehouse, metastore, event log and result: ``WORK/out/<day>/<variant>``."""
    return work / "out" / day_kind / variant_name


def bench_sets(raw: Path, out: Path, master: str = MASTER) -> list[str]:
    """``--set`` overrides: inputs under ``raw``, outputs under ``out``, the shipped models, local[2]."""
    return [
        f"paths.sessions={raw / 'sessions'}",
        f"paths.actions={raw / 'action_log'}",
        f"paths.labels={raw / 'labels'}",
        f"paths.warehouse={out / 'warehouse'}",
        f"paths.metastore={out / 'metastore'}",
        f"paths.models={MODELS}",
        f"spark.master={master}",
    ]


def event_log_sets(folder: Path) -> list[str]:
    """Spark's event log, uncompressed, into ``folder``: what ``breakdown`` reads. Every variant has it, so
    its (small) cost is the same everywhere."""
    return [
        "spark.conf.spark.eventLog.enabled=true",
        f"spark.conf.spark.eventLog.dir={folder}",
        "spark.conf.spark.eventLog.compress=false",
    ]
