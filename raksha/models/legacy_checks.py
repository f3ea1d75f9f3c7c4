"""What the notebooks' five files must hold, checked as data (``raksha.models.legacy`` imports them).

- The two networks, layer by layer: a Keras 2 ``.h5`` file read by ``raksha.models.keras_files``
  (which refuses a Lambda or any unknown layer, and a model that is not a chain) is compared with
  the notebook's network; a difference is an error saying which layer and which setting.
- The pickles' contents, once unpickled with the allowlists below (``raksha.models.safe_pickle``):
  the feature names and their order, the StandardScaler's means and scales, the threshold.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from raksha import contract
from raksha.features.behavior import Scaler
from raksha.models import keras_files
from raksha.models.keras_files import KerasFileError, Layer
from raksha.models.safe_pickle import NUMPY_ARRAY_GLOBALS, NUMPY_SCALAR_GLOBALS

log = logging.getLogger(__name__)


class LegacyImportError(ValueError):
    """The notebook files are unsafe, or not what the notebooks wrote."""


# --- what the notebooks' networks are, layer by layer (InputLayer aside) ---
# (class name, {config key: required value}); the weights' shapes are checked when copied.
_FLOAT32 = {"dtype": "float32"}
_DENSE = {"use_bias": True, **_FLOAT32}
AE_ARCHITECTURE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Dense", {"units": 32, "activation": "relu", **_DENSE}),
    ("Dense", {"units": 16, "activation": "relu", **_DENSE}),
    ("Dense", {"units": 32, "activation": "relu", **_DENSE}),
    ("Dense", {"units": len(contract.FEATURES), "activation": "linear", **_DENSE}),
)
SEQ_ARCHITECTURE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Embedding", {"input_dim": contract.VOCABULARY_SIZE, "output_dim": 32, "mask_zero": False, **_FLOAT32}),
    (
        "LSTM",
        {
            "units": 64,
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "use_bias": True,
            "return_sequences": False,
            "return_state": False,
            "go_backwards": False,
            "stateful": False,
            "time_major": False,
            **_FLOAT32,
        },
    ),
    ("Dropout", _FLOAT32),  # inactive when scoring: its rate does not matter
    ("Dense", {"units": 1, "activation": "sigmoid", **_DENSE}),
)

# --- the only globals the restricted unpickler resolves, per file ---
SCALER_GLOBALS = NUMPY_ARRAY_GLOBALS | frozenset({("sklearn.preprocessing._data", "StandardScaler")})
THRESHOLD_GLOBALS = NUMPY_SCALAR_GLOBALS
FEATURE_INFO_GLOBALS: frozenset[tuple[str, str]] = frozenset()  # a dict of str lists and an int needs none


# ---------------------------------------------------------------------------------------------
# the networks


def _dtype_name(value: Any) -> Any:
    """A layer's dtype as a name: Keras 2 writes a string or a Policy dict (mixed precision)."""
    if isinstance(value, dict):
        return value.get("config", {}).get("name")
    return value


def check_architecture(
    what: str, model: keras_files.KerasModel, expected: Sequence[tuple[str, dict[str, Any]]], model_class: str
) -> list[Layer]:
    """The file's layers (InputLayer aside), after checking them against the notebook's network.

    Raises LegacyImportError naming the first difference: the model's kind, the sequence of layer
    classes, or a layer setting.
    """
    kind = model.kind
    if model_class == "Functional" and kind not in ("Functional", "Model"):
        raise LegacyImportError(f"{what}: a {kind} model, the notebook saved a functional Model")
    if model_class == "Sequential" and kind != "Sequential":
        raise LegacyImportError(f"{what}: a {kind} model, the notebook saved a Sequential model")
    want_classes = [layer_class for layer_class, _ in expected]
    if model.classes != want_classes:
        raise LegacyImportError(f"{what}: layers {model.classes} differ from the notebook's {want_classes}")
    for position, (layer, (layer_class, settings)) in enumerate(zip(model.layers, expected, strict=True)):
        for key, want in settings.items():
            if key not in layer.config and key == "time_major":  # Keras 2 versions before the argument existed
                continue
            got = _dtype_name(layer.config.get(key)) if key == "dtype" else layer.config.get(key)
            if got != want:
                raise LegacyImportError(
                    f"{what}: layer {position} '{layer.name}' ({layer_class}) has {key}={got!r}, "
                    f"the notebook's {want!r}"
                )
    return list(model.layers)


def notebook_network(
    data: bytes, what: str, expected: Sequence[tuple[str, dict[str, Any]]], model_class: str, input_shape: list
) -> keras_files.KerasModel:
    """A Keras 2 .h5 file's model, once it is the notebook's network with the notebook's input."""
    try:
        model = keras_files.read_keras2_h5(data, what)
    except KerasFileError as exc:
        raise LegacyImportError(str(exc)) from exc
    found = check_architecture(what, model, expected, model_class)
    if model.input_shape is not None and model.input_shape[1:] != input_shape[1:]:
        raise LegacyImportError(f"{what}: input shape {model.input_shape}, the notebook's {input_shape}")
    if model_class == "Sequential":
        length = found[0].config.get("input_length")
        if length not in (None, input_shape[1]):
            raise LegacyImportError(f"{what}: Embedding input_length={length!r}, the notebook's {input_shape[1]}")
    return model


