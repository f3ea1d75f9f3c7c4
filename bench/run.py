"""``make bench``: how fast is the nightly job, against the bare floor, its pipeline floor, the Spark-docs
recipe and the notebooks.

A script, not a test. It writes one day of N sessions once per kind of day (``--day``): ``generated``
(``raksha.synthetic.generate``, about 5% flagged) and ``stress`` (``stress_day``: uniformly random features
and action sequences, every session flagged). Then it times the variants of processing that day, each in
a fresh process (its own JVM, its own Python workers, its own output tables and event log), with the same
Spark settings (master ``local[2]``, the shipped models, ``conf/base.yaml`` with every ``paths.*`` under the
work dir):

g. bare: plain Spark, no raksha pipeline: read both inputs, each session's ordered last-10 action
   sequence, join, write one day of a Delta table (``bare``); the headline is raksha / bare;
a. floor: ``raksha.pipeline.daily.run`` with both model-scoring steps replaced by constant columns
   (read, validate, build sequences, decide, stage, audit, publish; no Python UDF at all): a diagnostic;
b. raksha: ``raksha.pipeline.daily.run`` unchanged;
c. recipe: ``raksha.pipeline.daily.run`` scoring as the Spark docs show: ``pyspark.ml.functions.predict_batch_udf``
   with a ``make_predict_fn`` that loads the Keras model and calls ``model.predict`` (batch_size=100,
   as the docs' example), for both models;
d. notebook: the notebooks' per-row ``score_session`` and ``predict_session_risk`` on a sample of
   200 sessions, extrapolated to N;
e. crossing (only when asked, ``--variants a,e,b``): raksha's pandas UDF with a body that returns
   constants: the cost of crossing to Python and back, without the models;
f. raksha-keras (only when asked): raksha with ``scoring.runtime: keras`` (TensorFlow in the workers).
h. raksha-no-baselines (only when asked): raksha with ``baseline.enabled: false``, so the table shows what the user
   baselines cost (issue 15: at most 15% of raksha's time).
m. bare-models (only when asked): the bare floor whose sessions are also scored by both models through raksha's
   scoring UDF (their reasons included): what running the models costs on top of moving the data, the least
   any job that scores the day with them pays.
u. bare-baselines (only when asked): the bare floor whose sessions are also scored against their users' snapshot of
   the day before (built untimed, as for raksha) and folded into the next one, in plain Spark and with less than
   issue 15 asks (``bare.next_snapshot``): the least keeping user baselines costs, so the targets show it beside
   raksha's own cost of them (raksha / raksha-no-baselines).

Per day it prints a table (wall seconds, sessions/s, ratios to the bare floor and to the floor, peak RSS
of the driver JVM and of the largest Python worker, CPU seconds of the JVM and of the Python workers), the
stage breakdown of each Spark variant (``breakdown``: the wall seconds of read, validate, sequence, score,
queue, audit, write, commit..., from Spark's event log) and the issues' targets with pass/fail, and
writes the same as JSON under ``bench/results/``. See ``bench/README.md``.

This file parses the options and runs the modes (compare, ``--scale``, ``--profile``); the rest is
beside it: ``settings`` (the day, the master, the ``--set`` lines), ``synthetic_day`` and ``stress_day``
(writing the days), ``launch`` (a variant in a child process) with ``sampler`` (its memory and CPU, from
/proc) and ``breakdown`` (its stages, from the event log), ``spark_child``, ``phases``, ``bare`` and
``variants`` (a Spark variant in the child, its phase marks, the bare floor, and the stand-ins it patches
in), ``notebook`` (variant d in the child, with ``tests/notebook_reference.py``), ``report`` (tables, targets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from launch import run_variant
from report import (
    format_breakdown,
    format_outcomes,
    format_scale,
    format_table,
    format_targets,
    headline,
    targets,
)
from sampler import read_proc
from settings import (
    DAY,
    DAYS,
    DEFAULT_VARIANTS,
    MASTER,
    RECIPE_BATCH_SIZE,
    RESULTS,
    SCALE_SIZES,
    SCALE_VARIANTS,
    VARIANTS,
    out_dir,
    raw_dir,
)
from synthetic_day import generate_day

log = logging.getLogger("bench")


def environment() -> dict[str, Any]:
    """The machine and the code a result was measured on (its load average: the host is shared)."""
    from raksha.platform.runs import code_version

    meminfo = (read_proc("/proc/meminfo") or "").split("\n", 1)[0]
    return {
        "code_version": code_version(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory": meminfo.split(":", 1)[-1].strip(),
        "load_average": os.getloadavg(),
        "spark_master": MASTER,
        "recipe_batch_size": RECIPE_BATCH_SIZE,
    }


def write_json(kind: str, payload: dict[str, Any]) -> Path:
    """``bench/results/<kind>-<UTC time>.json`` (ignored by git)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{kind}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def compare(args: argparse.Namespace, work: Path, logs: Path) -> int:
    started = dt.datetime.now(dt.UTC)
    days: dict[str, dict[str, Any]] = {}
    failed = False
    for day_kind in args.days:
        data = generate_day(work, args.sessions, day_kind)
        sessions = int(data["sessions"])
        results: dict[str, dict[str, Any]] = {}
        for variant in args.variants:
            results[VARIANTS[variant]] = run_variant(variant, work, sessions, logs, day_kind)
            failed |= "error" in results[VARIANTS[variant]]
            if not args.keep:
                shutil.rmtree(out_dir(work, day_kind, VARIANTS[variant]), ignore_errors=True)
        checks = targets(results, day_kind)
        table, stages = format_table(results, sessions), format_breakdown(results)
        print()
        print(
            f"Raksha bench, {day_kind} day: {sessions:,} sessions ({data['actions']:,} actions) on {DAY}, "
            f"{MASTER}, {os.cpu_count()} CPUs"
        )
        print(table)
        print(format_outcomes(results))
        print()
        print(stages)
        print()
        print(format_targets(checks))
        days[day_kind] = {
            "sessions": sessions,
            "data": data,
            "headline": headline(results),
            "results": results,
            "targets": checks,
            "table": table,
            "breakdown_table": stages,
        }
    payload = {
        "kind": "compare",
        "started_at": started.isoformat(timespec="seconds"),
        "sessions": args.sessions,
        "environment": environment(),
        "headline": {day_kind: d["headline"] for day_kind, d in days.items()},
        "days": days,
    }
    print(f"\nwrote {write_json('bench', payload)}")
    return 1 if failed else 0


