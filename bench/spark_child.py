"""One Spark variant, in the child process ``bench/run.py --child X`` (a, b, c, e, f, g, h or m): its own JVM, its
own Python workers, its own warehouse, metastore and event log under ``WORK/out/<day>/<variant>``; a JSON
result with the driver's phase marks (``phases``), from which the parent reads the stage breakdown
(``breakdown``) out of the event log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from phases import PhaseClock
from settings import BARE_VARIANTS, DAY, HISTORY_DAY, VARIANTS, bench_sets, event_log_sets
from variants import score_models_stand_in


def child_spark(variant: str, raw: Path, out: Path, result_path: Path, profile: bool = False) -> None:
    """Run ``variant`` once in this process on the day under ``raw``; write a JSON result.

    a, b, c, e, f, h: ``raksha.pipeline.daily.run`` (with a stand-in for its scoring step for a, c, e);
    g: the bare floor (``bare.run_bare``); m: the bare floor with the models; u: with user baselines.
    ``profile``: with Spark's cProfile of every Python UDF (``spark.sql.pyspark.udf.profiler=perf``).
    """
    from raksha.config import load_config
    from raksha.platform.session import build_session

    event_log = out / "eventlog"
    event_log.mkdir(parents=True, exist_ok=True)
    sets = bench_sets(raw, out) + event_log_sets(event_log)
    if variant == "f":
        sets.append("scoring.runtime=keras")
    if variant == "h":
        sets.append("baseline.enabled=false")
    if profile:
        sets.append("spark.conf.spark.sql.pyspark.udf.profiler=perf")
    cfg = load_config(sets=sets)
    clock_phases = PhaseClock()
    patched: list[str] = []
    if variant not in BARE_VARIANTS:
        from raksha.pipeline import daily

        stand_in = score_models_stand_in(variant, cfg.path("models"))
        if stand_in is not None:
            daily.score_models = stand_in
            patched = ["raksha.pipeline.daily.score_models"]
        clock_phases.instrument()

    clock = time.monotonic()
    spark = build_session(cfg, f"bench-{VARIANTS[variant]}")
    session_s = time.monotonic() - clock
    try:
        clock = time.monotonic()
        clock_phases.mark("setup")
        payload: dict[str, Any]
        if variant in BARE_VARIANTS:
            payload = _run_bare(spark, cfg, clock_phases, models=variant == "m", baselines=variant == "u")
        else:
            payload = _run_pipeline(spark, cfg, clock_phases)
        payload["wall_s"] = time.monotonic() - clock
        payload.update(
            variant=VARIANTS[variant],
            session_start_s=session_s,
            patched=patched,
            seams={"found": clock_phases.seams_found, "missing": clock_phases.seams_missing},
            spark_master=spark.sparkContext.master,
            spark_conf={
                k: v for k, v in spark.sparkContext.getConf().getAll() if k.startswith("spark.sql.execution.arrow")
            },
        )
        payload.update(_after_run(spark, cfg, variant, payload))
        if profile:
            payload["profile"], payload["profile_split_s"] = udf_profiles(spark, out / "profile")
    finally:
        spark.stop()
    payload["phase_intervals"] = clock_phases.intervals()
    payload["event_log"] = str(event_log)
    result_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def child_history(raw: Path, out: Path) -> None:
    """The user baselines of ``HISTORY_DAY`` into the warehouse under ``out`` (``raksha baseline build``, untimed:
    no event log), so the timed run scores ``DAY`` against them."""
    from raksha.baselines import nightly
    from raksha.config import load_config
    from raksha.platform.session import build_session

    cfg = load_config(sets=bench_sets(raw, out))
    spark = build_session(cfg, "bench-history")
    try:
        nightly.build(spark, cfg, HISTORY_DAY, HISTORY_DAY)
    finally:
        spark.stop()


def _run_pipeline(spark, cfg, clock_phases: PhaseClock) -> dict[str, Any]:
    from raksha.pipeline import daily

    result = daily.run(spark, cfg, DAY)
    clock_phases.end()
    return {
        "run_id": result.run_id,
        "counts": result.counts,
        "decisions": result.decisions,
        "model_loads": result.model_loads,
    }


def _run_bare(spark, cfg, clock_phases: PhaseClock, models: bool = False, baselines: bool = False) -> dict[str, Any]:
    from bare import BARE_STATE, location_of, run_bare

    from raksha import contract
    from raksha.baselines.habits import Settings

    score = _models_step(spark, cfg) if models else None
    warehouse = cfg.path("warehouse")
    snapshot = location_of(warehouse, contract.USER_BASELINES) if baselines else None  # child_history's
    settings = Settings.of(cfg) if baselines else None
    location = run_bare(
        spark, cfg.path("sessions"), cfg.path("actions"), warehouse, DAY, clock_phases.mark, score, snapshot, settings
    )
    clock_phases.end()
    return {"table": location, "state": location_of(warehouse, BARE_STATE) if baselines else None}


def _models_step(spark, cfg):
    """Variant m's scoring: the promoted versions of both models, read and broadcast as the nightly job does
    (``raksha.pipeline.daily.run``), through its one UDF (``udfs.score_models``) with the configured threads,
    runtime and windows."""
    from raksha import contract
    from raksha.models import artifacts, runtimes
    from raksha.platform.storage import Storage
    from raksha.scoring import model_cache
    from raksha.scoring.udfs import BroadcastModel, score_models

    store, runtime = Storage(spark), runtimes.configured(cfg)
    ae = BroadcastModel.of(spark, artifacts.load_version(cfg.path("models"), contract.AE_MODEL, store=store), runtime)
    seq = BroadcastModel.of(spark, artifacts.load_version(cfg.path("models"), contract.SEQ_MODEL, store=store), runtime)
    counter = spark.sparkContext.accumulator({}, model_cache.CounterParam())
    threads, windows = int(cfg.get("scoring.threads_per_worker")), int(cfg.get("scoring.max_windows_per_session"))
    return lambda frame: score_models(frame, ae, seq, threads, counter, windows)


def _after_run(spark, cfg, variant: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What the run wrote, read after the timing: run_log's timings, or the bare commit's metrics; and, from
    scored_sessions, how many sessions carry reasons of each model (the stress day's promise)."""
    from pyspark.sql import functions as F

    from raksha.platform import tables

    if variant in BARE_VARIANTS:
        from bare import commit_metrics

        commit = commit_metrics(spark, payload["table"])
        counts = {"rows_written": int(commit["metrics"].get("numOutputRows", 0))}
        if payload.get("state"):  # variant u: the next snapshot's users
            counts["users_written"] = int(commit_metrics(spark, payload["state"])["metrics"].get("numOutputRows", 0))
        return {"commit": commit, "counts": counts}
    run_log = spark.table(tables.table_name(cfg, "run_log")).where(F.col("run_id") == payload["run_id"]).first()
    scored = spark.table(tables.table_name(cfg, "scored_sessions")).where(F.col("run_id") == payload["run_id"])
    actions = F.exists("reasons", lambda r: r["feature"] == "actions")
    behavior = F.exists("reasons", lambda r: r["feature"] != "actions")
    reasons = scored.agg(
        F.sum(F.when(behavior, 1).otherwise(0)).alias("behavior"),
        F.sum(F.when(actions, 1).otherwise(0)).alias("sequence"),
    ).first()
    return {
        "timings_s": dict(run_log["timings_s"]) if run_log else {},
        "sessions_with_reasons": {"behavior": int(reasons["behavior"] or 0), "sequence": int(reasons["sequence"] or 0)},
    }


