"""Forward passes over a verified ``.keras`` file: ONNX Runtime, or Keras itself.

``scoring.runtime`` chooses. ``onnx`` (the default) runs the same weights with ONNX Runtime
(``raksha.models.onnx_export`` builds the graph without Keras), so a Python worker never imports
TensorFlow: it starts in well under a second instead of several, holds a fraction of the memory,
and its output for a row does not depend on the rows batched with it. ``keras`` deserializes the
model with Keras (safe mode) and calls ``predict_on_batch``. A network ONNX Runtime is not
trusted to run exactly (``onnx_export.Unsupported``) falls back to Keras, with a warning.

Both agree to about 1e-6 relative (float32 arithmetic in a different order); the parity tests
hold both to the notebooks' Keras 2 outputs.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

RUNTIMES = ("onnx", "keras")
DEFAULT = "onnx"


class Forward(Protocol):
    runtime: str
    batch_independent: bool  # a row's output is the same whatever rows are batched with it

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The network's output for a batch (float32, one row per input row)."""


def _last_activation(name: str, y: np.ndarray) -> np.ndarray:
    if name == "linear":
        return y
    z = y.astype(np.float64)
    if name == "relu":
        out = np.maximum(z, 0.0)
    elif name == "tanh":
        out = np.tanh(z)
    else:  # sigmoid, written to stay exact for large |z|
        e = np.exp(-np.abs(z))
        out = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out.astype(np.float32)


class _Forward:
    """What both runtimes share: rows converted to the network's input dtype, an empty batch answered
    without calling the runtime. Subclasses set ``dtype`` and ``width`` and implement ``_run``."""

    dtype: np.dtype
    width: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, self.width), dtype=np.float32)
        return self._run(np.ascontiguousarray(x, dtype=self.dtype))

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxForward(_Forward):
    runtime = "onnx"
    batch_independent = True  # tests/test_runtimes.py checks it

    def __init__(self, exported, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(exported.graph, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.width = int(self.session.get_outputs()[0].shape[1])
        self.dtype = np.dtype(exported.input_dtype)
        self.last_activation = exported.last_activation

    def _run(self, x: np.ndarray) -> np.ndarray:
        (y,) = self.session.run(None, {self.input: x})
        return _last_activation(self.last_activation, y)


class KerasForward(_Forward):
    runtime = "keras"
    batch_independent = False  # TensorFlow's float32 output can change in its last bits with the batch

    def __init__(self, data: bytes, what: str, input_width: int, threads: int = 1) -> None:
        pin_tensorflow_threads(threads)
        from raksha.models.architectures import model_from_bytes

        self.model = model_from_bytes(data, what)
        if tuple(self.model.input_shape) != (None, input_width):
            raise ValueError(f"{what}: input shape {self.model.input_shape}, expected (None, {input_width})")
        self.width = int(self.model.output_shape[-1])
        self.dtype = np.dtype(self.model.inputs[0].dtype)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x))


def pin_tensorflow_threads(threads: int) -> None:
    """Pin TensorFlow's thread pools to the task's cores (before its first op; later calls keep what it has)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, int(threads)))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log.debug("TensorFlow threads already initialized")


def check(runtime: object) -> str:
    """``runtime`` if it names one (``scoring.runtime``), else a ValueError."""
    if runtime not in RUNTIMES:
        raise ValueError(f"scoring.runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    return str(runtime)


def configured(cfg) -> str:
    """The configured ``scoring.runtime``, checked."""
    return check(cfg.get("scoring.runtime"))


def load(data: bytes, what: str, input_width: int, runtime: str = DEFAULT, threads: int = 1) -> Forward:
    """A forward pass over the verified ``.keras`` bytes ``data`` with ``runtime``."""
    if check(runtime) == "onnx":
        from raksha.models import onnx_export

        try:
            return OnnxForward(onnx_export.export(data, input_width), threads)
        except onnx_export.Unsupported as exc:
            log.warning("%s: not run with ONNX Runtime (%s); using Keras", what, exc)
    return KerasForward(data, what, input_width, threads)
