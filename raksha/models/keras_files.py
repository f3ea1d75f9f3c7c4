"""The one reader of Keras model files, and the one list of layers a scoring model may hold.

Two formats are read, as data: a Keras 3 ``.keras`` file (a zip of ``config.json``, the layers and
their options, and ``model.weights.h5``, the arrays), which raksha saves and scores, and a Keras 2
``.h5`` file (``model_config`` and ``model_weights`` in one HDF5 file), which the notebooks saved
(``raksha.models.legacy``). Both become one `KerasModel`: the model's class, its layers after the
input in order (class name, name, options, and the layer's weight arrays in the order it holds
them) and the input shape it declares.

Nothing in a file is executed or deserialized as code, and neither Keras nor TensorFlow is
imported. A layer outside `ALLOWED_LAYERS` (a Lambda above all) is refused, named, before any
weight is read; so is a model that is not a straight chain input -> layer 1 -> ... -> output.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The layer classes of the notebooks' networks: anything else in a scoring model is refused.
ALLOWED_LAYERS = frozenset({"InputLayer", "Dense", "Embedding", "LSTM", "Dropout"})
MODEL_CLASSES = ("Sequential", "Functional", "Model")  # "Model": functional models of older Keras 2


class KerasFileError(ValueError):
    """Not a Keras model file, or a model raksha does not read: a refused layer, not a chain."""


@dataclass(frozen=True)
class Layer:
    class_name: str
    name: str
    config: dict[str, Any]  # the layer's options as the file states them
    weights: tuple[tuple[str, np.ndarray], ...] = ()  # (name in the file, array), in the layer's order

    @property
    def arrays(self) -> list[np.ndarray]:
        return [array for _, array in self.weights]


@dataclass(frozen=True)
class KerasModel:
    kind: str  # the model's class: Sequential, Functional (Model in older Keras 2)
    layers: tuple[Layer, ...]  # the input layer aside
    input_shape: list | None  # the batch input shape declared (InputLayer's, else the first layer's)
    attrs: dict[str, str] = field(default_factory=dict)  # keras_version (and backend, Keras 2) when stated

    @property
    def classes(self) -> list[str]:
        return [layer.class_name for layer in self.layers]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def layer_name(layer: Mapping[str, Any]) -> str:
    """A layer entry's name (in its config; Keras 3 also writes it beside the config)."""
    return str(layer.get("config", {}).get("name") or layer.get("name") or "?")