PROFILE_OWN_CODE = r"(scoring|scorers|features|sequences|calibration|model_cache|architectures)\.py"


def udf_profiles(spark, folder: Path, top: int = 20) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Spark's cProfile of each Python UDF, summed over workers: raksha's own functions by cumulative
    time, then the ``top`` functions by own time; and each UDF's time split by ``profile_split``."""
    import glob
    import io
    import pstats

    spark.profile.dump(str(folder))
    texts, splits = {}, {}
    for path in sorted(glob.glob(str(folder / "*.pstats"))):
        text = io.StringIO()
        stats = pstats.Stats(path, stream=text).strip_dirs()
        names = {name for (_, _, name) in stats.stats}
        label = next((n for n in ("score_models", "score_behavior", "score_sessions") if n in names), Path(path).stem)
        label = f"{label} ({Path(path).stem})"
        splits[label] = profile_split(stats)
        stats.sort_stats("cumulative").print_stats(PROFILE_OWN_CODE, top)
        stats.sort_stats("tottime").print_stats(top)
        texts[label] = text.getvalue()
    return texts, splits


def profile_split(stats) -> dict[str, float]:
    """The profiled UDF time (cProfile, summed over workers and batches) split into score and reasons.

    Spark's ``perf`` profiler times each ``next()`` of the UDF's iterator: pulling the input batch
    (waiting for the JVM, Arrow to pandas) and the UDF's work on it; the output's conversion to Arrow
    is not profiled. Cumulative times of raksha's functions (a function's callees included):
    model loading (``model_cache.get``), the autoencoder's ``BehaviorScorer.score`` without
    ``ae_reasons``, ``ae_reasons``, the sequence model's ``SequenceScorer.score_sessions`` without its
    ``reasons`` (occlusion), and those ``reasons``; the rest of the profiled time is the input batches
    and assembling the output. ``model forward calls`` (every call of the runtime, reasons' included)
    overlaps the others.
    """
    import inspect

    from raksha.features import behavior
    from raksha.models import runtimes
    from raksha.scoring import model_cache, scorers

    def cumulative(function) -> float:
        code = inspect.unwrap(function).__code__
        return sum(
            ct
            for (file, line, name), (_, _, _, ct, _) in stats.stats.items()
            if name == code.co_name and line == code.co_firstlineno and Path(file).name == Path(code.co_filename).name
        )

    total = float(stats.total_tt)
    load = cumulative(model_cache.get)
    ae_reasons = cumulative(behavior.ae_reasons)
    ae = cumulative(scorers.BehaviorScorer.score) - ae_reasons
    seq_reasons = cumulative(scorers.SequenceScorer.reasons)
    seq = cumulative(scorers.SequenceScorer.score_sessions) - seq_reasons
    split = {
        "model loading": load,
        "autoencoder score": ae,
        "autoencoder reasons": ae_reasons,
        "sequence score": seq,
        "sequence reasons": seq_reasons,
    }
    split["input batches and the rest"] = total - sum(split.values())
    split["total profiled"] = total
    split["model forward calls (within the above)"] = cumulative(runtimes._Forward.__call__)
    return {k: round(v, 3) for k, v in split.items()}
