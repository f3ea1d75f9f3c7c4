"""The scoring networks as ONNX graphs, built from a verified ``.keras`` file without Keras.

A ``.keras`` file is a zip of ``config.json`` (the layers and their options) and
``model.weights.h5`` (the arrays). Both are read as data: no code from the file runs, and
TensorFlow is not imported. The network must be one raksha knows how to run exactly: a chain of
``Dense`` layers (the autoencoder), or ``Embedding -> LSTM -> Dropout -> Dense`` (the sequence
model), with every option the graph relies on checked; anything else raises ``Unsupported`` and
the caller keeps Keras (``raksha.models.runtimes``).

The graph stops before the last layer's activation: ``last_activation`` is applied in float64
numpy (``raksha.models.runtimes``), because ONNX Runtime's float32 sigmoid is an approximation with an
absolute error near 1e-7, which is most of the value of a risk near 1e-7.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass

import numpy as np

OPSET = 17
IR_VERSION = 8  # what every onnxruntime since 1.10 reads
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


class Unsupported(ValueError):
    """The network is not one raksha runs with ONNX Runtime."""


@dataclass(frozen=True)
class Exported:
    graph: bytes  # a serialized ONNX ModelProto
    input_dtype: str  # "float32" or "int32"
    last_activation: str  # applied by the caller (one of ACTIVATIONS)


def _snake(name: str) -> str:
    """Keras' ``naming.to_snake_case`` (``LSTM`` -> ``lstm``, ``InputLayer`` -> ``input_layer``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read_keras(data: bytes) -> tuple[list, list[dict], list[list[np.ndarray]]]:
    """The input shapes of a ``.keras`` file, its layers (``class_name`` and ``config``, inputs left
    out) and each one's arrays, in order.

    Keras 3 stores a layer's arrays under ``layers/<snake_case class>[_<n>]/vars/<i>``, numbered by
    class in the model's layer order (an LSTM's under ``.../cell/vars``).
    """
    import h5py

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise Unsupported(f"not a Keras 3 .keras file: {exc}") from exc
    entries = (config.get("config") or {}).get("layers") or []
    _check_chain(config.get("class_name"), entries)
    inputs = [e.get("config", {}).get("batch_shape") for e in entries if e.get("class_name") == "InputLayer"]
    layers = [e for e in entries if e.get("class_name") != "InputLayer"]
    seen: dict[str, int] = {}
    arrays = []
    with h5py.File(io.BytesIO(weights), "r") as h5:
        for entry in layers:
            stem = _snake(entry["class_name"])
            n = seen.get(stem, 0)
            seen[stem] = n + 1
            path = f"layers/{stem}" if n == 0 else f"layers/{stem}_{n}"
            group = h5.get(f"{path}/cell/vars") if entry["class_name"] == "LSTM" else h5.get(f"{path}/vars")
            if group is None:
                raise Unsupported(f"no weights for layer {entry.get('config', {}).get('name')} at {path}")
            arrays.append([np.asarray(group[str(i)][()]) for i in range(len(group))])
    return inputs, layers, arrays


def _check_chain(kind: str | None, entries: list[dict]) -> None:
    """A Sequential model is a chain; a functional one must be too: each layer fed by the one before."""
    if kind == "Sequential":
        return
    _check(kind == "Functional", f"model class {kind!r}")
    for before, entry in zip(entries, entries[1:], strict=False):
        nodes = entry.get("inbound_nodes") or []
        args = nodes[0].get("args", []) if len(nodes) == 1 and isinstance(nodes[0], dict) else []
        history = [a.get("config", {}).get("keras_history", [None])[0] for a in args if isinstance(a, dict)]
        _check(history == [before.get("name", before.get("config", {}).get("name"))], "a model that is not a chain")


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise Unsupported(what)


def _dense(config: dict, arrays: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray, str]:
    activation = config.get("activation")
    _check(activation in ACTIVATIONS, f"Dense activation {activation!r}")
    _check(len(arrays) == (2 if config.get("use_bias", True) else 1), "Dense weights")
    kernel = arrays[0].astype(np.float32)
    _check(kernel.shape == (width, int(config["units"])), f"Dense kernel shape {kernel.shape}")
    bias = arrays[1].astype(np.float32) if len(arrays) == 2 else np.zeros(kernel.shape[1], dtype=np.float32)
    return kernel, bias, activation


