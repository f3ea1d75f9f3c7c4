"""Import the models a bank trained with the original notebooks.

The notebooks wrote five files: ``autoencoder_model.h5`` and ``model_lstm.h5`` (Keras 2
HDF5), and ``scaler.pkl``, ``threshold.pkl``, ``feature_info.pkl`` (joblib pickles). They
become one autoencoder version and one sequence-model version, both promoted.

- Keras 3 cannot deserialize a Keras 2 LSTM (``time_major`` and other retired arguments), and
  a foreign file should not be trusted to describe its own layers anyway: the HDF5 file is
  read with h5py, its architecture checked against the notebook's layer by layer (a
  difference is an error saying which), its weights copied into our Keras 3 build of the
  same network, and the result saved as ``model.keras``.
- The pickles are opened with a restricted unpickler that resolves only the few classes a
  joblib-dumped StandardScaler, a float and a dict of lists need; anything else (``os.system``,
  ``subprocess``, ``eval``...) is refused before it can run. The scaler's means and scales
  are kept as JSON: the promoted version holds no pickle.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from raksha import artifacts, contract
from raksha.artifacts import ModelVersion, sha256_bytes
from raksha.features import Scaler

log = logging.getLogger(__name__)

NOTEBOOK_FILES = ("autoencoder_model.h5", "scaler.pkl", "threshold.pkl", "feature_info.pkl", "model_lstm.h5")

# (class, expected config) per layer with weights or meaning, in order; InputLayer skipped.
AE_LAYERS = [
    ("Dense", {"units": 32, "activation": "relu"}),
    ("Dense", {"units": 16, "activation": "relu"}),
    ("Dense", {"units": 32, "activation": "relu"}),
    ("Dense", {"units": len(contract.FEATURES), "activation": "linear"}),
]
SEQ_LAYERS = [
    ("Embedding", {"input_dim": contract.VOCABULARY_SIZE, "output_dim": 32}),
    ("LSTM", {"units": 64, "return_sequences": False, "activation": "tanh", "recurrent_activation": "sigmoid",
              "go_backwards": False, "use_bias": True}),
    ("Dropout", {}),
    ("Dense", {"units": 1, "activation": "sigmoid"}),
]

ALLOWED_GLOBALS = {
    ("sklearn.preprocessing._data", "StandardScaler"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class LegacyImportError(ValueError):
    """The notebook files are missing, unsafe, or not what the notebooks wrote."""


def _restricted_unpickler_class():
    from joblib.numpy_pickle import NumpyUnpickler

    class RestrictedUnpickler(NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in ALLOWED_GLOBALS:
                raise LegacyImportError(f"refusing to unpickle {module}.{name}: not a class the notebooks saved")
            return super().find_class(module, name)

    return RestrictedUnpickler


def safe_joblib_load(path: Path) -> Any:
    """``joblib.load`` for the notebooks' pickles, resolving only ALLOWED_GLOBALS."""
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    unpickler_class = _restricted_unpickler_class()
    with open(path, "rb") as raw, _validate_fileobject_and_memmap(raw, str(path), None) as (fobj, _):
        unpickler = unpickler_class(str(path), fobj, ensure_native_byte_order=True)
        try:
            return unpickler.load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise LegacyImportError(f"{path}: not a readable joblib pickle: {exc}") from None


def _h5_layers(path: Path) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """The layer configs and, per layer name, the weights (in the file's weight_names order)."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise LegacyImportError(f"{path}: not an HDF5 model file: {exc}") from None
    with f:
        raw = f.attrs.get("model_config")
        if raw is None or "model_weights" not in f:
            raise LegacyImportError(f"{path}: no model_config or model_weights (not a Keras 2 .h5 model)")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        layers = config.get("config", {}).get("layers", [])
        weights: dict[str, list[np.ndarray]] = {}
        group = f["model_weights"]
        for name in group.attrs.get("layer_names", []):
            name = name.decode() if isinstance(name, bytes) else name
            layer_group = group[name]
            names = [n.decode() if isinstance(n, bytes) else n for n in layer_group.attrs.get("weight_names", [])]
            weights[name] = [np.asarray(layer_group[n]) for n in names]
    return layers, weights


def _check_architecture(path: Path, layers: list[dict[str, Any]], expected: list[tuple[str, dict]]) -> list[str]:
    """Layer names in order, after checking classes and settings against the notebook's."""
    found = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
    kinds = [layer.get("class_name") for layer in found]
    if kinds != [kind for kind, _ in expected]:
        raise LegacyImportError(f"{path}: layers {kinds} differ from the notebook's {[k for k, _ in expected]}")
    names = []
    for i, (layer, (kind, settings)) in enumerate(zip(found, expected)):
        cfg = layer.get("config", {})
        for key, want in settings.items():
            if cfg.get(key) != want:
                raise LegacyImportError(f"{path}: layer {i} ({kind}) has {key}={cfg.get(key)!r}, the notebook's {want!r}")
        names.append(cfg.get("name") or layer.get("name"))
    return names


