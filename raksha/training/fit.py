"""Training exactly as the notebooks do, from data handed in by the caller (no Spark here).

- ``fit_autoencoder``: the autoencoder notebook. Nulls -> 0, StandardScaler on the 18
  continuous features, binaries unscaled; train_test_split(0.2, random_state=42); the
  32-16-32 network; adam/mse, EarlyStopping(val_loss, patience 10, best weights restored),
  batch 64, validation_split 0.2; threshold = 95th percentile of held-out reconstruction errors.
  Unsupervised: no labels.
- ``fit_sequence_model``: the LSTM notebook. pad to 10 (post, keep the last 10);
  train_test_split(0.2, random_state=42); Embedding(9, 32) + LSTM(64) + Dropout + sigmoid;
  adam/binary cross-entropy, 15 epochs, batch 32, the held-out split as validation data.

Each also keeps the reference distribution of its scores on held-out normal data (quantiles),
so a later calibration can say how unusual a score is, and a drift reference
(``raksha.pipeline.drift``): the training data's features and the held-out scores, binned, which the
nightly report compares each scored day with.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from raksha import contract
from raksha.features.behavior import FeatureErrors, Scaler, behavior_matrix, feature_errors, reconstruction_error
from raksha.features.sequences import pad_tokens
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion
from raksha.pipeline import drift

log = logging.getLogger(__name__)

MIN_ROWS = 50
REFERENCE_POINTS = 1001


@dataclass(frozen=True)
class AutoencoderParams:
    epochs: int = 100
    batch_size: int = 64
    patience: int = 10
    test_size: float = 0.2
    validation_split: float = 0.2
    seed: int = 42


@dataclass(frozen=True)
class SequenceParams:
    epochs: int = 15
    batch_size: int = 32
    test_size: float = 0.2
    seed: int = 42


P = TypeVar("P", "AutoencoderParams", "SequenceParams")


def params_from_config(kind: type[P], section: Mapping[str, Any], seed: int) -> P:
    """``AutoencoderParams`` / ``SequenceParams`` from their ``training.*`` section and ``training.seed``."""
    return kind(**{f.name: section[f.name] for f in dataclasses.fields(kind) if f.name != "seed"}, seed=int(seed))


@dataclass
class TrainedModel:
    name: str
    files: dict[str, bytes]
    manifest_fields: dict[str, Any] = field(default_factory=dict)


def _quantiles(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.quantile(values, np.linspace(0.0, 1.0, REFERENCE_POINTS))]


def standardised_error_fields(
    x_train: np.ndarray, x_test: np.ndarray, predict: Callable[[np.ndarray], np.ndarray]
) -> dict[str, Any]:
    """The manifest fields that standardise the error (``features.behavior.FeatureErrors``): each
    feature's mean squared error on the held-out rows ``x_test`` (their day-of-week one-hots held at the
    training rows' frequencies, as the scorer holds them) and the quantiles of the resulting
    ``ae_std_error`` on those rows (``std_reference``, what ``ae_surprise`` is calibrated against)."""
    expected = FeatureErrors.training_expected(x_train)
    neutral = FeatureErrors(None, expected).neutral_days(x_test)
    squared = feature_errors(neutral, predict(neutral))
    stats = FeatureErrors(squared.mean(axis=0), expected)
    std_errors = stats.standardised(squared)
    return {
        "feature_errors": stats.to_json(),
        "std_reference": {"kind": "heldout_ae_std_error", "quantiles": _quantiles(std_errors)},
        "std_error_metrics": {
            "heldout_std_error_mean": float(std_errors.mean()),
            **{f"heldout_std_error_p{p}": float(np.percentile(std_errors, p)) for p in (50, 90, 95, 99)},
        },
    }


def _check_features(sessions: pd.DataFrame) -> None:
    if len(sessions) < MIN_ROWS:
        raise ValueError(f"training needs at least {MIN_ROWS} sessions, got {len(sessions)}")
    missing = [c for c in contract.FEATURES if c not in sessions.columns]
    if missing:
        raise ValueError(f"training data lacks feature columns: {', '.join(missing)}")
    for name in contract.FEATURES:
        values = sessions[name].astype("float64").to_numpy()
        if np.isinf(values).any() or (np.isnan(values) & sessions[name].notna().to_numpy()).any():
            raise ValueError(f"training data: column '{name}' holds NaN or infinite values")


def fit_autoencoder(sessions: pd.DataFrame, params: AutoencoderParams = AutoencoderParams()) -> TrainedModel:
    """The autoencoder notebook's preprocessing, network, training and threshold."""
    import keras
    from sklearn.model_selection import train_test_split

    from raksha.models import architectures

    _check_features(sessions)
    continuous = sessions[list(contract.CONTINUOUS_FEATURES)].astype("float64").fillna(0.0).to_numpy()
    scaler = Scaler.fit(continuous)
    x = behavior_matrix(sessions, scaler)
    x_train, x_test = train_test_split(x, test_size=params.test_size, random_state=params.seed)

    keras.utils.set_random_seed(params.seed)
    model = architectures.build_autoencoder(x.shape[1])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=params.patience, restore_best_weights=True)
    history = model.fit(
        x_train,
        x_train,
        epochs=params.epochs,
        batch_size=params.batch_size,
        validation_split=params.validation_split,
        callbacks=[stop],
        verbose=0,
    )
    errors = reconstruction_error(x_test, model.predict(x_test, verbose=0))
    threshold = float(np.percentile(errors, contract.AE_THRESHOLD_PERCENTILE))
    metrics = {
        "epochs_run": len(history.history["loss"]),
        "best_loss": float(min(history.history["loss"])),
        "best_val_loss": float(min(history.history["val_loss"])),
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "heldout_error_mean": float(errors.mean()),
        "heldout_error_std": float(errors.std()),
        **{f"heldout_error_p{p}": float(np.percentile(errors, p)) for p in (50, 90, 95, 99)},
    }
    log.info("autoencoder: %d epochs, threshold %.6f", metrics["epochs_run"], threshold)
    return TrainedModel(
        contract.AE_MODEL,
        {"model.keras": architectures.model_to_bytes(model), "scaler.json": json.dumps(scaler.to_json()).encode()},
        {
            "threshold": threshold,
            "threshold_rule": f"{contract.AE_THRESHOLD_PERCENTILE:g}th percentile of held-out reconstruction errors",
            "metrics": metrics,
            "reference": {"kind": "heldout_reconstruction_error", "quantiles": _quantiles(errors)},
            "drift_reference": drift.training_reference(sessions[list(contract.FEATURES)], {"ae_error": errors}),
            **standardised_error_fields(x_train, x_test, lambda rows: model.predict(rows, verbose=0)),
            "params": asdict(params),
        },
    )


