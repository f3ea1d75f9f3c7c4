"""Training as the notebooks do, from generated Parquet read with Spark."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from raksha import contract
from raksha.features.behavior import behavior_matrix
from raksha.features.sequences import encode_actions
from raksha.models import artifacts
from raksha.scoring.scorers import BehaviorScorer, SequenceScorer
from raksha.synthetic import generate
from raksha.training.commands import train_autoencoder, train_sequence
from raksha.training.fit import AutoencoderParams, SequenceParams, fit_autoencoder, fit_sequence_model

START = dt.date(2026, 9, 7)


def _notebook_heldout_errors(version, frame) -> np.ndarray:
    """The autoencoder notebook's held-out reconstruction errors for ``frame`` under ``version``."""
    from raksha.models.architectures import model_from_bytes

    model = model_from_bytes(version.files["model.keras"], contract.AE_MODEL)
    x = behavior_matrix(frame, BehaviorScorer(version).scaler)
    _, x_test = train_test_split(x, test_size=0.2, random_state=42)
    return np.mean(np.square(x_test - model.predict(x_test, verbose=0)), axis=1)


@pytest.fixture
def window(cfg):
    generate(START, 2, 1500, 0.1, 5, cfg.path("sessions"), cfg.path("actions"), cfg.path("labels"))
    return cfg.with_overrides(["training.autoencoder.epochs=3", "training.sequence.epochs=3"])


def test_train_autoencoder_from_a_window_writes_a_promoted_version(spark, window):
    version = train_autoencoder(spark, window, START, START + dt.timedelta(days=1))
    loaded = artifacts.load_version(window.path("models"), contract.AE_MODEL)
    assert loaded.version == version.version
    manifest = loaded.manifest
    assert manifest["training"] == {"start_date": "2026-09-07", "end_date": "2026-09-08", "rows": 3000}
    assert manifest["metrics"]["n_test"] == 600 and len(manifest["reference"]["quantiles"]) == 1001
    # the threshold, recomputed here as the notebook does: its split of the window's rows, the
    # promoted network's reconstructions, the 95th percentile of the held-out errors
    from raksha.training.window import autoencoder_frame

    errors = _notebook_heldout_errors(loaded, autoencoder_frame(spark, window, START, START + dt.timedelta(days=1)))
    assert manifest["threshold"] == pytest.approx(np.percentile(errors, 95), rel=1e-5)


def test_threshold_is_the_95th_percentile_of_heldout_errors(spark, window):
    from raksha.training.window import autoencoder_frame

    frame = autoencoder_frame(spark, window, START, START)
    trained = fit_autoencoder(frame, AutoencoderParams(epochs=2))
    version = artifacts.load_version(
        window.path("models"),
        contract.AE_MODEL,
        artifacts.write_version(window.path("models"), trained.name, trained.files, trained.manifest_fields).version,
    )
    scorer = BehaviorScorer(version)
    _, held_out = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=42)
    errors = scorer.score(frame.iloc[held_out], with_reasons=False)["ae_error"].to_numpy()
    assert np.percentile(errors, 95) == pytest.approx(scorer.threshold, rel=1e-5)
    # the scorer's errors are the notebook's (Keras' own predict on the notebook's matrix)
    np.testing.assert_allclose(errors, _notebook_heldout_errors(version, frame), rtol=1e-5)
    np.testing.assert_allclose(behavior_matrix(frame, scorer.scaler)[:, 18:], frame[list(contract.BINARY_FEATURES)])


def test_sequence_model_learns_the_notebook_patterns(tmp_path):
    rng = np.random.default_rng(0)
    normal = [
        ["LOGIN", *rng.choice(["VIEW_BALANCE", "VIEW_TRANSACTIONS", "TRANSFER_SMALL"], rng.integers(1, 6)), "LOGOUT"]
        for _ in range(1500)
    ]
    attacks = [["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE", "LOGOUT"], ["LOGIN", "CHANGE_PASSWORD", "TRANSFER_LARGE"]]
    attack = [attacks[i % 2] for i in range(300)]
    tokens = [encode_actions(s) for s in normal + attack]
    labels = np.array([0] * len(normal) + [1] * len(attack))
    trained = fit_sequence_model(tokens, labels, SequenceParams(epochs=4))
    assert trained.manifest_fields["metrics"]["roc_auc"] > 0.99
    version = artifacts.write_version(tmp_path, trained.name, trained.files, trained.manifest_fields)
    risk = SequenceScorer(artifacts.load_version(tmp_path, version.name, version.version)).score(
        [
            encode_actions(s)
            for s in (
                ["LOGIN", "VIEW_BALANCE", "VIEW_TRANSACTIONS", "LOGOUT"],
                ["LOGIN", "CHANGE_PASSWORD", "TRANSFER_LARGE"],
                ["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE"],
            )
        ]
    )
    assert list(risk["seq_is_block"]) == [0, 1, 1]


def test_train_sequence_from_a_window_uses_the_labels(spark, window):
    version = train_sequence(spark, window, START, START + dt.timedelta(days=1), promote=False)
    assert version.manifest["training"]["positives"] > 0
    with pytest.raises(artifacts.ArtifactError, match="no promoted version"):
        artifacts.load_version(window.path("models"), contract.SEQ_MODEL)


def test_bad_training_input_is_refused():
    with pytest.raises(ValueError, match="both normal"):
        fit_sequence_model([[1, 2, 8]] * 60, np.zeros(60))
    with pytest.raises(ValueError, match="at least 50"):
        fit_sequence_model([[1, 2, 8]] * 10, np.array([0, 1] * 5))
