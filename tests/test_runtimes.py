"""ONNX Runtime runs the .keras weights to Keras' numbers, without TensorFlow; anything else keeps Keras."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import factories
import keras
import numpy as np
import pandas as pd
import pytest

from raksha import contract
from raksha.models import architectures, artifacts, onnx_export, runtimes
from raksha.pipeline.daily import run
from raksha.platform import tables

MODELS = "models"
RTOL = 1e-5  # the parity tests' tolerance
WIDTHS = {contract.AE_MODEL: len(contract.FEATURES), contract.SEQ_MODEL: contract.MAX_SEQ_LENGTH}


def _inputs(name: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == contract.AE_MODEL:
        x = rng.normal(size=(n, WIDTHS[name])).astype(np.float32)
        x[:, 18:] = rng.integers(0, 2, size=(n, 12))  # the binary features
        return x
    tokens = rng.integers(0, contract.VOCABULARY_SIZE, size=(n, contract.MAX_SEQ_LENGTH)).astype(np.int32)
    lengths = rng.integers(0, contract.MAX_SEQ_LENGTH + 1, size=n)
    tokens[np.arange(contract.MAX_SEQ_LENGTH)[None, :] >= lengths[:, None]] = 0  # padded at the end
    return tokens


def _both(data: bytes, name: str) -> tuple[runtimes.Forward, runtimes.Forward]:
    fast = runtimes.load(data, name, WIDTHS[name], "onnx")
    slow = runtimes.load(data, name, WIDTHS[name], "keras")
    assert (fast.runtime, slow.runtime) == ("onnx", "keras")
    return fast, slow


@pytest.mark.parametrize("name", [contract.AE_MODEL, contract.SEQ_MODEL])
def test_onnx_equals_keras_on_the_shipped_models(name):
    data = artifacts.load_version(MODELS, name).files["model.keras"]
    fast, slow = _both(data, name)
    x = _inputs(name, 4000)
    got, want = fast(x), slow(x)
    if name == contract.AE_MODEL:
        # the contract's parity is on the score, ae_error (the notebook's reconstruction MSE), to 1e-5
        # relative; single reconstruction elements near zero differ by float32 rounding (a few 1e-6
        # absolute, depending on the CPU's instruction set), as the other-weights test allows
        np.testing.assert_allclose(((got - x) ** 2).mean(axis=1), ((want - x) ** 2).mean(axis=1), rtol=RTOL)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-5)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", [contract.AE_MODEL, contract.SEQ_MODEL])
def test_onnx_equals_keras_on_other_weights(name):
    keras.utils.set_random_seed(5)
    model = architectures.build_autoencoder() if name == contract.AE_MODEL else architectures.build_sequence_model()
    for layer in model.layers:  # larger weights than the initializers give, so outputs spread out
        layer.set_weights([w * 3 for w in layer.get_weights()])
    last = model.layers[-1]
    last.set_weights([w * 15 for w in last.get_weights()])
    fast, slow = _both(architectures.model_to_bytes(model), name)
    x = _inputs(name, 2000, seed=1)
    if name == contract.AE_MODEL:
        np.testing.assert_allclose(fast(x), slow(x), rtol=RTOL, atol=1e-5)
        return
    ours, theirs = fast(x).astype(np.float64), slow(x).astype(np.float64)
    assert theirs.min() < 1e-9 and theirs.max() > 0.999  # both tails occur
    # With weights this large, a low risk (down to 1e-14 here) is as precise as float32 arithmetic on a
    # logit of -30 allows, in Keras too: below 0.5 the logits agree to 1e-5 relative, above it the risks.
    low = theirs <= 0.5
    np.testing.assert_allclose(_logit(ours[low]), _logit(theirs[low]), rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(ours[~low], theirs[~low], rtol=RTOL)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def test_onnx_output_for_a_row_does_not_depend_on_its_batch():
    data = artifacts.load_version(MODELS, contract.SEQ_MODEL).files["model.keras"]
    fast = runtimes.load(data, contract.SEQ_MODEL, contract.MAX_SEQ_LENGTH, "onnx")
    x = _inputs(contract.SEQ_MODEL, 3000, seed=2)
    whole = fast(x)
    np.testing.assert_array_equal(np.concatenate([fast(x[i : i + 7]) for i in range(0, 3000, 7)]), whole)
    np.testing.assert_array_equal(fast(x[::-1]), whole[::-1])


def _masked_sequence_model() -> bytes:
    model = keras.Sequential(
        [
            keras.Input(shape=(contract.MAX_SEQ_LENGTH,), dtype="int32"),
            keras.layers.Embedding(contract.VOCABULARY_SIZE, 8, mask_zero=True),
            keras.layers.LSTM(4),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    return architectures.model_to_bytes(model)


def _shared_layer_autoencoder() -> bytes:
    inputs = keras.Input(shape=(len(contract.FEATURES),))
    twice = keras.layers.Dense(len(contract.FEATURES), activation="relu")
    return architectures.model_to_bytes(keras.Model(inputs, twice(twice(inputs))))


def _softmax_autoencoder() -> bytes:
    inputs = keras.Input(shape=(len(contract.FEATURES),))
    out = keras.layers.Dense(len(contract.FEATURES), activation="softmax")(keras.layers.Dense(8)(inputs))
    return architectures.model_to_bytes(keras.Model(inputs, out))


@pytest.mark.parametrize(
    ("build", "name", "why"),
    [
        (_masked_sequence_model, contract.SEQ_MODEL, "mask_zero"),
        (_shared_layer_autoencoder, contract.AE_MODEL, "not a chain"),
        (_softmax_autoencoder, contract.AE_MODEL, "softmax"),
    ],
)
def test_networks_onnx_does_not_run_exactly_keep_keras(build, name, why, caplog):
    data = build()
    with pytest.raises(onnx_export.Unsupported, match=why):
        onnx_export.export(data, WIDTHS[name])
    forward = runtimes.load(data, name, WIDTHS[name], "onnx")
    assert forward.runtime == "keras"
    assert "using Keras" in caplog.text
    assert forward(_inputs(name, 5)).shape[0] == 5


def _lambda_autoencoder() -> bytes:
    inputs = keras.Input(shape=(len(contract.FEATURES),), name="input")
    doubled = keras.layers.Lambda(lambda t: t * 2.0, name="sneaky")(inputs)
    return architectures.model_to_bytes(keras.Model(inputs, keras.layers.Dense(len(contract.FEATURES))(doubled)))


def _gru_sequence_model() -> bytes:
    model = keras.Sequential(
        [
            keras.Input(shape=(contract.MAX_SEQ_LENGTH,), dtype="int32"),
            keras.layers.Embedding(contract.VOCABULARY_SIZE, 8),
            keras.layers.GRU(4, name="recurrent"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    return architectures.model_to_bytes(model)


@pytest.mark.parametrize(
    ("build", "name", "refusal", "by_keras"),
    [
        (_lambda_autoencoder, contract.AE_MODEL, r"layer 0 'sneaky' is a Lambda layer", "Lambda"),
        (_gru_sequence_model, contract.SEQ_MODEL, r"layer 1 'recurrent' is a GRU, not a layer of", "'recurrent'"),
    ],
)
def test_a_lambda_or_unknown_layer_is_refused_whatever_the_runtime(build, name, refusal, by_keras):
    data = build()
    with pytest.raises(onnx_export.Unsupported, match=refusal):
        onnx_export.export(data, WIDTHS[name])
    for runtime in runtimes.RUNTIMES:  # ONNX refuses it, and Keras (the fallback) too
        with pytest.raises(ValueError, match=by_keras):
            runtimes.load(data, name, WIDTHS[name], runtime)


def test_a_wrong_input_shape_is_refused_whatever_the_runtime():
    data = artifacts.load_version(MODELS, contract.AE_MODEL).files["model.keras"]
    with pytest.raises(onnx_export.Unsupported, match="input shapes"):
        onnx_export.export(data, 12)
    for runtime in runtimes.RUNTIMES:
        with pytest.raises(ValueError, match=r"expected \(None, 12\)"):
            runtimes.load(data, "x", 12, runtime)
    with pytest.raises(ValueError, match="scoring.runtime must be one of"):
        runtimes.load(data, "x", 30, "torch")


def test_scorers_run_without_tensorflow():
    script = """