def profile_raksha(args: argparse.Namespace, work: Path, logs: Path) -> int:
    """raksha once per day with Spark's UDF profiler: where the Python workers spend their time (not a timing)."""
    started = dt.datetime.now(dt.UTC)
    runs: dict[str, dict[str, Any]] = {}
    for day_kind in args.days:
        data = generate_day(work, args.sessions, day_kind)
        result = run_variant("b", work, int(data["sessions"]), logs, day_kind, profile=True)
        if not args.keep:
            shutil.rmtree(out_dir(work, day_kind, "raksha"), ignore_errors=True)
        if "error" in result:
            return 1
        print(
            f"\nRaksha bench --profile, {day_kind} day: {data['sessions']:,} sessions, raksha with "
            "spark.sql.pyspark.udf.profiler=perf (not a timing: the profiler slows the Python workers)"
        )
        print(f"job phases (run_log timings_s): {json.dumps({k: round(v, 1) for k, v in result['timings_s'].items()})}")
        print(format_breakdown({"raksha": result}))
        for name, split in result.get("profile_split_s", {}).items():
            print(f"\nscore+reasons in the Python workers, {name} (cProfile seconds, summed over workers):")
            total = split.get("total profiled") or 1.0
            for part, seconds in split.items():
                print(f"  {part:<42} {seconds:>9,.1f}  {seconds / total:>6.1%}")
        for name, text in result.get("profile", {}).items():
            print(f"\n=== {name} ===\n{text.strip()}")
        runs[day_kind] = {"data": data, "result": result}
    payload = {"kind": "profile", "started_at": started.isoformat(timespec="seconds"), "environment": environment()}
    print(f"\nwrote {write_json('profile', {**payload, 'days': runs})}")
    return 0


