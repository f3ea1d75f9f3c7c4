"""Import the models a bank trained with the original notebooks (``raksha import-legacy``).

The notebooks wrote five files: ``autoencoder_model.h5`` and ``model_lstm.h5`` (Keras 2
HDF5), and ``scaler.pkl``, ``threshold.pkl``, ``feature_info.pkl`` (joblib pickles). They
become one autoencoder version and one sequence-model version, both promoted.

- Keras 3 cannot deserialize a Keras 2 LSTM (``time_major`` and other retired arguments), and
  a foreign file should not be trusted to describe its own layers anyway. The HDF5 file is
  read with h5py: its ``model_config`` is checked against the notebook's network layer by
  layer (a difference is an error saying which layer and which setting), its weights are
  read from ``model_weights`` in each layer's ``weight_names`` order and copied into our
  Keras 3 build of the same network, saved as ``model.keras``. Nothing in the file is
  executed or deserialized as code: a Lambda or any unknown layer is refused.
- The pickles are opened with a restricted unpickler: only the few globals a joblib-dumped
  StandardScaler, a numpy float and a dict of lists need are resolved, anything else
  (``os.system``, ``subprocess.Popen``, ``builtins.eval``...) is refused before it can run.
  The scaler's means and scales are kept as JSON: the imported versions hold no pickle.
- Every file is read once into memory; the bytes that are hashed into the manifest are the
  bytes that are parsed. Both versions are written before either is promoted.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raksha import contract
from raksha.features.behavior import Scaler
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion, sha256_bytes

log = logging.getLogger(__name__)

AE_FILE = "autoencoder_model.h5"
SCALER_FILE = "scaler.pkl"
THRESHOLD_FILE = "threshold.pkl"
FEATURE_INFO_FILE = "feature_info.pkl"
SEQ_FILE = "model_lstm.h5"
NOTEBOOK_FILES: tuple[str, ...] = (AE_FILE, SCALER_FILE, THRESHOLD_FILE, FEATURE_INFO_FILE, SEQ_FILE)

# The notebooks' files are a few kB to a few hundred kB; anything this large is not one of them.
MAX_FILE_BYTES = 64 * 1024 * 1024

# --- what the notebooks' networks are, layer by layer (InputLayer aside) ---
# (class name, {config key: required value}); the weights' shapes are checked separately.
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
KNOWN_LAYERS = frozenset({"InputLayer", "Dense", "Embedding", "LSTM", "Dropout"})

# --- the only globals the restricted unpickler resolves, per file ---
_NUMPY_SCALAR = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),  # pickled under numpy 1.x
        ("numpy._core.multiarray", "scalar"),  # pickled under numpy 2.x
    }
)
_NUMPY_ARRAY = _NUMPY_SCALAR | frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),  # joblib's stand-in for an array written after it
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)
SCALER_GLOBALS = _NUMPY_ARRAY | frozenset({("sklearn.preprocessing._data", "StandardScaler")})
THRESHOLD_GLOBALS = _NUMPY_SCALAR
FEATURE_INFO_GLOBALS: frozenset[tuple[str, str]] = frozenset()  # a dict of str lists and an int needs none


class LegacyImportError(ValueError):
    """The notebook files are unsafe, or not what the notebooks wrote."""


class LegacyFileMissingError(FileNotFoundError, LegacyImportError):
    """One of the five notebook files is not in the folder."""


# ---------------------------------------------------------------------------------------------
# restricted unpickling


class RefusedGlobalError(LegacyImportError, pickle.UnpicklingError):
    """The pickle asked for a global outside the allowlist."""


def _restricted_unpickler_class() -> type:
    from joblib.numpy_pickle import NumpyUnpickler

    class RestrictedNumpyUnpickler(NumpyUnpickler):
        """joblib's unpickler (arrays stored after their NumpyArrayWrapper) with an allowlist.

        joblib 1.6 routes the nested pickle of an object-dtype array (the scaler's
        ``feature_names_in_``) through this same ``find_class``. Python's pure-python unpickler
        resolves GLOBAL, STACK_GLOBAL, INST and extension codes through ``find_class`` too, and
        the check is on the exact (module, name) pair, so dotted names cannot walk to
        attributes of an allowed object. Persistent ids are refused by the base class.
        """

        allowed: frozenset[tuple[str, str]] = frozenset()

        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in self.allowed:
                raise RefusedGlobalError(
                    f"{self.filename}: refusing to unpickle {module}.{name}: not something the notebooks saved"
                )
            return super().find_class(module, name)

    return RestrictedNumpyUnpickler


def restricted_joblib_loads(
    data: bytes, what: str, allowed: Iterable[tuple[str, str]], caught: list[warnings.WarningMessage] | None = None
) -> Any:
    """``joblib.load`` of ``data`` (one file's bytes) resolving only the ``allowed`` globals.

    Warnings raised while loading (sklearn's InconsistentVersionWarning...) are not shown but
    appended to ``caught`` when given.
    """
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    base = _restricted_unpickler_class()
    unpickler_class = type("Restricted", (base,), {"allowed": frozenset(allowed)})
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        try:
            with _validate_fileobject_and_memmap(io.BytesIO(data), what, None) as (fobj, _):
                if isinstance(fobj, str):  # joblib < 0.10 format: arrays in side files, never ours
                    raise LegacyImportError(f"{what}: written by joblib older than 0.10, not by the notebooks")
                unpickler = unpickler_class(what, fobj, ensure_native_byte_order=True)
                loaded = unpickler.load()
        except LegacyImportError:
            raise
        except Exception as exc:  # truncated, garbled, or objects that do not fit together
            raise LegacyImportError(f"{what}: not a readable joblib pickle ({type(exc).__name__}: {exc})") from None
    for warning in recorded:
        log.debug("%s: %s", what, warning.message)
    if caught is not None:
        caught.extend(recorded)
    return loaded


def _pickling_sklearn_version(caught: Iterable[warnings.WarningMessage]) -> str:
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


# ---------------------------------------------------------------------------------------------
# Keras 2 HDF5 files


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_keras2_h5(data: bytes, what: str) -> tuple[dict[str, Any], dict[str, list[tuple[str, np.ndarray]]], dict]:
    """(model_config, {layer name: [(weight name, array), ...]}, file attributes) of a Keras 2 .h5 model."""
    import h5py

    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise LegacyImportError(f"{what}: not an HDF5 file ({exc})") from None
    with handle:
        raw = handle.attrs.get("model_config")
        if raw is None or "model_weights" not in handle:
            raise LegacyImportError(f"{what}: no model_config or model_weights: not a whole Keras 2 model saved as .h5")
        try:
            config = json.loads(_text(raw))
        except json.JSONDecodeError as exc:
            raise LegacyImportError(f"{what}: model_config is not JSON ({exc})") from None
        group = handle["model_weights"]
        weights: dict[str, list[tuple[str, np.ndarray]]] = {}
        for layer_name in (_text(n) for n in group.attrs.get("layer_names", [])):
            if layer_name not in group:
                raise LegacyImportError(f"{what}: model_weights lists layer '{layer_name}' but holds no group for it")
            layer_group = group[layer_name]
            entries = []
            for weight_name in (_text(n) for n in layer_group.attrs.get("weight_names", [])):
                if weight_name not in layer_group:
                    raise LegacyImportError(f"{what}: weight '{weight_name}' of layer '{layer_name}' is missing")
                entries.append((weight_name, np.asarray(layer_group[weight_name])))
            weights[layer_name] = entries
        attrs = {key: _text(handle.attrs[key]) for key in ("keras_version", "backend") if key in handle.attrs}
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise LegacyImportError(f"{what}: model_config has no model configuration")
    return config, weights, attrs


def _layer_name(layer: Mapping[str, Any]) -> str:
    return str(layer.get("config", {}).get("name") or layer.get("name") or "?")


def _dtype_name(value: Any) -> Any:
    """A layer's dtype as a name: Keras 2 writes a string or a Policy dict (mixed precision)."""
    if isinstance(value, dict):
        return value.get("config", {}).get("name")
    return value


def _batch_shape(config: Mapping[str, Any]) -> list | None:
    shape = config.get("batch_input_shape") or config.get("batch_shape")
    return list(shape) if shape is not None else None


def check_architecture(
    what: str, model_config: Mapping[str, Any], expected: Sequence[tuple[str, dict[str, Any]]], model_class: str
) -> list[dict[str, Any]]:
    """The file's layers (InputLayer aside), after checking them against the notebook's network.

    Raises LegacyImportError naming the first difference: the model's kind, an unknown or
    Lambda layer, the sequence of layer classes, a layer setting, or (for a functional model)
    a graph that is not the notebook's straight chain.
    """
    kind = model_config.get("class_name")
    if model_class == "Functional" and kind not in ("Functional", "Model"):
        raise LegacyImportError(f"{what}: a {kind} model, the notebook saved a functional Model")
    if model_class == "Sequential" and kind != "Sequential":
        raise LegacyImportError(f"{what}: a {kind} model, the notebook saved a Sequential model")
    layers = model_config["config"].get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise LegacyImportError(f"{what}: model_config lists no layers")
    found = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
    for position, layer in enumerate(found):  # positions count the layers after the input, as below
        layer_class = layer.get("class_name")
        if layer_class == "Lambda":
            raise LegacyImportError(
                f"{what}: layer {position} '{_layer_name(layer)}' is a Lambda layer (code, not weights): refused"
            )
        if layer_class not in KNOWN_LAYERS:
            raise LegacyImportError(
                f"{what}: layer {position} '{_layer_name(layer)}' is a {layer_class}, not a layer of the notebooks' "
                f"networks ({', '.join(sorted(KNOWN_LAYERS))}): refused"
            )
    classes = [layer.get("class_name") for layer in found]
    want_classes = [layer_class for layer_class, _ in expected]
    if classes != want_classes:
        raise LegacyImportError(f"{what}: layers {classes} differ from the notebook's {want_classes}")
    for position, (layer, (layer_class, settings)) in enumerate(zip(found, expected, strict=True)):
        config = layer.get("config", {})
        for key, want in settings.items():
            if key not in config and key == "time_major":  # Keras 2 versions before the argument existed
                continue
            got = _dtype_name(config.get(key)) if key == "dtype" else config.get(key)
            if got != want:
                raise LegacyImportError(
                    f"{what}: layer {position} '{_layer_name(layer)}' ({layer_class}) has {key}={got!r}, "
                    f"the notebook's {want!r}"
                )
    if model_class == "Functional":
        _check_chain(what, model_config["config"], layers)
    return found


def _inbound_names(layer: Mapping[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` in a Keras 2 functional config."""
    names = []
    for node in layer.get("inbound_nodes", []):
        for entry in node if isinstance(node, list) else [node]:
            if isinstance(entry, list) and entry:
                names.append(str(entry[0]))
            elif isinstance(entry, dict):  # Keras 2.13+ may write {"args": [...]} nodes
                for arg in entry.get("args", []):
                    history = arg.get("config", {}).get("keras_history") if isinstance(arg, dict) else None
                    if history:
                        names.append(str(history[0]))
    return names


def _endpoint_names(entries: Any) -> list[str]:
    """Layer names of a config's ``input_layers``/``output_layers``: ``[[name, 0, 0], ...]`` (Keras 3: one flat)."""
    if not isinstance(entries, list) or not entries:
        return []
    if isinstance(entries[0], str):
        entries = [entries]
    return [str(entry[0]) for entry in entries if isinstance(entry, list) and entry]


def _check_chain(what: str, model: Mapping[str, Any], layers: list[dict[str, Any]]) -> None:
    """A functional model must be the straight chain input -> layer 1 -> ... -> output."""
    names = [_layer_name(layer) for layer in layers]
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if len(inputs) != 1 or layers[0] is not inputs[0]:
        raise LegacyImportError(f"{what}: {len(inputs)} input layers, the notebook's model has one, first")
    for previous, layer in zip(names[:-1], layers[1:], strict=True):
        inbound = _inbound_names(layer)
        if inbound != [previous]:
            raise LegacyImportError(
                f"{what}: layer '{_layer_name(layer)}' takes its input from {inbound}, "
                f"the notebook's from ['{previous}']"
            )
    input_layers, output_layers = (
        _endpoint_names(model.get("input_layers")),
        _endpoint_names(model.get("output_layers")),
    )
    if input_layers != [names[0]] or output_layers != [names[-1]]:
        raise LegacyImportError(
            f"{what}: model inputs {input_layers} and outputs {output_layers}, the notebook's ['{names[0]}'] and "
            f"['{names[-1]}']"
        )


def _declared_input(model_config: Mapping[str, Any]) -> list | None:
    """The batch input shape the file declares (InputLayer, else the first layer's)."""
    for layer in model_config["config"].get("layers", []):
        shape = _batch_shape(layer.get("config", {}))
        if shape is not None:
            return shape
    return None


def _copy_weights(
    what: str, found: list[dict[str, Any]], weights: Mapping[str, list[tuple[str, np.ndarray]]], model: Any
) -> None:
    """Set each layer of our Keras 3 ``model`` from the file's weights, shapes checked layer by layer."""
    targets = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if len(targets) != len(found):  # both built from the same list of layers: cannot happen unless edited
        raise LegacyImportError(f"{what}: {len(found)} layers in the file, {len(targets)} in the rebuilt network")
    for position, (layer, target) in enumerate(zip(found, targets, strict=True)):
        name = _layer_name(layer)
        entries = weights.get(name)
        if entries is None:
            raise LegacyImportError(f"{what}: model_weights holds no weights for layer '{name}'")
        want = [tuple(w.shape) for w in target.get_weights()]
        got = [tuple(array.shape) for _, array in entries]
        if got != want:
            raise LegacyImportError(
                f"{what}: layer {position} '{name}' has weights {[n for n, _ in entries]} of shapes {got}, "
                f"the notebook's network {want}"
            )
        arrays = [array for _, array in entries]
        for weight_name, array in entries:
            if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
                raise LegacyImportError(f"{what}: weight '{weight_name}' is not finite floating point")
        target.set_weights([array.astype(np.float32) for array in arrays])


def rebuild_model(
    data: bytes,
    what: str,
    expected: Sequence[tuple[str, dict[str, Any]]],
    model_class: str,
    input_shape: list,
    build: Callable[[], Any],
) -> tuple[bytes, dict[str, str]]:
    """A Keras 2 .h5 model file -> ``model.keras`` bytes of our Keras 3 network with its weights."""
    from raksha.models.architectures import check_layers, model_from_bytes, model_to_bytes

    model_config, weights, attrs = read_keras2_h5(data, what)
    found = check_architecture(what, model_config, expected, model_class)
    declared = _declared_input(model_config)
    if declared is not None and declared[1:] != input_shape[1:]:
        raise LegacyImportError(f"{what}: input shape {declared}, the notebook's {input_shape}")
    if model_class == "Sequential":
        length = found[0].get("config", {}).get("input_length")
        if length not in (None, input_shape[1]):
            raise LegacyImportError(f"{what}: Embedding input_length={length!r}, the notebook's {input_shape[1]}")
    model = build()
    _copy_weights(what, found, weights, model)
    check_layers(model, what)
    payload = model_to_bytes(model)
    # what the job will load must hold exactly the weights read from the file
    reloaded, written = model_from_bytes(payload, what).get_weights(), model.get_weights()
    if len(reloaded) != len(written) or not all(np.array_equal(a, b) for a, b in zip(reloaded, written, strict=True)):
        raise LegacyImportError(f"{what}: weights changed when saving the rebuilt model")
    return payload, attrs


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


# ---------------------------------------------------------------------------------------------
# the import


def read_notebook_files(folder: Path) -> dict[str, bytes]:
    """The five files' bytes, each read once; a missing file is named."""
    if not folder.is_dir():
        raise LegacyFileMissingError(f"notebook folder {folder} does not exist")
    files = {}
    for name in NOTEBOOK_FILES:
        path = folder / name
        if not path.is_file():
            raise LegacyFileMissingError(f"notebook file {path} is missing")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LegacyImportError(f"{path}: {size} bytes, far larger than the notebooks' files")
        files[name] = path.read_bytes()
    return files


def import_legacy(
    from_dir: str | Path, models_root: str | Path, promote: bool = True
) -> tuple[ModelVersion, ModelVersion]:
    """The notebooks' five files in ``from_dir`` -> (autoencoder version, sequence version).

    Every file is checked before anything is written; both versions are written before either
    is promoted (with ``promote``), so a failed import leaves the promoted models as they were.
    """
    from raksha.models.architectures import build_autoencoder, build_sequence_model

    folder = Path(from_dir)
    data = read_notebook_files(folder)
    where = {name: str(folder / name) for name in NOTEBOOK_FILES}
    checksums = {name: sha256_bytes(payload) for name, payload in data.items()}

    feature_info = check_feature_info(
        restricted_joblib_loads(data[FEATURE_INFO_FILE], where[FEATURE_INFO_FILE], FEATURE_INFO_GLOBALS),
        where[FEATURE_INFO_FILE],
    )
    caught: list[warnings.WarningMessage] = []
    scaler = scaler_from_standard_scaler(
        restricted_joblib_loads(data[SCALER_FILE], where[SCALER_FILE], SCALER_GLOBALS, caught), where[SCALER_FILE]
    )
    sklearn_version = _pickling_sklearn_version(caught)
    threshold = threshold_value(
        restricted_joblib_loads(data[THRESHOLD_FILE], where[THRESHOLD_FILE], THRESHOLD_GLOBALS),
        where[THRESHOLD_FILE],
    )
    ae_bytes, ae_attrs = rebuild_model(
        data[AE_FILE], where[AE_FILE], AE_ARCHITECTURE, "Functional", [None, len(contract.FEATURES)], build_autoencoder
    )
    seq_bytes, seq_attrs = rebuild_model(
        data[SEQ_FILE],
        where[SEQ_FILE],
        SEQ_ARCHITECTURE,
        "Sequential",
        [None, contract.MAX_SEQ_LENGTH],
        build_sequence_model,
    )

    common = {"source": "legacy-import", "imported_from": str(folder.resolve()), "training": None, "metrics": {}}
    ae_sources = (AE_FILE, SCALER_FILE, THRESHOLD_FILE, FEATURE_INFO_FILE)
    ae = artifacts.write_version(
        models_root,
        contract.AE_MODEL,
        {"model.keras": ae_bytes, "scaler.json": json.dumps(scaler.to_json(), indent=2).encode()},
        {
            **common,
            "source_files": {name: checksums[name] for name in ae_sources},
            "source_libraries": {
                "keras": ae_attrs.get("keras_version"),
                "backend": ae_attrs.get("backend"),
                "scikit-learn": sklearn_version,
            },
            "threshold": threshold,
            "threshold_rule": "the notebook's threshold.pkl: 95th percentile of held-out reconstruction errors",
            "feature_info": feature_info,
        },
    )
    seq = artifacts.write_version(
        models_root,
        contract.SEQ_MODEL,
        {"model.keras": seq_bytes},
        {
            **common,
            "source_files": {SEQ_FILE: checksums[SEQ_FILE]},
            "source_libraries": {"keras": seq_attrs.get("keras_version"), "backend": seq_attrs.get("backend")},
            "block_threshold": contract.SEQ_BLOCK_THRESHOLD,
        },
    )
    if promote:
        artifacts.promote(models_root, ae.name, ae.version)
        artifacts.promote(models_root, seq.name, seq.version)
    log.info(
        "imported %s/%s (threshold %s) and %s/%s from %s%s",
        ae.name,
        ae.version,
        threshold,
        seq.name,
        seq.version,
        folder,
        ", promoted" if promote else "",
    )
    return ae, seq
