"""Where a variant's wall time went, stage by stage, from Spark's event log and the driver's phase marks.

Pure: an event log folder (uncompressed JSON lines, ``spark.eventLog.*`` of ``settings.event_log_sets``),
the driver's phase intervals (``phases.PhaseClock``) and the Python workers' CPU seconds in; a dict out.
bench/README.md ("The stage breakdown") says how each figure is derived; in short:

1. **The driver's timeline.** The run's wall time (first mark to ``end``) is cut at every phase mark
   and at every Spark stage's submission and completion. A piece of time in which no Spark stage runs
   is the driver's own (planning, schema checks, Delta's commit protocol, the metastore) and goes to
   the phase's driver stage (``DRIVER_STAGE``). A piece in which k stages run is shared equally among
   them. So the stages' and the driver's shares add up to the wall time exactly.
2. **A Spark stage's share** is split by what its tasks did, from the stage's accumulators: the
   Parquet scans' ``scan time`` is ``read``; in a stage running the Python UDF (``ArrowEvalPython``),
   the Python workers' CPU seconds against the task threads' (``executorCpuTime``) give the part that
   is ``score+reasons``; the rest goes to the stage's label (``stage_label``), decided by the operators
   it ran (a Delta/Parquet write, the review queue, the dedup window, the sequence aggregation and
   join...) and the phase it ran in.
3. Operators pipelined in one task cannot be timed apart with Spark's metrics (their timers nest, or
   do not exist), so the stage after the shuffles, where the dedup window, the sequence join, the
   decision columns and the cache build run together, is one row: ``validate+sequence+decide``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The rows of the breakdown, in pipeline order (the stages; merged where Spark cannot separate them).
STAGES = (
    "setup",
    "read",
    "validate",
    "sequence",
    "validate+sequence+decide",
    "score+reasons",
    "queue",
    "audit",
    "write",
    "commit",
    "catalog",
    "report",
    "driver",
)
# What the driver does alone (no Spark stage running) in each phase (``phases.PIPELINE_SEAMS``, ``bare.run_bare``).
DRIVER_STAGE = {
    "setup": "setup",
    "read": "read",
    "score": "driver",
    "audit": "audit",
    "publish": "commit",
    "write": "commit",  # the bare floor's write: its driver time is Delta's commit
    "report": "report",
    "run_log": "commit",
    "catalog": "catalog",
}
# The call sites Spark names a table write's result stage after (``DataFrameWriterV2.overwrite``, ``.save`` ...):
# a write stage even when it writes no file (an empty day).
WRITE_STAGE_NAMES = ("overwrite at ", "append at ", "save at ", "saveAsTable at ", "insertInto at ")
# Phases whose every Spark stage is one row, whatever it runs.
WHOLE_PHASE = {"setup": "setup", "report": "report", "run_log": "commit", "catalog": "catalog"}


@dataclass
class Node:
    """One operator of a physical plan, as the event log describes it."""

    name: str
    text: str
    metrics: dict[str, int]  # metric name -> accumulator id
    types: dict[str, str]  # metric name -> metricType (timing: ms, nsTiming: ns, size, sum, ...)
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None


@dataclass
class Stage:
    """One completed Spark stage attempt: its time window, its tasks' run and CPU time, its accumulators."""

    stage_id: int
    attempt: int
    tasks: int
    submitted: float
    completed: float
    run_ms: float
    cpu_ms: float
    bytes_written: float
    accumulators: dict[int, float]
    name: str


@dataclass
class EventLog:
    stages: list[Stage] = field(default_factory=list)
    job_of_stage: dict[int, int] = field(default_factory=dict)
    nodes: dict[int, tuple[Node, str]] = field(default_factory=dict)  # accumulator id -> (node, metric name)


