"""One Spark variant, in the child process ``bench/run.py --child X`` (a, b, c, e or f): its own JVM, its
own Python workers, its own warehouse and metastore under ``WORK/out/<variant>``; a JSON result."""

from __future__ import annotations

import json
import time
from pathlib import Path

from settings import DAY, VARIANTS, bench_sets
from variants import score_models_stand_in


def child_spark(variant: str, work: Path, out: Path, result_path: Path, profile: bool = False) -> None:
    """Run ``raksha.pipeline.daily.run`` once in this process as ``variant`` (a, b, c, e or f); write a JSON result.

    ``profile``: with Spark's cProfile of every Python UDF (``spark.sql.pyspark.udf.profiler=perf``).
    """
    from raksha.config import load_config
    from raksha.pipeline import daily
    from raksha.platform import tables
    from raksha.platform.session import build_session

    sets = bench_sets(work, out)
    if variant == "f":
        sets.append("scoring.runtime=keras")
    if profile:
        sets.append("spark.conf.spark.sql.pyspark.udf.profiler=perf")
    cfg = load_config(sets=sets)
    patched: list[str] = []
    stand_in = score_models_stand_in(variant, cfg.path("models"))
    if stand_in is not None:
        daily.score_models = stand_in
        patched = ["raksha.pipeline.daily.score_models"]

    clock = time.monotonic()
    spark = build_session(cfg, f"bench-{VARIANTS[variant]}")
    session_s = time.monotonic() - clock
    try:
        clock = time.monotonic()
        result = daily.run(spark, cfg, DAY)
        wall_s = time.monotonic() - clock
        run_log = spark.table(tables.table_name(cfg, "run_log")).where(f"run_id = '{result.run_id}'").first()
        timings = dict(run_log["timings_s"]) if run_log else {}
        conf = {k: v for k, v in spark.sparkContext.getConf().getAll() if k.startswith("spark.sql.execution.arrow")}
        payload = {
            "variant": VARIANTS[variant],
            "wall_s": wall_s,
            "session_start_s": session_s,
            "run_id": result.run_id,
            "counts": result.counts,
            "decisions": result.decisions,
            "model_loads": result.model_loads,
            "timings_s": timings,
            "patched": patched,
            "spark_master": spark.sparkContext.master,
            "spark_conf": conf,
        }
        if profile:
            payload["profile"] = udf_profiles(spark, out / "profile")
    finally:
        spark.stop()
    result_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


PROFILE_OWN_CODE = r"(scoring|scorers|features|sequences|calibration|model_cache|architectures)\.py"


def udf_profiles(spark, folder: Path, top: int = 20) -> dict[str, str]:
    """Spark's cProfile of each Python UDF, summed over workers: raksha's own functions by cumulative
    time, then the ``top`` functions by own time."""
    import glob
    import io
    import pstats

    spark.profile.dump(str(folder))
    out = {}
    for path in sorted(glob.glob(str(folder / "*.pstats"))):
        text = io.StringIO()
        stats = pstats.Stats(path, stream=text).strip_dirs()
        names = {name for (_, _, name) in stats.stats}
        label = next((n for n in ("score_models", "score_behavior", "score_sessions") if n in names), Path(path).stem)
        stats.sort_stats("cumulative").print_stats(PROFILE_OWN_CODE, top)
        stats.sort_stats("tottime").print_stats(top)
        out[f"{label} ({Path(path).stem})"] = text.getvalue()
    return out