def _rebuild(path: Path, expected: list[tuple[str, dict]], build) -> bytes:
    from raksha.architectures import check_layers, model_to_bytes

    layers, weights = _h5_layers(path)
    names = _check_architecture(path, layers, expected)
    flat = [w for name in names for w in weights.get(name, [])]
    model = build()
    target = model.get_weights()
    if [w.shape for w in flat] != [w.shape for w in target]:
        raise LegacyImportError(
            f"{path}: weight shapes {[w.shape for w in flat]} differ from the notebook's {[w.shape for w in target]}"
        )
    model.set_weights(flat)
    check_layers(model, str(path))
    return model_to_bytes(model)


def _input_dim(path: Path) -> int | None:
    layers, _ = _h5_layers(path)
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_input_shape") or layer.get("config", {}).get("batch_shape")
            return shape[-1] if shape else None
    return None


def _scaler(path: Path) -> Scaler:
    fitted = safe_joblib_load(path)
    if type(fitted).__name__ != "StandardScaler":
        raise LegacyImportError(f"{path}: expected a StandardScaler, found {type(fitted).__name__}")
    n = len(contract.CONTINUOUS_FEATURES)
    if getattr(fitted, "n_features_in_", n) != n:
        raise LegacyImportError(f"{path}: the scaler was fitted on {fitted.n_features_in_} features, not {n}")
    names = getattr(fitted, "feature_names_in_", None)
    if names is not None and list(names) != list(contract.CONTINUOUS_FEATURES):
        raise LegacyImportError(f"{path}: the scaler's feature order differs from the contract's")
    mean = np.asarray(fitted.mean_ if fitted.with_mean else np.zeros(n), dtype=np.float64)
    scale = np.asarray(fitted.scale_ if fitted.with_std else np.ones(n), dtype=np.float64)
    return Scaler(mean, scale)


def _check_feature_info(path: Path) -> None:
    info = safe_joblib_load(path)
    if not isinstance(info, dict):
        raise LegacyImportError(f"{path}: expected the notebook's feature_info dict")
    for key, want in (("continuous_features", contract.CONTINUOUS_FEATURES), ("binary_features", contract.BINARY_FEATURES)):
        got = list(info.get(key, []))
        if got != list(want):
            diff = [f"position {i}: file '{g}', contract '{w}'" for i, (g, w) in enumerate(zip(got, want)) if g != w]
            if len(got) != len(want):
                diff.append(f"file has {len(got)} names, contract {len(want)}")
            raise LegacyImportError(f"{path}: {key} differ from the contract: {'; '.join(diff[:3])}")


def import_legacy(from_dir: str | Path, models_root: str | Path, promote: bool = True) -> tuple[ModelVersion, ModelVersion]:
    """The notebooks' five files in ``from_dir`` -> (autoencoder version, sequence version)."""
    from raksha.architectures import build_autoencoder, build_sequence_model

    folder = Path(from_dir)
    for name in NOTEBOOK_FILES:
        if not (folder / name).is_file():
            raise LegacyImportError(f"notebook file {folder / name} is missing")
    originals = {name: sha256_bytes((folder / name).read_bytes()) for name in NOTEBOOK_FILES}

    _check_feature_info(folder / "feature_info.pkl")
    scaler = _scaler(folder / "scaler.pkl")
    threshold_value = safe_joblib_load(folder / "threshold.pkl")
    try:
        threshold = float(threshold_value)
    except (TypeError, ValueError):
        raise LegacyImportError(f"{folder / 'threshold.pkl'}: not a number") from None
    if not np.isfinite(threshold) or threshold <= 0:
        raise LegacyImportError(f"{folder / 'threshold.pkl'}: threshold must be a positive number, got {threshold}")
    ae_path = folder / "autoencoder_model.h5"
    if _input_dim(ae_path) not in (None, len(contract.FEATURES)):
        raise LegacyImportError(f"{ae_path}: input dimension {_input_dim(ae_path)}, the contract has 30 features")
    ae_bytes = _rebuild(ae_path, AE_LAYERS, build_autoencoder)
    seq_bytes = _rebuild(folder / "model_lstm.h5", SEQ_LAYERS, build_sequence_model)

    source = {"kind": "legacy-import", "from": str(folder.resolve()), "files": originals}
    ae = artifacts.write_version(
        models_root,
        contract.AE_MODEL,
        {"model.keras": ae_bytes, "scaler.json": json.dumps(scaler.to_json()).encode()},
        {"threshold": threshold, "threshold_rule": "threshold.pkl of the notebook", "source": source,
         "training": None, "metrics": {}},
        promote_it=promote,
    )
    seq = artifacts.write_version(
        models_root,
        contract.SEQ_MODEL,
        {"model.keras": seq_bytes},
        {"block_threshold": contract.SEQ_BLOCK_THRESHOLD, "source": source, "training": None, "metrics": {}},
        promote_it=promote,
    )
    log.info("imported %s/%s and %s/%s from %s", ae.name, ae.version, seq.name, seq.version, folder)
    return ae, seq

