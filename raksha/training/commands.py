"""Training commands: read a window with Spark, train as the notebooks do, write a version."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.models.artifacts import ModelVersion
from raksha.platform.storage import Storage
from raksha.training import fit
from raksha.training.window import (
    autoencoder_frame,
    export_autoencoder_frame,
    export_sequence_frame,
    sequence_frame,
)

log = logging.getLogger(__name__)


def _window_info(start: dt.date, end: dt.date, rows: int, **extra: object) -> dict[str, object]:
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "rows": rows, **extra}


def train_autoencoder(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, promote: bool = True, from_export: bool = False
) -> ModelVersion:
    """A new autoencoder version from the window's input sessions, or with ``from_export`` from retrain_behavior."""
    extra: dict[str, object] = {}
    if from_export:
        frame, extra = export_autoencoder_frame(spark, cfg, start, end)
    else:
        frame = autoencoder_frame(spark, cfg, start, end)
    params = fit.params_from_config(fit.AutoencoderParams, cfg.get("training.autoencoder"), cfg.get("training.seed"))
    trained = fit.fit_autoencoder(frame, params)
    info = _window_info(start, end, len(frame), **extra)
    return fit.save_trained(trained, cfg.path("models"), info, promote, Storage(spark))


def train_sequence(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, promote: bool = True, from_export: bool = False
) -> ModelVersion:
    """A new sequence-model version from the window's labels, or with ``from_export`` from retrain_sequences
    (its weights become Keras sample weights)."""
    extra: dict[str, object] = {}
    weights = None
    if from_export:
        frame, extra = export_sequence_frame(spark, cfg, start, end)
        weights = frame["weight"].to_numpy(dtype=np.float64)
        extra["sample_weight"] = {
            "used": True,
            "sum": float(weights.sum()),
            "min": float(weights.min()) if len(weights) else None,
            "max": float(weights.max()) if len(weights) else None,
        }
    else:
        frame = sequence_frame(spark, cfg, start, end)
    params = fit.params_from_config(fit.SequenceParams, cfg.get("training.sequence"), cfg.get("training.seed"))
    tokens = [np.asarray(t, dtype=np.int32) for t in frame["action_tokens"]]
    labels = frame["label"].to_numpy(dtype=np.int32)
    trained = fit.fit_sequence_model(tokens, labels, params, sample_weight=weights)
    info = _window_info(start, end, len(frame), positives=int(labels.sum()), **extra)
    return fit.save_trained(trained, cfg.path("models"), info, promote, Storage(spark))