def _inbound_names(layer: Mapping[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` in a functional config, over all its nodes."""
    names = []
    for node in layer.get("inbound_nodes") or []:
        for entry in node if isinstance(node, list) else [node]:
            if isinstance(entry, list) and entry:  # Keras 2: [[name, node, tensor, kwargs], ...]
                names.append(str(entry[0]))
            elif isinstance(entry, dict):  # Keras 3 (and Keras 2.13+): {"args": [keras tensors], ...}
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


def refuse_unknown_layers(what: str, layers: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a Lambda or any layer outside ALLOWED_LAYERS, naming it (positions count after the input)."""
    found = [layer for layer in layers if layer.get("class_name") != "InputLayer"]
    for position, layer in enumerate(found):
        layer_class = layer.get("class_name")
        if layer_class == "Lambda":
            raise KerasFileError(
                f"{what}: layer {position} '{layer_name(layer)}' is a Lambda layer (code, not weights): refused"
            )
        if layer_class not in ALLOWED_LAYERS:
            raise KerasFileError(
                f"{what}: layer {position} '{layer_name(layer)}' is a {layer_class}, not a layer of the notebooks' "
                f"networks ({', '.join(sorted(ALLOWED_LAYERS))}): refused"
            )


def check_chain(what: str, kind: str, model: Mapping[str, Any], layers: Sequence[Mapping[str, Any]]) -> None:
    """The model must be the straight chain input -> layer 1 -> ... -> output (a Sequential one is)."""
    if kind == "Sequential":
        return
    names = [layer_name(layer) for layer in layers]
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if len(inputs) != 1 or layers[0] is not inputs[0]:
        raise KerasFileError(f"{what}: {len(inputs)} input layers: not a chain, which has one, first")
    for previous, layer in zip(names[:-1], layers[1:], strict=True):
        inbound = _inbound_names(layer)
        if inbound != [previous]:
            raise KerasFileError(
                f"{what}: layer '{layer_name(layer)}' takes its input from {inbound}, not from ['{previous}']: "
                "not a chain"
            )
    input_layers = _endpoint_names(model.get("input_layers"))
    output_layers = _endpoint_names(model.get("output_layers"))
    if input_layers != [names[0]] or output_layers != [names[-1]]:
        raise KerasFileError(
            f"{what}: model inputs {input_layers} and outputs {output_layers}, not the ends ['{names[0]}'] and "
            f"['{names[-1]}']: not a chain"
        )


def _checked_layers(what: str, model_config: Any) -> tuple[str, list[dict[str, Any]]]:
    """(model class, layer entries) of a file's model configuration, once checked: known model class,
    allowed layers only, a chain."""
    if not isinstance(model_config, dict) or not isinstance(model_config.get("config"), dict):
        raise KerasFileError(f"{what}: no model configuration")
    kind = model_config.get("class_name")
    if kind not in MODEL_CLASSES:
        raise KerasFileError(f"{what}: a {kind} model, neither Sequential nor functional")
    layers = model_config["config"].get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(layer, dict) for layer in layers):
        raise KerasFileError(f"{what}: the model configuration lists no layers")
    refuse_unknown_layers(what, layers)
    check_chain(what, str(kind), model_config["config"], layers)
    return str(kind), layers


def _model(
    kind: str,
    entries: list[dict[str, Any]],
    weights: Sequence[Sequence[tuple[str, np.ndarray]]],
    attrs: Mapping[str, str],
) -> KerasModel:
    """The neutral description; ``weights`` holds one list per entry after the input layers."""
    declared = None
    for entry in entries:
        config = entry.get("config", {})
        shape = config.get("batch_input_shape") or config.get("batch_shape")
        if shape is not None:
            declared = list(shape)
            break
    body = [entry for entry in entries if entry.get("class_name") != "InputLayer"]
    layers = tuple(
        Layer(str(entry["class_name"]), layer_name(entry), dict(entry.get("config", {})), tuple(arrays))
        for entry, arrays in zip(body, weights, strict=True)
    )
    return KerasModel(kind, layers, declared, dict(attrs))


# ---------------------------------------------------------------------------------------------
# Keras 3 .keras


def _snake(name: str) -> str:
    """Keras' ``naming.to_snake_case`` (``LSTM`` -> ``lstm``, ``InputLayer`` -> ``input_layer``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras(data: bytes, what: str) -> KerasModel:
    """A Keras 3 ``.keras`` file's model.

    Keras 3 stores a layer's arrays under ``layers/<snake_case class>[_<n>]/vars/<i>``, numbered by
    class in the model's layer order (an LSTM's under ``.../cell/vars``).
    """
    import h5py

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in archive.namelist() else {}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise KerasFileError(f"{what}: not a Keras 3 .keras file: {exc}") from exc
    kind, entries = _checked_layers(what, config)
    seen: dict[str, int] = {}
    arrays = []
    with h5py.File(io.BytesIO(weights), "r") as h5:
        for entry in (e for e in entries if e.get("class_name") != "InputLayer"):
            stem = _snake(entry["class_name"])
            n = seen.get(stem, 0)
            seen[stem] = n + 1
            path = f"layers/{stem}" if n == 0 else f"layers/{stem}_{n}"
            path = f"{path}/cell/vars" if entry["class_name"] == "LSTM" else f"{path}/vars"
            group = h5.get(path)
            if group is None:
                raise KerasFileError(f"{what}: no weights for layer '{layer_name(entry)}' at {path}")
            arrays.append([(f"{path}/{i}", np.asarray(group[str(i)][()])) for i in range(len(group))])
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return _model(kind, entries, arrays, {"keras_version": str(version)} if version else {})


# ---------------------------------------------------------------------------------------------
# Keras 2 .h5


def read_keras2_h5(data: bytes, what: str) -> KerasModel:
    """A Keras 2 ``.h5`` file's (a whole model saved as HDF5) model, each layer's weights in its
    ``weight_names`` order."""
    import h5py

    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except OSError as exc:
        raise KerasFileError(f"{what}: not an HDF5 file ({exc})") from None
    with handle:
        raw = handle.attrs.get("model_config")
        if raw is None or "model_weights" not in handle:
            raise KerasFileError(f"{what}: no model_config or model_weights: not a whole Keras 2 model saved as .h5")
        try:
            config = json.loads(_text(raw))
        except json.JSONDecodeError as exc:
            raise KerasFileError(f"{what}: model_config is not JSON ({exc})") from None
        kind, entries = _checked_layers(what, config)
        group = handle["model_weights"]
        stored: dict[str, list[tuple[str, np.ndarray]]] = {}
        for name in (_text(n) for n in group.attrs.get("layer_names", [])):
            if name not in group:
                raise KerasFileError(f"{what}: model_weights lists layer '{name}' but holds no group for it")
            layer_group = group[name]
            stored[name] = []
            for weight_name in (_text(n) for n in layer_group.attrs.get("weight_names", [])):
                if weight_name not in layer_group:
                    raise KerasFileError(f"{what}: weight '{weight_name}' of layer '{name}' is missing")
                stored[name].append((weight_name, np.asarray(layer_group[weight_name])))
        attrs = {key: _text(handle.attrs[key]) for key in ("keras_version", "backend") if key in handle.attrs}
    arrays = []
    for entry in (e for e in entries if e.get("class_name") != "InputLayer"):
        if layer_name(entry) not in stored:
            raise KerasFileError(f"{what}: model_weights holds no weights for layer '{layer_name(entry)}'")
        arrays.append(stored[layer_name(entry)])
    return _model(kind, entries, arrays, attrs)
