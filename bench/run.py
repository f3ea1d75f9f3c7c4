"""``make bench``: how fast is the nightly job, against its floor, the Spark-docs recipe and the notebooks.

A script, not a test. It generates one day of N sessions once (``raksha.synthetic.generate``),
then times four variants of scoring that day, each in a fresh process (its own JVM, its own
Python workers, its own output tables), with the same Spark settings (master ``local[2]``, the
shipped models, ``conf/base.yaml`` with every ``paths.*`` under the work dir):

a. floor: ``raksha.pipeline.daily.run`` with both model-scoring steps replaced by constant columns
   (read, validate, build sequences, decide, stage, audit, publish; no Python UDF at all);
b. raksha: ``raksha.pipeline.daily.run`` unchanged;
c. recipe: ``raksha.pipeline.daily.run`` scoring as the Spark docs show: ``pyspark.ml.functions.predict_batch_udf``
   with a ``make_predict_fn`` that loads the Keras model and calls ``model.predict`` (batch_size=100,
   as the docs' example), for both models;
d. notebook: the notebooks' per-row ``score_session`` and ``predict_session_risk`` on a sample of
   200 sessions, extrapolated to N;
e. crossing (only when asked, ``--variants a,e,b``): raksha's pandas UDF with a body that returns
   constants: the cost of crossing to Python and back, without the models;
f. raksha-keras (only when asked): raksha with ``scoring.runtime: keras`` (TensorFlow in the workers).

It prints one table (wall seconds, sessions/s, ratio to the floor, peak RSS of the driver JVM and
of the largest Python worker, CPU seconds of the JVM and of the Python workers) and the issue's
targets with pass/fail, and writes the same as JSON under ``bench/results/``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = REPO / "models"
DAY = dt.date(2026, 11, 2)
MASTER = "local[2]"
VARIANTS = {"a": "floor", "b": "raksha", "c": "recipe", "d": "notebook", "e": "crossing", "f": "raksha-keras"}
DEFAULT_VARIANTS = ["a", "b", "c", "d"]
NOTEBOOK_SAMPLE = 200
RECIPE_BATCH_SIZE = 100  # the batch_size of the predict_batch_udf example in the Spark docs
SCALE_SIZES = (250_000, 1_000_000, 4_000_000)
SAMPLE_INTERVAL_S = 0.5
GB = 1024**3
MB = 1024**2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

log = logging.getLogger("bench")


# ----------------------------------------------------------------------------------------- memory
def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _processes() -> dict[int, tuple[int, str, str, float]]:
    """pid -> (ppid, comm, cmdline, CPU seconds used so far) of every process we can see."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if not stat or ")" not in stat:
            continue
        head, rest = stat.rsplit(")", 1)
        fields = rest.split()
        comm = head.split("(", 1)[-1]
        cmdline = (_read(f"/proc/{entry.name}/cmdline") or "").replace("\0", " ").strip()
        cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        out[int(entry.name)] = (int(fields[1]), comm, cmdline, cpu_s)
    return out


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in kB; (0, 0) once it is gone."""
    rss = hwm = 0
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


class TreeSampler(threading.Thread):
    """Peak RSS of the processes under ``root``, by role, sampled every ``SAMPLE_INTERVAL_S``.

    Roles: ``jvm`` (the Spark driver, a ``java`` process), ``daemon`` (``pyspark.daemon`` started
    by the JVM), ``worker`` (the Python workers it forks), ``python`` (the root process itself).
    The peak of a process is its kernel high-water mark (VmHWM), so a spike between two samples
    still counts unless the process ends before the next sample. CPU seconds (user + system) are
    each process's last sample, summed by role: where the machine's two cores went.
    """

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peaks: dict[int, dict[str, Any]] = {}
        self.concurrent_worker_rss_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def sample(self) -> None:
        table = _processes()
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_) in table.items():
            children.setdefault(ppid, []).append(pid)
        roles = {self.root: "python"}
        queue = [self.root]
        while queue:
            parent = queue.pop()
            for pid in children.get(parent, []):
                _, comm, cmdline, _ = table[pid]
                if comm == "java" and "org.apache.spark.launcher.Main" in cmdline:
                    role = "launcher"  # spark-class's short-lived java that only builds the command line
                elif comm == "java" or cmdline.split(" ", 1)[0].endswith("/java"):
                    role = "jvm"
                elif "pyspark.daemon" in cmdline or "pyspark.worker" in cmdline:
                    role = "worker" if roles.get(parent) in ("daemon", "worker") else "daemon"
                else:
                    role = "other"
                roles[pid] = role
                queue.append(pid)
        worker_rss = 0
        for pid, role in roles.items():
            rss, hwm = _memory_kb(pid)
            if not hwm:
                continue
            _, _, cmdline, cpu_s = table.get(pid, (0, "", "", 0.0))
            seen = self.peaks.setdefault(pid, {"peak_kb": 0})
            if seen.get("role") != role:  # spark-submit's bash becomes the JVM by exec, with a fresh VmHWM
                seen.update(role=role, peak_kb=0, cmd=cmdline[:80])
            seen["peak_kb"] = max(seen["peak_kb"], hwm, rss)
            seen["cpu_s"] = cpu_s  # the last sample before it ends
            if role == "worker":
                worker_rss += rss
        self.concurrent_worker_rss_kb = max(self.concurrent_worker_rss_kb, worker_rss)

    def summary(self) -> dict[str, Any]:
        def peak(role: str) -> int:
            return max((p["peak_kb"] for p in self.peaks.values() if p["role"] == role), default=0) * 1024

        def cpu(role: str) -> float:
            return sum(p.get("cpu_s", 0.0) for p in self.peaks.values() if p["role"] == role)

        return {
            "driver_jvm_cpu_s": cpu("jvm"),
            "python_workers_cpu_s": cpu("worker"),
            "driver_jvm_peak_bytes": peak("jvm"),
            "python_worker_peak_bytes": peak("worker"),
            "python_daemon_peak_bytes": peak("daemon"),
            "python_driver_peak_bytes": peak("python"),
            "python_workers_seen": sum(1 for p in self.peaks.values() if p["role"] == "worker"),
            "python_workers_concurrent_rss_peak_bytes": self.concurrent_worker_rss_kb * 1024,
        }


# ----------------------------------------------------------------------------------------- config
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


# ------------------------------------------------------------------------------ (a) floor: constants
def floor_scorers(threshold: float) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Stand-ins for the two model steps of ``score_models``, adding the same columns as constants."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from raksha.scoring import udfs

    def constant(field: T.StructField) -> Any:
        if field.name == "ae_threshold":
            return F.lit(float(threshold)).cast(field.dataType)
        if isinstance(field.dataType, T.ArrayType):
            return F.array().cast(field.dataType)
        return F.lit(0).cast(field.dataType)

    def behavior(sessions, *_args, **_kwargs):
        return sessions.withColumns({f.name: constant(f) for f in udfs.AE_COLUMNS})

    def sequences(sessions, *_args, **_kwargs):
        return sessions.withColumns({f.name: constant(f) for f in udfs.SEQ_COLUMNS})

    return behavior, sequences


# ------------------------------------------------------------------ (e) crossing: the UDF, no model
def crossing_scorer() -> Callable[..., Any]:
    """``score_models`` with raksha's pandas UDF (same inputs, same result type, Arrow both ways) whose
    body returns constants: what crossing to Python costs without any model work. Not a default
    variant; ``--variants a,e,b`` splits raksha's cost over the floor into crossing and models."""
    import numpy as np
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from raksha.scoring import udfs

    def constant(field: T.StructField, n: int) -> Any:
        if isinstance(field.dataType, T.ArrayType):
            return [[] for _ in range(n)]
        if isinstance(field.dataType, T.StringType):
            return np.full(n, None, dtype=object)  # no reason
        return np.zeros(n, dtype="int32" if isinstance(field.dataType, T.IntegerType) else "float64")

    def constants(batches):
        for features, _sequences in batches:
            yield pd.DataFrame({f.name: constant(f, len(features)) for f in udfs.MODELS_RESULT.fields})

    # the iterator form, as raksha's UDF declares it (string annotations would not resolve here)
    constants.__annotations__ = {
        "batches": Iterator[tuple[pd.DataFrame, pd.Series]],
        "return": Iterator[pd.DataFrame],
    }

    def score_models(sessions, *_args, **_kwargs):
        return udfs.with_model_columns(sessions, F.pandas_udf(constants, udfs.MODELS_RESULT))

    return score_models