def event_files(folder: Path) -> list[Path]:
    """The event log's files in order (a rolling log's ``events_<n>_<app>``, or one file)."""

    def order(path: Path) -> tuple[str, int]:
        match = re.match(r"events_(\d+)_", path.name)
        return (str(path.parent), int(match.group(1)) if match else 0)

    files = [p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted((p for p in files if "appstatus" not in p.name), key=order)


def _plan(info: dict[str, Any], parent: Node | None = None) -> Node:
    node = Node(
        info.get("nodeName", ""),
        info.get("simpleString", ""),
        {m["name"]: m["accumulatorId"] for m in info.get("metrics", [])},
        {m["name"]: m["metricType"] for m in info.get("metrics", [])},
        parent=parent,
    )
    node.children = [_plan(c, node) for c in info.get("children", [])]
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load(folder: Path) -> EventLog:
    """The stages, their jobs and every plan node's accumulators from an uncompressed event log."""
    log = EventLog()
    for path in event_files(folder):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                event = json.loads(line)
                kind = event.get("Event", "")
                if kind == "SparkListenerJobStart":
                    for stage_id in event.get("Stage IDs", []):
                        log.job_of_stage.setdefault(stage_id, event["Job ID"])
                elif kind == "SparkListenerStageCompleted":
                    info = event["Stage Info"]
                    named = {a.get("Name"): _number(a.get("Value")) for a in info.get("Accumulables", [])}
                    log.stages.append(
                        Stage(
                            stage_id=info["Stage ID"],
                            attempt=info.get("Stage Attempt ID", 0),
                            tasks=info.get("Number of Tasks", 0),
                            submitted=float(info.get("Submission Time") or 0),
                            completed=float(info.get("Completion Time") or 0),
                            run_ms=named.get("internal.metrics.executorRunTime") or 0.0,
                            cpu_ms=(named.get("internal.metrics.executorCpuTime") or 0.0) / 1e6,
                            bytes_written=named.get("internal.metrics.output.bytesWritten") or 0.0,
                            accumulators={
                                a["ID"]: v
                                for a in info.get("Accumulables", [])
                                if (v := _number(a.get("Value"))) is not None
                            },
                            name=info.get("Stage Name", ""),
                        )
                    )
                elif "sparkPlanInfo" in event:  # SQLExecutionStart, SQLAdaptiveExecutionUpdate
                    stack = [_plan(event["sparkPlanInfo"])]
                    while stack:
                        node = stack.pop()
                        stack.extend(node.children)
                        for metric, accumulator in node.metrics.items():
                            log.nodes[accumulator] = (node, metric)
    return log


# ------------------------------------------------------------------------------------------- operators
def operator_stage(node: Node) -> str | None:
    """The pipeline stage an operator belongs to, from its name and description (None: none of its own)."""
    name, text = node.name, node.text
    if "case_key" in text or "case_rank" in text or name == "TakeOrderedAndProject":
        return "queue"
    if name == "Window" and "windowspecdefinition(session_id" in text:
        return "validate"  # quality.flag_sessions: one row per session_id
    if name.startswith("ObjectHashAggregate") and "collect_list" in text:
        return "sequence"  # features.sequences / the bare floor: each session's ordered actions
    if name.endswith("Join") or name.endswith("JoinExec"):
        if "LeftAnti" in text:
            return "audit"  # orphan actions
        return "sequence"  # sessions joined with their sequences
    if name == "ArrowEvalPython":
        return "score+reasons"
    return None


def consumer_stage(node: Node) -> str | None:
    """For a shuffle: the stage of the first operator above it that has one (what the shuffle is for)."""
    current = node.parent
    while current is not None:
        found = operator_stage(current)
        if found:
            return found
        current = current.parent
    return None


def stage_operators(stage: Stage, log: EventLog) -> list[tuple[Node, str]]:
    """(node, metric) of every accumulator the stage's tasks updated."""
    return [log.nodes[a] for a in stage.accumulators if a in log.nodes]


def timer_ms(node: Node, metric: str, value: float) -> float:
    return value / 1e6 if node.types.get(metric) == "nsTiming" else value


def stage_label(stage: Stage, operators: list[tuple[Node, str]], phase: str) -> str:
    """The row a stage's time (after its scans and its Python share) goes to."""
    kind = phase.split(":", 1)[0]
    if kind in WHOLE_PHASE:
        return WHOLE_PHASE[kind]
    if stage.bytes_written > 0 or stage.name.startswith(WRITE_STAGE_NAMES):
        return "write"  # a stage writing a table's data files (Delta's own log is written by the driver)
    found = {operator_stage(n) for n, _ in operators} | {
        consumer_stage(n) for n, m in operators if n.name == "Exchange" and m == "shuffle write time"
    }
    found.discard(None)
    if "queue" in found:
        return "queue"
    if {"validate", "sequence"} <= found or ("score+reasons" in found and found & {"validate", "sequence"}):
        return "validate+sequence+decide"
    for label in ("validate", "sequence", "score+reasons", "audit"):
        if label in found:
            return label
    # nothing of the pipeline's own: the counts of the read, the audit's aggregations, Delta's snapshot,
    # log and history jobs around a commit
    return {"read": "read", "score": "audit", "audit": "audit", "publish": "commit", "write": "commit"}.get(
        kind, "driver"
    )


def split_stage(stage: Stage, log: EventLog, phase: str, python_cpu_ms: float) -> dict[str, float]:
    """The stage's executor run time (ms) split into rows: scans, the Python share, the rest."""
    operators = stage_operators(stage, log)
    run = max(stage.run_ms, 0.0)
    parts: dict[str, float] = defaultdict(float)
    label = stage_label(stage, operators, phase)
    if phase.split(":", 1)[0] in WHOLE_PHASE:
        parts[label] = run
        return dict(parts)
    scan = sum(
        timer_ms(n, m, stage.accumulators[n.metrics[m]])
        for n, m in operators
        if n.name.startswith("Scan") and m == "scan time"
    )
    parts["read"] += min(scan, run)
    rest = run - parts["read"]
    if python_cpu_ms > 0 and any(n.name == "ArrowEvalPython" for n, _ in operators):
        share = python_cpu_ms / (python_cpu_ms + max(stage.cpu_ms, 0.0))
        parts["score+reasons"] += rest * share
        rest -= rest * share
    parts[label] += rest
    return {k: v for k, v in parts.items() if v > 0}


# ------------------------------------------------------------------------------------------- timeline
Interval = tuple[Any, ...]  # (start epoch ms, end epoch ms, phase[, monotonic ms between them])


def phase_at(intervals: list[Interval], t: float) -> str:
    return _interval_at(intervals, t)[2]


def _interval_at(intervals: list[Interval], t: float) -> Interval:
    for interval in intervals:
        if interval[0] <= t < interval[1]:
            return interval
    return intervals[-1] if intervals else (t, t, "driver")


def _scale(interval: Interval) -> float:
    """Monotonic over epoch length of a phase: below 1 when the epoch clock was stepped (a paused VM)."""
    start, end = interval[0], interval[1]
    if len(interval) < 4 or end <= start:
        return 1.0
    return max(float(interval[3]), 0.0) / (end - start)


def breakdown(log: EventLog, intervals: list[Interval], python_cpu_s: float = 0.0) -> dict[str, Any]:
    """Seconds of the run's wall time per row of ``STAGES``, per phase, and per Spark stage.

    The event log's times are epoch times; each phase's pieces are scaled to the phase's monotonic length
    (the bench's clock), so the rows add up to the run's monotonic wall time even when the epoch clock
    was stepped during the run (``epoch_clock_ahead_s`` says by how much).
    """
    if not intervals:
        return {"error": "no phase marks"}
    start, end = intervals[0][0], intervals[-1][1]
    stages = [s for s in log.stages if s.completed > start and s.submitted < end and s.completed >= s.submitted]
    python_stages = [
        s for s in stages if any(n.name == "ArrowEvalPython" for n, _ in stage_operators(s, log)) and s.run_ms > 0
    ]
    python_run = sum(s.run_ms for s in python_stages)
    python_cpu = {s.stage_id: python_cpu_s * 1000 * s.run_ms / python_run for s in python_stages} if python_run else {}

    cuts = sorted(
        {start, end}
        | {t for interval in intervals for t in interval[:2]}
        | {min(max(t, start), end) for s in stages for t in (s.submitted, s.completed)}
    )
    wall_share: dict[int, float] = defaultdict(float)  # index in stages -> ms of wall time
    rows: dict[str, float] = defaultdict(float)
    by_phase: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    driver_ms: dict[str, float] = defaultdict(float)
    for a, b in zip(cuts, cuts[1:], strict=False):
        if b <= a:
            continue
        middle = (a + b) / 2
        running = [i for i, s in enumerate(stages) if s.submitted <= middle < s.completed]
        interval = _interval_at(intervals, middle)
        phase, piece = interval[2], (b - a) * _scale(interval)
        if running:
            for i in running:
                wall_share[i] += piece / len(running)
        else:
            row = DRIVER_STAGE.get(phase.split(":", 1)[0], "driver")
            rows[row] += piece
            by_phase[phase][row] += piece
            driver_ms[phase] += piece
    detail = []
    cpu: dict[str, float] = defaultdict(float)  # row -> CPU ms: the task threads', and the Python workers'
    for i, stage in enumerate(stages):
        phase = phase_at(intervals, max(stage.submitted, start))
        parts = split_stage(stage, log, phase, python_cpu.get(stage.stage_id, 0.0))
        total = sum(parts.values())
        share = wall_share.get(i, 0.0)
        if total <= 0:
            parts, total = {stage_label(stage, stage_operators(stage, log), phase): 1.0}, 1.0
        for row, part in parts.items():
            rows[row] += share * part / total
            by_phase[phase][row] += share * part / total
        jvm_parts = {row: part for row, part in parts.items() if row != "score+reasons"}
        for row, part in jvm_parts.items():
            cpu[row] += stage.cpu_ms * part / (sum(jvm_parts.values()) or 1.0)
        cpu["score+reasons"] += python_cpu.get(stage.stage_id, 0.0)
        detail.append(
            {
                "stage": stage.stage_id,
                "job": log.job_of_stage.get(stage.stage_id),
                "phase": phase,
                "tasks": stage.tasks,
                "wall_share_s": round(share / 1000, 3),
                "run_s": round(stage.run_ms / 1000, 3),
                "cpu_s": round(stage.cpu_ms / 1000, 3),
                "parts_s": {k: round(v / 1000, 3) for k, v in parts.items()} if total != 1.0 else {},
            }
        )
    wall = sum((i[1] - i[0]) * _scale(i) for i in intervals)
    return {
        "wall_s": round(wall / 1000, 3),
        "epoch_clock_ahead_s": round((end - start - wall) / 1000, 3),
        "stages_s": {row: round(rows.get(row, 0.0) / 1000, 3) for row in STAGES if rows.get(row, 0.0) > 0},
        "phases_s": {
            phase: {row: round(v / 1000, 3) for row, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v > 0}
            for phase, parts in by_phase.items()
        },
        "cpu_s": {row: round(cpu.get(row, 0.0) / 1000, 3) for row in STAGES if cpu.get(row, 0.0) > 0},
        "driver_s": {phase: round(v / 1000, 3) for phase, v in driver_ms.items()},
        "python_cpu_s": round(python_cpu_s, 3),
        "task_cpu_s": round(sum(s.cpu_ms for s in stages) / 1000, 3),
        "spark_stages": detail,
    }


def breakdown_from_event_log(folder: Path, intervals: list[Interval], python_cpu_s: float = 0.0) -> dict[str, Any]:
    """``breakdown`` of the event log under ``folder``."""
    return breakdown(load(folder), [tuple(i) for i in intervals], python_cpu_s)