def fit_sequence_model(
    token_sequences: Sequence[Sequence[int]],
    labels: np.ndarray,
    params: SequenceParams = SequenceParams(),
    sample_weight: np.ndarray | None = None,
) -> TrainedModel:
    """The LSTM notebook's padding, network and training, on labelled sequences.

    ``sample_weight`` (one non-negative weight per sequence, e.g. a retraining export's
    selection-bias correction) goes to Keras ``fit`` and to the held-out validation data; the
    architecture, padding and split are the notebook's either way.
    """
    import keras
    from sklearn.metrics import precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    from raksha.models import architectures

    y = np.asarray(labels, dtype=np.int32)
    if len(y) != len(token_sequences):
        raise ValueError("one label per sequence is needed")
    if len(y) < MIN_ROWS:
        raise ValueError(f"training needs at least {MIN_ROWS} sequences, got {len(y)}")
    if len(np.unique(y)) < 2:
        raise ValueError("the sequence model is supervised: it needs both normal (0) and attack (1) sequences")
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != y.shape:
            raise ValueError("one sample weight per sequence is needed")
        if not np.all(np.isfinite(weights)) or (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("sample weights must be finite, non-negative and not all zero")
    x = pad_tokens(token_sequences)
    if weights is None:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=params.test_size, random_state=params.seed, stratify=y
        )
        w_train = w_test = None
        validation: tuple = (x_test, y_test)
    else:
        x_train, x_test, y_train, y_test, w_train, w_test = train_test_split(
            x, y, weights, test_size=params.test_size, random_state=params.seed, stratify=y
        )
        validation = (x_test, y_test, w_test)
    keras.utils.set_random_seed(params.seed)
    model = architectures.build_sequence_model()
    history = model.fit(
        x_train,
        y_train,
        sample_weight=w_train,
        epochs=params.epochs,
        batch_size=params.batch_size,
        validation_data=validation,
        verbose=0,
    )
    scores = model.predict(x_test, verbose=0).reshape(-1)
    blocked = scores > contract.SEQ_BLOCK_THRESHOLD
    metrics = {
        "epochs_run": len(history.history["loss"]),
        "heldout_accuracy": float(np.mean((scores > 0.5) == y_test)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "precision_at_block": float(precision_score(y_test, blocked, zero_division=0)),
        "recall_at_block": float(recall_score(y_test, blocked, zero_division=0)),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "positives": int(y.sum()),
    }
    if weights is not None and w_train is not None:
        metrics["sample_weighted"] = True
        metrics["train_weight_sum"] = float(w_train.sum())
        metrics["final_weighted_loss"] = float(history.history["loss"][-1])
        metrics["roc_auc_weighted"] = float(roc_auc_score(y_test, scores, sample_weight=w_test))
    log.info("sequence model: held-out ROC-AUC %.4f", metrics["roc_auc"])
    return TrainedModel(
        contract.SEQ_MODEL,
        {"model.keras": architectures.model_to_bytes(model)},
        {
            "block_threshold": contract.SEQ_BLOCK_THRESHOLD,
            "metrics": metrics,
            "reference": {"kind": "heldout_normal_seq_risk", "quantiles": _quantiles(scores[y_test == 0])},
            # every held-out sequence, normal or not: the population a scored day is compared with
            "drift_reference": drift.training_reference(pd.DataFrame(), {"seq_risk": scores}),
            "params": asdict(params),
        },
    )


def save_trained(
    trained: TrainedModel,
    models_root: str | Path,
    training_info: Mapping[str, Any],
    promote: bool,
    store: artifacts.ModelFiles | None = None,
) -> ModelVersion:
    """Write ``trained`` as a new version (optionally promoted) with its training window."""
    fields = {**trained.manifest_fields, "training": dict(training_info), "source": "trained"}
    return artifacts.write_version(models_root, trained.name, trained.files, fields, promote_it=promote, store=store)