def scale(args: argparse.Namespace, work: Path, logs: Path) -> int:
    started = dt.datetime.now(dt.UTC)
    rows = []
    failed = False
    for day_kind in args.days:
        for size in args.scale_sizes:
            data = generate_day(work, size, day_kind)
            row: dict[str, Any] = {"day": day_kind, "sessions": int(data["sessions"]), "actions": data["actions"]}
            for variant in [v for v in args.variants or SCALE_VARIANTS if v in SCALE_VARIANTS]:
                result = run_variant(variant, work, int(data["sessions"]), logs, day_kind)
                row[VARIANTS[variant]] = result
                failed |= "error" in result
                if not args.keep:
                    shutil.rmtree(out_dir(work, day_kind, VARIANTS[variant]), ignore_errors=True)
            rows.append(row)
    table = format_scale(rows)
    print(f"\nRaksha bench --scale on {DAY}, {MASTER}, {os.cpu_count()} CPUs")
    print(table)
    payload = {
        "kind": "scale",
        "started_at": started.isoformat(timespec="seconds"),
        "environment": environment(),
        "rows": rows,
        "table": table,
    }
    print(f"\nwrote {write_json('scale', payload)}")
    return 1 if failed else 0


def _variants(text: str) -> list[str]:
    names = {v: k for k, v in VARIANTS.items()}
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        key = names.get(item, item)
        if key not in VARIANTS:
            raise argparse.ArgumentTypeError(
                f"unknown variant '{item}' (choose from {','.join(VARIANTS)} or {','.join(names)})"
            )
        if key not in out:
            out.append(key)
    return out


def _days(text: str) -> list[str]:
    if text == "both":
        return list(DAYS)
    if text not in DAYS:
        raise argparse.ArgumentTypeError(f"unknown day '{text}' (choose from {', '.join(DAYS)} or both)")
    return [text]


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Time the nightly job against its floor, the Spark-docs recipe and the notebooks.",
    )
    parser.add_argument("--sessions", type=int, default=1_000_000, help="sessions in the generated day (1000000)")
    parser.add_argument(
        "--variants",
        type=_variants,
        help="g,a,b,c,d (bare, floor, raksha, recipe, notebook; default), e (crossing: the UDF without the models), "
        "f (raksha-keras: scoring.runtime=keras), h (raksha-no-baselines: baseline.enabled=false), m (bare-models: "
        "the bare floor with both models scoring every session), u (bare-baselines: the bare floor scoring every "
        "session against its user's snapshot and writing the next one); with --scale, "
        "those of g,b,a (default: all three)",
    )
    parser.add_argument(
        "--day",
        dest="days",
        type=_days,
        default=["generated"],
        help="generated (about 5%% flagged; default), stress (every session flagged) or both",
    )
    parser.add_argument("--scale", action="store_true", help="run bare, raksha and floor at 250k, 1M and 4M sessions")
    parser.add_argument(
        "--scale-sizes",
        type=_sizes,
        default=list(SCALE_SIZES),
        help="sessions per --scale step (250000,1000000,4000000)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run raksha once with Spark's UDF profiler and print where time goes"
    )
    parser.add_argument("--work", type=Path, help="work dir for data and outputs (default: a temporary dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and the outputs")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--history", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.variants is None and not args.scale:
        args.variants = DEFAULT_VARIANTS
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its INFO notes on the report's category axes
    if args.child:
        raw = raw_dir(args.work, args.days[0])
        if args.child == "d":
            from notebook import child_notebook

            child_notebook(raw, args.sessions, args.result)
        elif args.history:
            from spark_child import child_history

            child_history(raw, args.result.parent)
        else:
            from spark_child import child_spark

            child_spark(args.child, raw, args.result.parent, args.result, args.profile)
        return 0

    created = args.work is None
    work = Path(tempfile.mkdtemp(prefix="raksha-bench-")) if created else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    try:
        if args.profile:
            return profile_raksha(args, work, logs)
        return scale(args, work, logs) if args.scale else compare(args, work, logs)
    finally:
        if args.keep:
            print(f"kept {work}")
        elif created:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for sub in ("raw", "out"):
                shutil.rmtree(work / sub, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
