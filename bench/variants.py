"""The stand-ins the Spark variants put in place of ``raksha.pipeline.daily.score_models``.

``raksha`` (b) and ``raksha-keras`` (f) run the job unchanged; the others replace its one scoring step
(both models in one pandas UDF) in the child process only, adding the same columns with the same types,
so decisions, the audit and the Delta commits run unchanged:

a. floor: constant columns, no Python UDF at all;
c. recipe: ``pyspark.ml.functions.predict_batch_udf`` as the Spark docs show it, for both models;
e. crossing: raksha's pandas UDF with a body that returns constants (crossing to Python, no models).

Spark column code only: nothing here starts a session or a process.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from settings import RECIPE_BATCH_SIZE


def score_models_stand_in(variant: str, models_root: str) -> Callable[..., Any] | None:
    """What replaces ``raksha.pipeline.daily.score_models`` for ``variant`` (None: the job unchanged)."""
    from raksha import contract
    from raksha.models import artifacts

    if variant == "e":
        return crossing_scorer()
    if variant == "a":
        threshold = artifacts.load_version(models_root, contract.AE_MODEL).threshold
        behavior, sequences = floor_scorers(float(threshold))
    elif variant == "c":
        behavior, sequences = recipe_scorers(models_root)
    else:
        return None

    def score_models(df, ae_model, seq_model, threads, counter, *_max_windows):
        return sequences(behavior(df, ae_model, threads, counter), seq_model, threads, counter)

    return score_models


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
                    "ae_std_error": F.lit(None).cast("double"),
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
