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
MASTER = "local[2]"
VARIANTS = {"a": "floor", "b": "raksha", "c": "recipe", "d": "notebook", "e": "crossing", "f": "raksha-keras"}
DEFAULT_VARIANTS = ["a", "b", "c", "d"]
NOTEBOOK_SAMPLE = 200
RECIPE_BATCH_SIZE = 100  # the batch_size of the predict_batch_udf example in the Spark docs
SCALE_SIZES = (250_000, 1_000_000, 4_000_000)
GB = 1024**3
MB = 1024**2


def bench_sets(work: Path, out: Path, master: str = MASTER) -> list[str]:
    """``--set`` overrides: inputs under ``work/raw``, outputs under ``out``, the shipped models, local[2]."""
    raw = work / "raw"
    return [
        f"paths.sessions={raw / 'sessions'}",
        f"paths.actions={raw / 'action_log'}",
        f"paths.labels={raw / 'labels'}",
        f"paths.warehouse={out / 'warehouse'}",
        f"paths.metastore={out / 'metastore'}",
        f"paths.models={MODELS}",
        f"spark.master={master}",
    ]
