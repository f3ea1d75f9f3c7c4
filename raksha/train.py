"""Training commands: read a window with Spark, train as the notebooks do, write a version."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from pyspark.sql import SparkSession

from raksha import training
from raksha.artifacts import ModelVersion
from raksha.config import Config
from raksha.training_data import autoencoder_frame, sequence_frame

log = logging.getLogger(__name__)


def _window_info(start: dt.date, end: dt.date, rows: int, **extra: object) -> dict[str, object]:
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "rows": rows, **extra}


def train_autoencoder(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, promote: bool = True
) -> ModelVersion:
    frame = autoencoder_frame(spark, cfg, start, end)
    params = training.AutoencoderParams.from_config(cfg.get("training.autoencoder"), cfg.get("training.seed"))
    trained = training.fit_autoencoder(frame, params)
    return training.save_trained(trained, cfg.path("models"), _window_info(start, end, len(frame)), promote)


def train_sequence(
    spark: SparkSession, cfg: Config, start: dt.date, end: dt.date, promote: bool = True
) -> ModelVersion:
    frame = sequence_frame(spark, cfg, start, end)
    params = training.SequenceParams.from_config(cfg.get("training.sequence"), cfg.get("training.seed"))
    tokens = [np.asarray(t, dtype=np.int32) for t in frame["action_tokens"]]
    labels = frame["label"].to_numpy(dtype=np.int32)
    trained = training.fit_sequence_model(tokens, labels, params)
    info = _window_info(start, end, len(frame), positives=int(labels.sum()))
    return training.save_trained(trained, cfg.path("models"), info, promote)
