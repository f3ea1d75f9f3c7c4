"""Import the models a bank trained with the original notebooks (``raksha import-legacy``).

The notebooks wrote five files: ``autoencoder_model.h5`` and ``model_lstm.h5`` (Keras 2
HDF5), and ``scaler.pkl``, ``threshold.pkl``, ``feature_info.pkl`` (joblib pickles). They
become one autoencoder version and one sequence-model version, both promoted.

- Keras 3 cannot deserialize a Keras 2 LSTM (``time_major`` and other retired arguments), and
  a foreign file should not be trusted to describe its own layers anyway. The HDF5 file is
  read with h5py (``raksha.models.keras_files``: a Lambda or any unknown layer is refused,
  nothing in the file is executed or deserialized as code), checked against the notebook's
  network layer by layer (``raksha.models.legacy_checks``: a difference is an error saying
  which layer and which setting), and its weights, in each layer's ``weight_names`` order, are
  copied into our Keras 3 build of the same network, saved as ``model.keras``.
- The pickles are opened with a restricted unpickler (``raksha.models.safe_pickle``): only the
  few globals a joblib-dumped StandardScaler, a numpy float and a dict of lists need are
  resolved, anything else (``os.system``, ``subprocess.Popen``, ``builtins.eval``...) is refused
  before it can run. The scaler's means and scales are kept as JSON: the imported versions hold
  no pickle.
- Every file is read once into memory; the bytes that are hashed into the manifest are the
  bytes that are parsed. Both versions are written before either is promoted.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raksha import contract
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion, sha256_bytes
from raksha.models.keras_files import Layer
from raksha.models.legacy_checks import (
    AE_ARCHITECTURE,
    FEATURE_INFO_GLOBALS,
    SCALER_GLOBALS,
    SEQ_ARCHITECTURE,
    THRESHOLD_GLOBALS,
    LegacyImportError,
    check_feature_info,
    notebook_network,
    pickling_sklearn_version,
    scaler_from_standard_scaler,
    threshold_value,
)
from raksha.models.safe_pickle import UnsafePickleError, restricted_joblib_loads

log = logging.getLogger(__name__)

AE_FILE = "autoencoder_model.h5"
SCALER_FILE = "scaler.pkl"
THRESHOLD_FILE = "threshold.pkl"
FEATURE_INFO_FILE = "feature_info.pkl"
SEQ_FILE = "model_lstm.h5"
NOTEBOOK_FILES: tuple[str, ...] = (AE_FILE, SCALER_FILE, THRESHOLD_FILE, FEATURE_INFO_FILE, SEQ_FILE)

# The notebooks' files are a few kB to a few hundred kB; anything this large is not one of them.
MAX_FILE_BYTES = 64 * 1024 * 1024


class LegacyFileMissingError(FileNotFoundError, LegacyImportError):
    """One of the five notebook files is not in the folder."""


def _unpickle(
    data: bytes, what: str, allowed: Iterable[tuple[str, str]], caught: list[warnings.WarningMessage] | None = None
) -> Any:
    try:
        return restricted_joblib_loads(data, what, allowed, caught)
    except UnsafePickleError as exc:
        raise LegacyImportError(str(exc)) from exc


def _copy_weights(what: str, found: Sequence[Layer], model: Any) -> None:
    """Set each layer of our Keras 3 ``model`` from the file's weights, shapes checked layer by layer."""
    targets = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if len(targets) != len(found):  # both built from the same list of layers: cannot happen unless edited
        raise LegacyImportError(f"{what}: {len(found)} layers in the file, {len(targets)} in the rebuilt network")
    for position, (layer, target) in enumerate(zip(found, targets, strict=True)):
        want = [tuple(w.shape) for w in target.get_weights()]
        got = [tuple(array.shape) for array in layer.arrays]
        if got != want:
            raise LegacyImportError(
                f"{what}: layer {position} '{layer.name}' has weights {[n for n, _ in layer.weights]} of shapes "
                f"{got}, the notebook's network {want}"
            )
        for weight_name, array in layer.weights:
            if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
                raise LegacyImportError(f"{what}: weight '{weight_name}' is not finite floating point")
        target.set_weights([array.astype(np.float32) for array in layer.arrays])


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

    network = notebook_network(data, what, expected, model_class, input_shape)
    model = build()
    _copy_weights(what, network.layers, model)
    check_layers(model, what)
    payload = model_to_bytes(model)
    # what the job will load must hold exactly the weights read from the file
    reloaded, written = model_from_bytes(payload, what).get_weights(), model.get_weights()
    if len(reloaded) != len(written) or not all(np.array_equal(a, b) for a, b in zip(reloaded, written, strict=True)):
        raise LegacyImportError(f"{what}: weights changed when saving the rebuilt model")
    return payload, network.attrs


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
        _unpickle(data[FEATURE_INFO_FILE], where[FEATURE_INFO_FILE], FEATURE_INFO_GLOBALS),
        where[FEATURE_INFO_FILE],
    )
    caught: list[warnings.WarningMessage] = []
    scaler = scaler_from_standard_scaler(
        _unpickle(data[SCALER_FILE], where[SCALER_FILE], SCALER_GLOBALS, caught), where[SCALER_FILE]
    )
    sklearn_version = pickling_sklearn_version(caught)
    threshold = threshold_value(
        _unpickle(data[THRESHOLD_FILE], where[THRESHOLD_FILE], THRESHOLD_GLOBALS),
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

    common: dict[str, Any] = {
        "source": "legacy-import",
        "imported_from": str(folder.resolve()),
        "training": None,
        "metrics": {},
    }
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