# ----------------------------------------------------------------------- (c) recipe: predict_batch_udf
def keras_predict_fn(model_path: str, flatten: bool = False) -> Callable[[], Callable[[Any], Any]]:
    """The docs' ``make_predict_fn``: load the Keras model once per Python worker, return ``predict``."""

    def make_predict_fn():
        import keras

        model = keras.saving.load_model(model_path, compile=False)

        def predict(inputs):
            # the docs' example calls model.predict(inputs); verbose=0 only keeps the log quiet
            out = model.predict(inputs, verbose=0)
            return out.reshape(-1) if flatten else out

        return predict

    return make_predict_fn


def sequence_windows(sessions):
    """session_id, window_end, seq_window: the last (up to) 10 actions up to each action, as raksha scores."""
    from pyspark.sql import functions as F

    from raksha import contract

    n = contract.MAX_SEQ_LENGTH
    tokens, end = F.col("action_tokens"), F.col("window_end")
    return sessions.select(
        "session_id",
        "action_tokens",
        F.explode(F.sequence(F.lit(1), F.greatest(F.size(tokens), F.lit(1)))).alias("window_end"),
    ).select(
        "session_id",
        "window_end",
        F.slice(tokens, F.greatest(end - n, F.lit(0)) + 1, F.least(end, F.lit(n))).alias("seq_window"),
    )


