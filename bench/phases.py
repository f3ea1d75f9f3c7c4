"""When the driver enters each phase of the job: the marks the breakdown lays Spark's stages on.

The pipeline's code is not changed: in the child process only, a few module attributes that
``raksha.pipeline.daily`` looks up when it runs are wrapped so that calling them records a mark
(``PIPELINE_SEAMS``). A seam a later version of the pipeline no longer has is reported as missing,
and the time it would have marked stays with the phase before it.
"""

from __future__ import annotations

import functools
import importlib
import time
from typing import Any

# (module, attribute, phase, how): "enter" marks the phase when the function is called (it builds a
# lazy DataFrame; the jobs that compute it come later, in that phase); "span" marks it for the
# function's duration and restores the phase before it on return. ``{table}``: the function's third
# argument (``tables.publish_day(spark, cfg, table, ...)``).
PIPELINE_SEAMS = (
    ("raksha.ingest.inputs", "read_sessions", "read", "enter"),
    ("raksha.pipeline.daily", "score_models", "score", "enter"),
    ("raksha.pipeline.daily", "quarantine_rows", "audit", "enter"),
    ("raksha.platform.tables", "publish_day", "publish:{table}", "span"),
    ("raksha.platform.tables", "ensure_table", "catalog", "span"),  # inside each commit: the table's DDL
    ("raksha.pipeline.daily", "nightly_report", "report", "span"),
    ("raksha.pipeline.daily", "append_run_log", "run_log", "span"),
)


def now_ms() -> tuple[float, float]:
    """(epoch ms, monotonic ms): the event log's clock, and the one the bench times with."""
    return time.time() * 1000.0, time.monotonic() * 1000.0


class PhaseClock:
    """Marks (epoch ms, monotonic ms, phase) in call order; ``marks[0]`` starts the run, ``end()`` closes it.

    Both clocks, because Spark's event log is in epoch time and the bench times with the monotonic
    clock: when the virtual machine is paused, the epoch clock is stepped forward on resume and the
    monotonic one is not, and the breakdown scales each phase back to its monotonic length.
    """

    def __init__(self) -> None:
        self.marks: list[tuple[float, float, str]] = []
        self.seams_found: list[str] = []
        self.seams_missing: list[str] = []

    @property
    def current(self) -> str | None:
        return self.marks[-1][2] if self.marks else None

    def mark(self, phase: str) -> None:
        if phase != self.current:
            self.marks.append((*now_ms(), phase))

    def end(self) -> None:
        self.marks.append((*now_ms(), "end"))

    def instrument(self, seams: tuple[tuple[str, str, str, str], ...] = PIPELINE_SEAMS) -> None:
        """Wrap each seam's module attribute (in this process) so that calling it records its phase."""
        for module_name, attribute, phase, how in seams:
            module = importlib.import_module(module_name)
            original = getattr(module, attribute, None)
            name = f"{module_name}.{attribute}"
            if original is None:
                self.seams_missing.append(name)
                continue
            setattr(module, attribute, self._wrapped(original, phase, how))
            self.seams_found.append(name)

    def _wrapped(self, original: Any, phase: str, how: str) -> Any:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            label = phase.format(table=args[2] if len(args) > 2 else kwargs.get("table", "?"))
            before = self.current
            self.mark(label)
            try:
                return original(*args, **kwargs)
            finally:
                if how == "span" and before is not None:
                    self.mark(before)

        return wrapper

    def intervals(self) -> list[tuple[float, float, str, float]]:
        """(start epoch ms, end epoch ms, phase, monotonic ms between them) for each mark up to ``end``."""
        return [
            (t, self.marks[i + 1][0], p, self.marks[i + 1][1] - m)
            for i, (t, m, p) in enumerate(self.marks[:-1])
            if p != "end"
        ]