def export(data: bytes, input_width: int) -> Exported:
    """The ONNX graph of the network in ``data``, whose input must be (None, ``input_width``) (raises
    ``Unsupported``)."""
    inputs, layers, arrays = read_keras(data)
    _check(inputs == [[None, input_width]], f"input shapes {inputs}, expected [[None, {input_width}]]")
    kinds = [layer["class_name"] for layer in layers]
    if kinds and set(kinds) == {"Dense"}:
        return _dense_chain(layers, arrays, input_width)
    if kinds == ["Embedding", "LSTM", "Dropout", "Dense"] or kinds == ["Embedding", "LSTM", "Dense"]:
        return _sequence(layers, arrays, input_width)
    raise Unsupported(f"layers {kinds}")


def _model(nodes, inputs, outputs, initializers) -> bytes:
    from onnx import checker, helper

    graph = helper.make_graph(nodes, "raksha", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    checker.check_model(model)
    return model.SerializeToString()


def _dense_chain(layers: list[dict], arrays: list[list[np.ndarray]], width: int) -> Exported:
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []
    inputs = width
    current = "x"
    last = "linear"
    for i, (layer, weights) in enumerate(zip(layers, arrays, strict=True)):
        if i:  # the previous layer's activation, now that it is not the last
            current = _activation(nodes, last, current, f"a{i - 1}")
        kernel, bias, last = _dense(layer["config"], weights, width)
        initializers += [numpy_helper.from_array(kernel, f"k{i}"), numpy_helper.from_array(bias, f"b{i}")]
        nodes += [
            helper.make_node("MatMul", [current, f"k{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"]),
        ]
        current, width = f"z{i}", kernel.shape[1]
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, width])],
        initializers,
    )
    return Exported(graph, "float32", last)


def _activation(nodes: list, name: str, x: str, y: str) -> str:
    from onnx import helper

    if name == "linear":
        return x
    nodes.append(helper.make_node({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}[name], [x], [y]))
    return y


def _gates(m: np.ndarray, units: int) -> np.ndarray:
    """Keras orders an LSTM's gates i, f, c, o along the last axis; ONNX i, o, f, c."""
    i, f, c, o = (m[..., k * units : (k + 1) * units] for k in range(4))
    return np.concatenate([i, o, f, c], axis=-1)


def _sequence(layers: list[dict], arrays: list[list[np.ndarray]], steps: int) -> Exported:
    from onnx import TensorProto, helper, numpy_helper

    embedding, lstm, dense = layers[0]["config"], layers[1]["config"], layers[-1]["config"]
    _check(not embedding.get("mask_zero", False), "Embedding mask_zero")
    table = arrays[0][0].astype(np.float32)
    _check(table.shape == (int(embedding["input_dim"]), int(embedding["output_dim"])), "Embedding shape")
    for option in ("return_sequences", "return_state", "go_backwards", "stateful"):
        _check(not lstm.get(option, False), f"LSTM {option}")
    _check(lstm.get("activation") == "tanh" and lstm.get("recurrent_activation") == "sigmoid", "LSTM activations")
    units = int(lstm["units"])
    use_bias = lstm.get("use_bias", True)
    _check(len(arrays[1]) == (3 if use_bias else 2), "LSTM weights")
    kernel, recurrent = arrays[1][0].astype(np.float32), arrays[1][1].astype(np.float32)
    _check(kernel.shape == (table.shape[1], 4 * units) and recurrent.shape == (units, 4 * units), "LSTM shapes")
    bias = arrays[1][2].astype(np.float32) if use_bias else np.zeros(4 * units, dtype=np.float32)
    out_kernel, out_bias, last = _dense(dense, arrays[-1], units)

    initializers = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(_gates(kernel, units).T[None].copy(), "W"),
        numpy_helper.from_array(_gates(recurrent, units).T[None].copy(), "R"),
        numpy_helper.from_array(np.concatenate([_gates(bias, units), np.zeros(4 * units, np.float32)])[None], "B"),
        numpy_helper.from_array(out_kernel, "k"),
        numpy_helper.from_array(out_bias, "b"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Gather", ["table", "tokens"], ["embedded"], axis=0),  # (n, steps, width)
        helper.make_node("Transpose", ["embedded"], ["time_major"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["time_major", "W", "R", "B"], ["", "h_last"], hidden_size=units),
        helper.make_node("Squeeze", ["h_last", "axis0"], ["h"]),
        helper.make_node("MatMul", ["h", "k"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
    ]
    graph = _model(
        nodes,
        [helper.make_tensor_value_info("tokens", TensorProto.INT32, [None, steps])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, out_kernel.shape[1]])],
        initializers,
    )
    return Exported(graph, "int32", last)