import json, sys
from raksha import contract
from raksha.models import artifacts
from raksha.scoring.scorers import BehaviorScorer, SequenceScorer
import factories
sessions = factories.sessions_frame(__import__("datetime").date(2026, 1, 5), 50, seed=3)
BehaviorScorer(artifacts.load_version("models", contract.AE_MODEL)).score(sessions[list(contract.FEATURES)])
SequenceScorer(artifacts.load_version("models", contract.SEQ_MODEL)).score_sessions([[1, 2, 3], [], [4] * 12])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": "tests", "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_job_scores_alike_with_either_runtime(spark, tmp_path):
    from conftest import test_config

    day = dt.date(2026, 4, 9)
    scored = {}
    for runtime in runtimes.RUNTIMES:
        cfg = test_config(tmp_path / runtime, f"scoring.runtime={runtime}", f"paths.models={MODELS}")
        if not scored:
            sessions = factories.sessions_frame(day, 200, seed=4)
            actions = factories.actions_frame(sessions, seed=4)
        factories.write_partition(sessions, cfg.path("sessions"), day)
        factories.write_partition(actions, cfg.path("actions"), day)
        run(spark, cfg, day)
        frame = spark.table(tables.table_name(cfg, "scored_sessions")).toPandas()
        scored[runtime] = frame.sort_values("session_id").reset_index(drop=True)
    onnx, keras_ = scored["onnx"], scored["keras"]
    for column in ("ae_error", "ae_risk_percent", "seq_risk", "seq_risk_max", "risk_score"):
        np.testing.assert_allclose(onnx[column], keras_[column], rtol=RTOL, err_msg=column)
    for column in ("ae_is_anomaly", "seq_is_block", "seq_risk_max_at", "decision"):
        assert onnx[column].tolist() == keras_[column].tolist(), column


def test_a_worker_scores_each_window_once_with_onnx_and_per_batch_with_keras():
    from raksha.scoring.scorers import SequenceScorer

    version = artifacts.load_version(MODELS, contract.SEQ_MODEL)
    sessions = [[1, 2, 3], [1, 2, 3, 4], [5] * 12, [], [8, 1, 2, 3]]
    scorer = SequenceScorer(version, "onnx")
    first = scorer.score_sessions(sessions, with_reasons=False)
    ran = []
    model = scorer.risk
    scorer.risk = lambda padded: ran.append(len(padded)) or model(padded)
    again = scorer.score_sessions(sessions[::-1], with_reasons=False)
    assert ran == []  # every window was scored in the first batch
    pd.testing.assert_frame_equal(again[::-1].reset_index(drop=True), first)
    fresh = SequenceScorer(version, "onnx")
    fresh._memo = None  # no memory: the same numbers, bit for bit
    pd.testing.assert_frame_equal(fresh.score_sessions(sessions, with_reasons=False), first)
    assert SequenceScorer(version, "keras")._memo is None
