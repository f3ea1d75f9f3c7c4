"""Named failure points, for the fault-injection tests (off unless ``RAKSHA_FAILPOINTS`` is set).

``RAKSHA_FAILPOINTS="name=action[;name=action]"`` in the driver's environment arms them; the
driver hands the setting to its tasks as a Spark local property, so Python workers see it
without any restart. Actions:

- ``raise``: raise ``InjectedFault`` every time;
- ``raise_first_attempt``: in a task, raise on the first attempt of partition 0 only (a retried
  task then succeeds); in the driver, the same as ``raise``;
- ``sleep:SECONDS``: pause (to kill a job at a known point).

Points: ``score_behavior`` and ``score_sequences`` (in the UDFs, per partition),
``before_publish`` (driver, once the day is scored and audited, before the first commit), and
``write_{table}`` (in the task of partition 0 among those writing a table's files, before the
table's commit: ``raksha.platform.tables.publish_days``).
"""

from __future__ import annotations

import os
import time

ENV = "RAKSHA_FAILPOINTS"
LOCAL_PROPERTY = "raksha.platform.failpoints"


class InjectedFault(RuntimeError):
    """Raised by an armed failure point."""


def parse(text: str | None) -> dict[str, str]:
    out = {}
    for item in (text or "").split(";"):
        if "=" in item:
            name, action = item.split("=", 1)
            out[name.strip()] = action.strip()
    return out


def propagate(spark) -> None:
    """Hand the driver's armed points to the tasks of this thread's jobs (or clear them)."""
    spark.sparkContext.setLocalProperty(LOCAL_PROPERTY, os.environ.get(ENV) or None)


def _act(name: str, action: str, first_attempt_of_partition_0: bool) -> None:
    if action == "raise" or (action == "raise_first_attempt" and first_attempt_of_partition_0):
        raise InjectedFault(f"failpoint {name}: {action}")
    if action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))


def hit(name: str) -> None:
    """A driver-side point."""
    action = parse(os.environ.get(ENV)).get(name)
    if action:
        _act(name, action, True)


def armed(name: str) -> bool:
    """Whether the driver's environment arms ``name``."""
    return name in parse(os.environ.get(ENV))


def in_tasks(frame, name: str):
    """``frame`` unchanged, or, when ``name`` is armed, passed through tasks of which the one of
    partition 0 hits it before its first row (so a fault lands while the other tasks write their
    files). Costs nothing when not armed."""
    if not armed(name):
        return frame

    def passing(batches):
        from pyspark import TaskContext

        if TaskContext.get().partitionId() == 0:
            hit_in_task(name)
        yield from batches

    return frame.mapInArrow(passing, frame.schema)


def hit_in_task(name: str) -> None:
    """A point inside a Spark task (Python worker)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return
    action = parse(context.getLocalProperty(LOCAL_PROPERTY)).get(name)
    if action:
        first = context.partitionId() == 0 and context.attemptNumber() == 0
        _act(name, action, first)