def recipe_scorers(models_root: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``score_behavior`` / ``score_sequences`` as the Spark docs would write them.

    The features are scaled and filled in Spark SQL into one ``array<double>`` column, the
    reconstruction comes back from ``model.predict``, and ae_error, ae_is_anomaly,
    ae_risk_percent are computed from it in Spark SQL. Every window (one per action, as raksha's)
    goes through ``model.predict``; seq_risk is the last window's, seq_risk_max the riskiest.
    No reasons; surprises from the parametric tails of ``raksha.scoring.calibration.fallback_surprise``.
    """
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from raksha import contract
    from raksha.features.behavior import Scaler
    from raksha.models import artifacts
    from raksha.scoring.calibration import LN10

    ae = artifacts.load_version(models_root, contract.AE_MODEL)
    seq = artifacts.load_version(models_root, contract.SEQ_MODEL)
    scaler = Scaler.from_json(json.loads(ae.files["scaler.json"]))
    threshold = float(ae.threshold)
    n_features = len(contract.FEATURES)
    reason_array = T.ArrayType(contract.REASON_TYPE)

    ae_udf = predict_batch_udf(
        keras_predict_fn(str(Path(models_root) / ae.name / ae.version / "model.keras")),
        return_type=T.ArrayType(T.FloatType()),
        batch_size=RECIPE_BATCH_SIZE,
        input_tensor_shapes=[[n_features]],
    )
    seq_udf = predict_batch_udf(
        keras_predict_fn(str(Path(models_root) / seq.name / seq.version / "model.keras"), flatten=True),
        return_type=T.FloatType(),
        batch_size=RECIPE_BATCH_SIZE,
        input_tensor_shapes=[[contract.MAX_SEQ_LENGTH]],
    )

    def behavior(sessions, *_args, **_kwargs):
        filled = {c: F.coalesce(F.col(c).cast("double"), F.lit(0.0)) for c in contract.FEATURES}
        scaled = [
            (filled[c] - F.lit(float(m))) / F.lit(float(s))
            for c, m, s in zip(contract.CONTINUOUS_FEATURES, scaler.mean, scaler.scale, strict=True)
        ]
        x = F.array(*scaled, *[filled[c] for c in contract.BINARY_FEATURES])
        squared = F.zip_with("_ae_x", "_ae_out", lambda a, b: (a - b.cast("double")) * (a - b.cast("double")))
        error = F.aggregate(squared, F.lit(0.0), lambda acc, v: acc + v) / F.lit(float(n_features))
        return (
            sessions.withColumn("_ae_x", x)
            .withColumn("_ae_out", ae_udf("_ae_x"))
            .withColumn("ae_error", error)
            .withColumns(
                {
                    "ae_threshold": F.lit(threshold),
                    "ae_is_anomaly": (F.col("ae_error") > F.lit(threshold)).cast("int"),
                    "ae_risk_percent": F.least(F.lit(100.0), F.col("ae_error") / F.lit(threshold) * F.lit(100.0)),
                    "ae_surprise": F.lit(-math.log10(0.05)) * F.greatest(F.col("ae_error"), F.lit(0.0)) / threshold,
                    "ae_reasons": F.array().cast(reason_array),
                }
            )
            .drop("_ae_x", "_ae_out")
        )

    def sequences(sessions, *_args, **_kwargs):
        n = contract.MAX_SEQ_LENGTH
        windows = sequence_windows(sessions)
        padded = F.concat("seq_window", F.array_repeat(F.lit(0), F.lit(n) - F.size("seq_window")))
        scored = windows.withColumn("seq_risk", seq_udf(padded).cast("double"))
        per_session = scored.groupBy("session_id").agg(
            F.max_by("seq_risk", "window_end").alias("seq_risk"),
            F.max_by(
                F.struct(
                    F.col("seq_risk").alias("seq_risk_max"), F.col("window_end").cast("int").alias("seq_risk_max_at")
                ),
                F.struct(F.col("seq_risk"), -F.col("window_end")),
            ).alias("_peak"),
        )
        clipped = F.least(F.greatest(F.lit(1.0) - F.col("seq_risk_max"), F.lit(1e-12)), F.lit(1.0))
        per_session = per_session.select("session_id", "seq_risk", "_peak.*").withColumns(
            {
                "seq_is_block": (F.col("seq_risk") > F.lit(contract.SEQ_BLOCK_THRESHOLD)).cast("int"),
                "seq_surprise": -F.log(clipped) / F.lit(LN10),
                "seq_reasons": F.array().cast(reason_array),
            }
        )
        return sessions.join(per_session, on="session_id", how="left")

    return behavior, sequences


# ------------------------------------------------------------------------------- one Spark variant
def child_spark(variant: str, work: Path, out: Path, result_path: Path, profile: bool = False) -> None:
    """Run ``raksha.pipeline.daily.run`` once in this process as ``variant`` (a, b, c, e or f); write a JSON result.

    ``profile``: with Spark's cProfile of every Python UDF (``spark.sql.pyspark.udf.profiler=perf``).
    """
    from raksha import contract
    from raksha.config import load_config
    from raksha.models import artifacts
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
    stand_ins = None
    if variant == "a":
        threshold = artifacts.load_version(cfg.path("models"), contract.AE_MODEL).threshold
        stand_ins = floor_scorers(float(threshold))
    elif variant == "c":
        stand_ins = recipe_scorers(cfg.path("models"))
    elif variant == "e":
        daily.score_models = crossing_scorer()
        patched = ["raksha.pipeline.daily.score_models"]
    if stand_ins is not None:
        behavior, sequences = stand_ins

        def score_models(df, ae_model, seq_model, threads, counter):
            return sequences(behavior(df, ae_model, threads, counter), seq_model, threads, counter)

        daily.score_models = score_models
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


# ------------------------------------------------------------------------------ (d) the notebooks
# The notebooks' per-row functions, verbatim (autoencoder notebook section 8, LSTM notebook part 5;
# also in tests/notebook_reference.py), with the models passed in.
def score_session(session_dict, model, scaler, threshold, continuous_features, binary_features):
    import numpy as np

    cont_vals = [session_dict[feat] for feat in continuous_features]
    bin_vals = [session_dict[feat] for feat in binary_features]
    scaled_cont = scaler.transform([cont_vals])
    full_input = np.hstack([scaled_cont, [bin_vals]])
    reconstructed = model.predict(full_input, verbose=0)
    error = np.mean(np.square(full_input - reconstructed), axis=1)[0]
    is_anomaly = 1 if error > threshold else 0
    risk_score_percent = min(100, (error / threshold) * 100)
    return error, is_anomaly, risk_score_percent


def predict_session_risk(action_sequence, model, actions, max_seq_length):
    from keras.utils import pad_sequences

    seq_nums = [actions.get(a, 0) for a in action_sequence]
    padded_seq = pad_sequences([seq_nums], maxlen=max_seq_length, padding="post")
    risk_score = model.predict(padded_seq, verbose=0)[0][0]
    return risk_score


def child_notebook(work: Path, sessions: int, result_path: Path, sample: int = NOTEBOOK_SAMPLE) -> None:
    """Time the notebooks' per-row scoring of ``sample`` sessions; extrapolate to ``sessions``."""
    import pandas as pd
    import pyarrow.dataset as ds

    from raksha import contract
    from raksha.features.behavior import Scaler
    from raksha.models import artifacts
    from raksha.models.architectures import model_from_bytes

    day = f"dt={DAY.isoformat()}"
    frame = pd.read_parquet(work / "raw" / "sessions" / day)
    picked = frame.sample(n=min(sample, len(frame)), random_state=0).reset_index(drop=True)
    ids = picked["session_id"].tolist()
    actions = (
        ds.dataset(work / "raw" / "action_log" / day)
        .to_table(filter=ds.field("session_id").isin(ids))
        .to_pandas()
        .sort_values(["session_id", "event_ts", "seq_no"])
    )
    by_session = actions.groupby("session_id")["action"].apply(list).to_dict()
    picked[list(contract.FEATURES)] = picked[list(contract.FEATURES)].fillna(0)  # the notebook's fillna(0)

    ae = artifacts.load_version(MODELS, contract.AE_MODEL)
    seq = artifacts.load_version(MODELS, contract.SEQ_MODEL)
    autoencoder = model_from_bytes(ae.files["model.keras"], "autoencoder")
    lstm = model_from_bytes(seq.files["model.keras"], "lstm")
    fitted = Scaler.from_json(json.loads(ae.files["scaler.json"]))
    scaler = fitted.to_sklearn()  # the notebook's fitted StandardScaler, from the shipped means and scales
    threshold = float(ae.threshold)
    cont, binary = list(contract.CONTINUOUS_FEATURES), list(contract.BINARY_FEATURES)

    # one warm-up call each (graph tracing), which the notebook paid once per kernel
    first = picked.iloc[0].to_dict()
    score_session(first, autoencoder, scaler, threshold, cont, binary)
    predict_session_risk(by_session.get(first["session_id"], []), lstm, contract.ACTIONS, contract.MAX_SEQ_LENGTH)

    clock = time.monotonic()
    for _, row in picked.iterrows():
        session = row.to_dict()
        score_session(session, autoencoder, scaler, threshold, cont, binary)
        predict_session_risk(by_session.get(session["session_id"], []), lstm, contract.ACTIONS, contract.MAX_SEQ_LENGTH)
    sample_s = time.monotonic() - clock
    per_session = sample_s / len(picked)
    payload = {
        "variant": "notebook",
        "wall_s": per_session * sessions,
        "extrapolated": True,
        "sample_sessions": len(picked),
        "sample_s": sample_s,
        "seconds_per_session": per_session,
    }
    result_path.write_text(json.dumps(payload, indent=2) + "\n")


# ---------------------------------------------------------------------------------- orchestration
def run_variant(variant: str, work: Path, sessions: int, logs: Path, profile: bool = False) -> dict[str, Any]:
    """Run one variant in a fresh child process, sampling the memory of its process tree."""
    out = work / "out" / VARIANTS[variant]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result_path = out / "result.json"
    log_path = logs / f"{VARIANTS[variant]}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--work",
        str(work),
        "--sessions",
        str(sessions),
        "--result",
        str(result_path),
        *(["--profile"] if profile else []),
    ]
    log.info("variant %s (%s): running, log in %s", variant, VARIANTS[variant], log_path)
    load_before = os.getloadavg()
    clock = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log_file:
        child = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=str(REPO))
        sampler = TreeSampler(child.pid)
        sampler.start()
        code = child.wait()
        sampler.stop()
    process_s = time.monotonic() - clock
    if code != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        log.error("variant %s failed (exit %s):\n  %s", VARIANTS[variant], code, "\n  ".join(tail))
        return {"variant": VARIANTS[variant], "error": f"exit {code}; see {log_path}", "log_tail": tail}
    result = json.loads(result_path.read_text())
    result.update(sampler.summary(), process_s=process_s, load_average_before=load_before)
    result["load_average_after"] = os.getloadavg()
    if variant == "d":  # no JVM: the notebook is one Python process
        result["python_worker_peak_bytes"] = result["python_driver_peak_bytes"]
    log.info("variant %s: %.1f s", VARIANTS[variant], result["wall_s"])
    return result


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with its value and pass/fail (None when a variant is missing)."""

    def wall(name: str) -> float | None:
        r = results.get(name)
        return None if not r or "error" in r else float(r["wall_s"])

    floor, raksha, recipe, notebook = (wall(n) for n in ("floor", "raksha", "recipe", "notebook"))
    out = []

    def add(name: str, value: float | None, goal: str, ok: Callable[[float], bool], unit: str = "") -> None:
        out.append(
            {"target": name, "value": value, "goal": goal, "unit": unit, "pass": None if value is None else ok(value)}
        )

    add("raksha / floor", raksha / floor if raksha and floor else None, "<= 1.3", lambda v: v <= 1.3)
    overhead = (recipe - floor) / (raksha - floor) if recipe and raksha and floor and raksha > floor else None
    if recipe and raksha and floor and raksha <= floor:
        overhead = float("inf")
    add("(recipe - floor) / (raksha - floor)", overhead, ">= 10", lambda v: v >= 10)
    add("notebook / raksha", notebook / raksha if notebook and raksha else None, ">= 10000", lambda v: v >= 10000)
    worker = results.get("raksha", {}).get("python_worker_peak_bytes")
    add("raksha Python worker peak", worker / GB if worker else None, "<= 1 GB", lambda v: v <= 1.0, "GB")
    return out


def _fmt_bytes(value: int | None) -> str:
    return f"{value / MB:,.0f} MB" if value else "-"


def _fmt_cpu(value: float | None) -> str:
    return f"{value:,.1f}" if value else "-"


def format_table(results: dict[str, dict[str, Any]], sessions: int) -> str:
    floor = results.get("floor", {}).get("wall_s") if "error" not in results.get("floor", {}) else None
    header = (
        f"{'variant':<12} {'wall s':>10} {'sessions/s':>12} {'x floor':>9} "
        f"{'driver JVM peak':>16} {'Py worker peak':>15} {'JVM CPU s':>10} {'Py CPU s':>9}"
    )
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<12} {'FAILED':>10}   {r['error']}")
            continue
        wall = float(r["wall_s"])
        mark = "*" if r.get("extrapolated") else " "
        ratio = f"{wall / floor:,.2f}" if floor else "-"
        lines.append(
            f"{name:<12} {wall:>9,.1f}{mark} {sessions / wall:>12,.0f} {ratio:>9} "
            f"{_fmt_bytes(r.get('driver_jvm_peak_bytes')):>16} {_fmt_bytes(r.get('python_worker_peak_bytes')):>15} "
            f"{_fmt_cpu(r.get('driver_jvm_cpu_s')):>10} {_fmt_cpu(r.get('python_workers_cpu_s')):>9}"
        )
    if any(r.get("extrapolated") for r in results.values()):
        lines.append(
            f"* extrapolated to {sessions:,} sessions from {NOTEBOOK_SAMPLE} scored one by one (one Python process)"
        )
    return "\n".join(lines)


def format_targets(rows: list[dict[str, Any]]) -> str:
    lines = ["targets:"]
    for t in rows:
        value = "-" if t["value"] is None else f"{t['value']:,.2f}{(' ' + t['unit']) if t['unit'] else ''}"
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        lines.append(f"  {t['target']:<38} {value:>14}  {t['goal']:<10} {verdict}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    from raksha.platform.runs import code_version

    meminfo = (_read("/proc/meminfo") or "").split("\n", 1)[0]
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{kind}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def compare(args: argparse.Namespace, work: Path, logs: Path) -> int:
    started = dt.datetime.now(dt.UTC)
    data = generate_day(work, args.sessions)
    sessions = int(data["sessions"])
    results: dict[str, dict[str, Any]] = {}
    for variant in args.variants:
        results[VARIANTS[variant]] = run_variant(variant, work, sessions, logs)
        if not args.keep:
            shutil.rmtree(work / "out" / VARIANTS[variant], ignore_errors=True)
    checks = targets(results)
    print()
    print(
        f"Raksha bench: {sessions:,} sessions ({data['actions']:,} actions) on {DAY}, {MASTER}, {os.cpu_count()} CPUs"
    )
    print(format_table(results, sessions))
    print()
    print(format_targets(checks))
    payload = {
        "kind": "compare",
        "started_at": started.isoformat(timespec="seconds"),
        "sessions": sessions,
        "data": data,
        "environment": environment(),
        "results": results,
        "targets": checks,
        "table": format_table(results, sessions),
    }
    print(f"\nwrote {write_json('bench', payload)}")
    return 1 if any("error" in r for r in results.values()) else 0


def profile_raksha(args: argparse.Namespace, work: Path, logs: Path) -> int:
    """raksha once with Spark's UDF profiler: where the Python workers spend their time (not a timing)."""
    started = dt.datetime.now(dt.UTC)
    data = generate_day(work, args.sessions)
    result = run_variant("b", work, int(data["sessions"]), logs, profile=True)
    if not args.keep:
        shutil.rmtree(work / "out" / "raksha", ignore_errors=True)
    if "error" in result:
        return 1
    print(f"\nRaksha bench --profile: {data['sessions']:,} sessions, raksha with spark.sql.pyspark.udf.profiler=perf")
    print(f"job phases (run_log timings_s): {json.dumps({k: round(v, 1) for k, v in result['timings_s'].items()})}")
    for name, text in result.get("profile", {}).items():
        print(f"\n=== {name} ===\n{text.strip()}")
    payload = {"kind": "profile", "started_at": started.isoformat(timespec="seconds"), "environment": environment()}
    print(f"\nwrote {write_json('profile', {**payload, 'data': data, 'result': result})}")
    return 0


