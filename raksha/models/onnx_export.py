"""The scoring networks as ONNX graphs, built from a verified ``.keras`` file without Keras.

A ``.keras`` file is a zip of ``config.json`` (the layers and their options) and
``model.weights.h5`` (the arrays). Both are read as data by ``raksha.models.keras_files`` (which
refuses a Lambda or any unknown layer, and a model that is not a chain): no code from the file
runs, and TensorFlow is not imported. The network must be one raksha knows how to run exactly: a chain of
``Dense`` layers (the autoencoder), or ``Embedding -> LSTM -> Dropout -> Dense`` (the sequence
model), with every option the graph relies on checked; anything else raises ``Unsupported`` and
the caller keeps Keras (``raksha.models.runtimes``).

The graph stops before the last layer's activation: ``last_activation`` is applied in float64
numpy (``raksha.models.runtimes``), because ONNX Runtime's float32 sigmoid is an approximation with an
absolute error near 1e-7, which is most of the value of a risk near 1e-7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raksha.models import keras_files

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
    return kernel, bias, str(activation)


def export(data: bytes, input_width: int, what: str = "model.keras") -> Exported:
    """The ONNX graph of the network in ``data``, whose input must be (None, ``input_width``) (raises
    ``Unsupported``)."""
    try:
        model = keras_files.read_keras(data, what)
    except keras_files.KerasFileError as exc:
        raise Unsupported(str(exc)) from exc
    inputs = [model.input_shape]
    _check(inputs == [[None, input_width]], f"input shapes {inputs}, expected [[None, {input_width}]]")
    kinds = model.classes
    if kinds and set(kinds) == {"Dense"}:
        return _dense_chain(model.layers, input_width)
    if kinds == ["Embedding", "LSTM", "Dropout", "Dense"] or kinds == ["Embedding", "LSTM", "Dense"]:
        return _sequence(model.layers, input_width)
    raise Unsupported(f"layers {kinds}")


def _model(nodes, inputs, outputs, initializers) -> bytes:
    from onnx import checker, helper

    graph = helper.make_graph(nodes, "raksha", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    checker.check_model(model)
    return model.SerializeToString()


def _dense_chain(layers: Sequence[keras_files.Layer], width: int) -> Exported:
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    initializers: list = []
    inputs = width
    current = "x"
    last = "linear"
    for i, layer in enumerate(layers):
        if i:  # the previous layer's activation, now that it is not the last
            current = _activation(nodes, last, current, f"a{i - 1}")
        kernel, bias, last = _dense(layer.config, layer.arrays, width)
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


def _sequence(layers: Sequence[keras_files.Layer], steps: int) -> Exported:
    from onnx import TensorProto, helper, numpy_helper

    embedding, lstm, dense = layers[0].config, layers[1].config, layers[-1].config
    arrays = [layer.arrays for layer in layers]
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