# ---------------------------------------------------------------------------------------------
# the pickles


def _list_differences(key: str, got: Sequence[Any], want: Sequence[str]) -> str:
    diff = [
        f"position {i}: file '{g}', contract '{w}'" for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w
    ]
    if len(got) != len(want):
        diff.append(f"file has {len(got)} names, contract {len(want)}")
        missing = [name for name in want if name not in got]
        extra = [name for name in got if name not in want]
        if missing:
            diff.append(f"missing {missing}")
        if extra:
            diff.append(f"not in the contract {extra}")
    return f"{key} differ from the contract: {'; '.join(diff)}"


def check_feature_info(info: Any, what: str) -> dict[str, Any]:
    """The notebook's feature_info dict, its names and order equal to the contract's."""
    if not isinstance(info, dict):
        raise LegacyImportError(f"{what}: a {type(info).__name__}, the notebook saved a dict")
    for key, want in (
        ("continuous_features", contract.CONTINUOUS_FEATURES),
        ("binary_features", contract.BINARY_FEATURES),
    ):
        got = info.get(key)
        if not isinstance(got, (list, tuple)) or not all(isinstance(name, str) for name in got):
            raise LegacyImportError(f"{what}: '{key}' is not a list of feature names")
        if list(got) != list(want):
            raise LegacyImportError(f"{what}: {_list_differences(key, list(got), list(want))}")
    total = info.get("total_features", len(contract.FEATURES))
    if total != len(contract.FEATURES) or isinstance(total, bool):
        raise LegacyImportError(f"{what}: total_features={total!r}, the contract has {len(contract.FEATURES)}")
    return {
        "continuous_features": list(info["continuous_features"]),
        "binary_features": list(info["binary_features"]),
        "total_features": len(contract.FEATURES),
    }


def scaler_from_standard_scaler(fitted: Any, what: str) -> Scaler:
    """Our Scaler (means and scales) from an unpickled StandardScaler, checked against the contract."""
    from sklearn.preprocessing import StandardScaler

    if type(fitted) is not StandardScaler:
        raise LegacyImportError(f"{what}: a {type(fitted).__name__}, the notebook saved a StandardScaler")
    n = len(contract.CONTINUOUS_FEATURES)
    n_in = getattr(fitted, "n_features_in_", None)
    with_mean = bool(getattr(fitted, "with_mean", True))
    with_std = bool(getattr(fitted, "with_std", True))
    if (with_mean and getattr(fitted, "mean_", None) is None) or (with_std and getattr(fitted, "scale_", None) is None):
        raise LegacyImportError(f"{what}: the StandardScaler was never fitted (no mean_ or scale_)")
    if n_in is not None and n_in != n:
        raise LegacyImportError(f"{what}: the scaler was fitted on {n_in} features, the contract has {n} continuous")
    names = getattr(fitted, "feature_names_in_", None)
    if names is not None:
        got = [str(name) for name in np.asarray(names).tolist()]
        if got != list(contract.CONTINUOUS_FEATURES):
            detail = _list_differences("the scaler's features", got, list(contract.CONTINUOUS_FEATURES))
            raise LegacyImportError(f"{what}: {detail}")
    try:
        mean = np.asarray(fitted.mean_, dtype=np.float64) if with_mean else np.zeros(n)
        scale = np.asarray(fitted.scale_, dtype=np.float64) if with_std else np.ones(n)
    except (TypeError, ValueError) as exc:
        raise LegacyImportError(f"{what}: the scaler's mean_ or scale_ is not numeric ({exc})") from None
    if mean.shape != (n,) or scale.shape != (n,):
        raise LegacyImportError(f"{what}: mean_ {mean.shape} and scale_ {scale.shape}, expected ({n},) each")
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise LegacyImportError(f"{what}: the scaler's means must be finite and its scales positive")
    scaler = Scaler(mean, scale)
    Scaler.from_json(scaler.to_json())  # what the scorer will accept
    return scaler


def pickling_sklearn_version(caught: Iterable[warnings.WarningMessage]) -> str:
    """The scikit-learn version that pickled the scaler: sklearn warns when it is not ours."""
    import sklearn

    for warning in caught:
        original = getattr(warning.message, "original_sklearn_version", None)
        if original is not None:
            log.warning(
                "the notebook's scaler was pickled by scikit-learn %s, this is %s", original, sklearn.__version__
            )
            return str(original)
    return sklearn.__version__


def threshold_value(value: Any, what: str) -> float:
    """The notebook's threshold (numpy float64 from np.percentile, or a float): finite and positive."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, int, np.floating, np.integer)):
        raise LegacyImportError(f"{what}: a {type(value).__name__}, the notebook saved a number")
    threshold = float(value)
    if not np.isfinite(threshold) or threshold <= 0:
        raise LegacyImportError(f"{what}: the threshold must be a positive finite number, got {threshold!r}")
    return threshold