def scale(args: argparse.Namespace, work: Path, logs: Path) -> int:
    started = dt.datetime.now(dt.UTC)
    rows = []
    failed = False
    for size in args.scale_sizes:
        data = generate_day(work, size)
        row: dict[str, Any] = {"sessions": int(data["sessions"]), "actions": data["actions"]}
        for variant in ("b", "a"):
            result = run_variant(variant, work, int(data["sessions"]), logs)
            row[VARIANTS[variant]] = result
            failed |= "error" in result
            if not args.keep:
                shutil.rmtree(work / "out" / VARIANTS[variant], ignore_errors=True)
        rows.append(row)
    header = (
        f"{'sessions':>10} {'variant':<8} {'wall s':>9} {'us/session':>11} {'x floor':>8} "
        f"{'driver JVM peak':>16} {'JVM bytes/session':>18} {'Py worker peak':>15}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        floor = row["floor"].get("wall_s")
        for name in ("raksha", "floor"):
            r = row[name]
            if "error" in r:
                lines.append(f"{row['sessions']:>10,} {name:<8} FAILED {r['error']}")
                continue
            wall, jvm = float(r["wall_s"]), r.get("driver_jvm_peak_bytes") or 0
            lines.append(
                f"{row['sessions']:>10,} {name:<8} {wall:>9,.1f} {wall / row['sessions'] * 1e6:>11,.1f} "
                f"{(wall / floor if floor else float('nan')):>8.2f} {_fmt_bytes(jvm):>16} "
                f"{jvm / row['sessions']:>18,.0f} {_fmt_bytes(r.get('python_worker_peak_bytes')):>15}"
            )
    table = "\n".join(lines)
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
            raise argparse.ArgumentTypeError(f"unknown variant '{item}' (choose from a,b,c,d or {','.join(names)})")
        if key not in out:
            out.append(key)
    return out


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
        default=DEFAULT_VARIANTS,
        help="a,b,c,d (floor, raksha, recipe, notebook; default), e (crossing: the UDF without the models), "
        "f (raksha-keras: scoring.runtime=keras)",
    )
    parser.add_argument("--scale", action="store_true", help="run raksha and floor at 250k, 1M and 4M sessions")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.child:
        if args.child == "d":
            child_notebook(args.work, args.sessions, args.result)
        else:
            child_spark(args.child, args.work, args.result.parent, args.result, args.profile)
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
