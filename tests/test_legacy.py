"""Importing the notebooks' five files: the numbers the notebooks gave, and what is refused before it runs.

Tiny Keras 2 models are trained with the notebooks' own code (``notebook_reference``), saved as the
notebooks saved them, imported, loaded through ``artifacts.load_version`` into the scorers, and
compared with the notebooks' ``score_session`` and ``predict_session_risk`` (1e-5 relative).
No Spark.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import joblib
import notebook_reference as nb
import numpy as np
import pandas as pd
import pytest
from factories import random_features

from raksha import contract
from raksha.features.sequences import encode_actions
from raksha.models import artifacts, keras_files
from raksha.models.artifacts import sha256_bytes
from raksha.models.legacy import NOTEBOOK_FILES, LegacyImportError, import_legacy
from raksha.scoring.scorers import BehaviorScorer, SequenceScorer

RTOL = 1e-5


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """The five files as the notebooks wrote them, and the Keras 2 objects that wrote them."""
    folder = tmp_path_factory.mktemp("notebook_files")
    train = random_features(400, np.random.default_rng(1))
    autoencoder, scaler, threshold = nb.train_notebook_autoencoder(train, epochs=2, seed=1)
    nb.save_notebook_autoencoder_files(folder, autoencoder, scaler, threshold)
    lstm = nb.train_notebook_lstm(epochs=6, seed=1, n_normal=300, n_attack=150)
    nb.save_notebook_lstm(folder, lstm)
    return {"folder": folder, "autoencoder": autoencoder, "scaler": scaler, "threshold": threshold, "lstm": lstm}


@pytest.fixture(scope="module")
def imported(notebook, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    ae, seq = import_legacy(notebook["folder"], models)
    return models, ae, seq


def _copy(notebook, tmp_path: Path) -> Path:
    target = tmp_path / "files"
    shutil.copytree(notebook["folder"], target)
    return target


# ----------------------------------------------------------------------------------- the import


def test_import_writes_promoted_versions_holding_no_pickle(notebook, imported):
    models, ae, seq = imported
    assert artifacts.current_version(models, contract.AE_MODEL) == ae.version
    assert artifacts.current_version(models, contract.SEQ_MODEL) == seq.version
    loaded_ae = artifacts.load_version(models, contract.AE_MODEL)
    loaded_seq = artifacts.load_version(models, contract.SEQ_MODEL)
    assert set(loaded_ae.files) == {"model.keras", "scaler.json"}
    assert set(loaded_seq.files) == {"model.keras"}

    folder = notebook["folder"]
    sha = {name: sha256_bytes((folder / name).read_bytes()) for name in NOTEBOOK_FILES}
    manifest = loaded_ae.manifest
    assert manifest["source"] == "legacy-import" and manifest["training"] is None and manifest["metrics"] == {}
    assert manifest["source_files"] == {n: sha[n] for n in NOTEBOOK_FILES if n != "model_lstm.h5"}
    assert isinstance(manifest["threshold"], float)
    assert manifest["threshold"] == float(notebook["threshold"]) == loaded_ae.threshold
    assert manifest["feature_info"]["continuous_features"] == list(contract.CONTINUOUS_FEATURES)

    manifest = loaded_seq.manifest
    assert manifest["source"] == "legacy-import" and manifest["training"] is None
    assert manifest["source_files"] == {"model_lstm.h5": sha["model_lstm.h5"]}
    assert manifest["block_threshold"] == 0.8 and loaded_seq.threshold is None

    scaler = json.loads(loaded_ae.files["scaler.json"])
    np.testing.assert_array_equal(scaler["mean"], notebook["scaler"].mean_)
    np.testing.assert_array_equal(scaler["scale"], notebook["scaler"].scale_)


def test_the_notebook_files_and_the_imported_versions_read_alike(notebook, imported):
    """One reader, two formats: the Keras 2 .h5 the notebook saved and the .keras imported from it."""
    models, _, _ = imported
    for file_name, model_name in (("autoencoder_model.h5", contract.AE_MODEL), ("model_lstm.h5", contract.SEQ_MODEL)):
        theirs = keras_files.read_keras2_h5((notebook["folder"] / file_name).read_bytes(), file_name)
        ours = keras_files.read_keras(artifacts.load_version(models, model_name).files["model.keras"], model_name)
        assert ours.kind == theirs.kind and ours.classes == theirs.classes
        assert ours.input_shape == theirs.input_shape
        assert theirs.attrs["keras_version"].startswith("2.") and ours.attrs["keras_version"].startswith("3.")
        for mine, notebooks in zip(ours.layers, theirs.layers, strict=True):
            assert len(mine.arrays) == len(notebooks.arrays)
            for a, b in zip(mine.arrays, notebooks.arrays, strict=True):
                np.testing.assert_array_equal(a, b)


def test_import_without_promote_leaves_the_pointer(notebook, tmp_path):
    ae, seq = import_legacy(notebook["folder"], tmp_path / "models", promote=False)
    assert (tmp_path / "models" / contract.AE_MODEL / ae.version / "manifest.json").is_file()
    with pytest.raises(artifacts.ArtifactError, match="no promoted version"):
        artifacts.current_version(tmp_path / "models", contract.AE_MODEL)


# ----------------------------------------------------------------------------------- parity


def _parity_sessions() -> pd.DataFrame:
    """~100 sessions: the notebook's two examples, random valid rows, extremes, and some nulls."""
    rng = np.random.default_rng(7)
    frames = [pd.DataFrame([nb.anomalous_example, nb.normal_example]), random_features(80, rng)]
    extremes = random_features(18, rng)
    for name in contract.CONTINUOUS_FEATURES:  # every value at an end of its range: far from normal
        low, high = contract.feature_range(name)
        extremes[name] = rng.choice([low, high], len(extremes))
    frames.append(extremes)
    sessions = pd.concat(frames, ignore_index=True)[list(contract.FEATURES)]
    sessions = sessions.astype({name: "float64" for name in contract.CONTINUOUS_FEATURES})
    sessions = sessions.astype({name: "Int32" for name in contract.BINARY_FEATURES})
    for name in ("gps_latitude", "wifi_id_hash", "time_of_day_sin", "charging_state", "day_of_week_mon"):
        sessions.loc[rng.choice(np.arange(2, len(sessions)), 8, replace=False), name] = None
    return sessions


def test_behaviour_scores_equal_the_notebook_score_session(notebook, imported):
    models, _, _ = imported
    scorer = BehaviorScorer(artifacts.load_version(models, contract.AE_MODEL))
    sessions = _parity_sessions()
    ours = scorer.score(sessions, with_reasons=False)
    assert len(ours) == len(sessions) == 100

    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn: "X does not have valid feature names", as in the notebook
        for record in sessions.to_dict("records"):
            # a null is a missing value, which the notebook fills with 0 (its fillna(0))
            filled = {name: 0 if pd.isna(value) else value for name, value in record.items()}
            expected.append(
                nb.score_session(filled, notebook["autoencoder"], notebook["scaler"], notebook["threshold"])
            )
    error, is_anomaly, risk = (np.array([row[i] for row in expected], dtype=np.float64) for i in range(3))

    np.testing.assert_allclose(ours["ae_error"], error, rtol=RTOL)
    np.testing.assert_array_equal(ours["ae_is_anomaly"], is_anomaly.astype(int))
    np.testing.assert_allclose(ours["ae_risk_percent"], risk, rtol=RTOL)
    np.testing.assert_array_equal(ours["ae_threshold"], float(notebook["threshold"]))
    # the comparison covers both sides of the threshold and the 100 % cap
    assert 0 < is_anomaly.sum() < len(is_anomaly)
    assert (risk == 100).any() and (risk < 100).any()


def _parity_sequences() -> list[list[str]]:
    """~50 sequences: the notebook's three, empty, short, exactly 10, longer, with unknown actions."""
    rng = np.random.default_rng(11)
    names = list(contract.ACTIONS) + ["OPEN_SUPPORT_CHAT", "VIEW_CARD", ""]
    known = list(contract.ACTIONS)
    sequences = [list(nb.seq1), list(nb.seq2), list(nb.seq3), [], ["VIEW_CARD"], ["LOGIN"]]
    sequences += [
        ["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE", "LOGOUT"],
        ["LOGIN", "CHANGE_PASSWORD", "TRANSFER_LARGE"],
    ]
    sequences += [["VIEW_BALANCE"] * 12 + list(nb.seq2), list(nb.seq3) + ["VIEW_BALANCE"] * 9]  # > 10: last 10 kept
    for i in range(40):
        length = [1, 3, 4, 7, 9, 10, 11, 14, 25, 40][i % 10]
        pool = names if i % 2 else known
        sequences.append([str(a) for a in rng.choice(pool, length)])
    return sequences


def test_sequence_scores_equal_the_notebook_predict_session_risk(notebook, imported):
    models, _, _ = imported
    scorer = SequenceScorer(artifacts.load_version(models, contract.SEQ_MODEL))
    sequences = _parity_sequences()
    ours = scorer.score([encode_actions(seq) for seq in sequences], with_reasons=False)
    expected = np.array([float(nb.predict_session_risk(seq, notebook["lstm"])) for seq in sequences])

    np.testing.assert_allclose(ours["seq_risk"], expected, rtol=RTOL)
    np.testing.assert_array_equal(ours["seq_is_block"], (expected > 0.8).astype(int))
    assert 0 < (expected > 0.8).sum() < len(expected)  # both decisions are compared
    assert any(len(seq) > 10 for seq in sequences) and any(not seq for seq in sequences)
    assert any(a not in contract.ACTIONS for seq in sequences for a in seq)


# ----------------------------------------------------------------------------------- refusals


class Marker:
    """A pickle that creates a file when loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_malicious_scaler_pickle_is_refused_and_never_runs(notebook, tmp_path):
    folder = _copy(notebook, tmp_path)
    marker = tmp_path / "pwned"
    joblib.dump(Marker(marker), folder / "scaler.pkl")
    with pytest.raises(LegacyImportError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        import_legacy(folder, tmp_path / "models")
    assert not marker.exists()
    assert not (tmp_path / "models").exists()
    joblib.load(folder / "scaler.pkl")  # the payload is live: plain joblib.load runs it
    assert marker.exists()


def test_payload_inside_the_scaler_arrays_is_refused(notebook, tmp_path):
    """An object array is a nested pickle in joblib's format: the allowlist applies there too."""
    folder = _copy(notebook, tmp_path)
    marker = tmp_path / "pwned"
    scaler = joblib.load(folder / "scaler.pkl")
    scaler.feature_names_in_ = np.array([Marker(marker)] + list(contract.CONTINUOUS_FEATURES[1:]), dtype=object)
    joblib.dump(scaler, folder / "scaler.pkl")
    with pytest.raises(LegacyImportError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        import_legacy(folder, tmp_path / "models")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["threshold.pkl", "feature_info.pkl"])
def test_malicious_threshold_or_feature_info_is_refused(notebook, tmp_path, name):
    folder = _copy(notebook, tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / name, "wb") as fh:  # a plain pickle: same refusal
        pickle.dump(Marker(marker), fh)
    with pytest.raises(LegacyImportError, match=rf"{name}: refusing to unpickle"):
        import_legacy(folder, tmp_path / "models")
    assert not marker.exists()


def test_other_objects_than_the_notebooks_are_refused(notebook, tmp_path):
    folder = _copy(notebook, tmp_path)
    from sklearn.preprocessing import MinMaxScaler

    joblib.dump(MinMaxScaler().fit(np.zeros((3, 18))), folder / "scaler.pkl")
    with pytest.raises(LegacyImportError, match=r"refusing to unpickle sklearn.preprocessing._data.MinMaxScaler"):
        import_legacy(folder, tmp_path / "models")
    shutil.copy(notebook["folder"] / "scaler.pkl", folder / "scaler.pkl")
    joblib.dump("0.5", folder / "threshold.pkl")
    with pytest.raises(LegacyImportError, match=r"threshold.pkl: a str, the notebook saved a number"):
        import_legacy(folder, tmp_path / "models")
    joblib.dump(np.float64(-1.0), folder / "threshold.pkl")
    with pytest.raises(LegacyImportError, match=r"positive finite number"):
        import_legacy(folder, tmp_path / "models")


def test_swapped_feature_order_is_refused_naming_the_positions(notebook, tmp_path):
    folder = _copy(notebook, tmp_path)
    info = joblib.load(folder / "feature_info.pkl")
    binary = info["binary_features"]
    binary[5], binary[6] = binary[6], binary[5]
    joblib.dump(info, folder / "feature_info.pkl")
    with pytest.raises(
        LegacyImportError,
        match=r"binary_features differ from the contract: position 5: file 'day_of_week_tue', contract "
        r"'day_of_week_mon'; position 6: file 'day_of_week_mon', contract 'day_of_week_tue'",
    ):
        import_legacy(folder, tmp_path / "models")


def test_scaler_fitted_in_another_order_or_width_is_refused(notebook, tmp_path):
    from sklearn.preprocessing import StandardScaler

    folder = _copy(notebook, tmp_path)
    frame = random_features(20, np.random.default_rng(3))[list(contract.CONTINUOUS_FEATURES)]
    swapped = [
        *contract.CONTINUOUS_FEATURES[:2],
        contract.CONTINUOUS_FEATURES[3],
        contract.CONTINUOUS_FEATURES[2],
        *contract.CONTINUOUS_FEATURES[4:],
    ]
    joblib.dump(StandardScaler().fit(frame[swapped]), folder / "scaler.pkl")
    with pytest.raises(LegacyImportError, match=r"position 2: file 'tap_interval_avg', contract 'touch_pressure'"):
        import_legacy(folder, tmp_path / "models")
    joblib.dump(StandardScaler().fit(frame.iloc[:, :17].to_numpy()), folder / "scaler.pkl")
    with pytest.raises(LegacyImportError, match=r"fitted on 17 features, the contract has 18"):
        import_legacy(folder, tmp_path / "models")


def _save_keras2(model, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is legacy"
        model.save(str(path))


def test_autoencoder_of_another_architecture_is_refused(notebook, tmp_path):
    import tf_keras as k2

    folder = _copy(notebook, tmp_path)
    inp = k2.layers.Input(shape=(30,), name="input")
    x = k2.layers.Dense(64, activation="relu", name="encoder_1")(inp)
    x = k2.layers.Dense(16, activation="relu", name="encoder_2")(x)
    x = k2.layers.Dense(32, activation="relu", name="decoder_1")(x)
    _save_keras2(k2.Model(inp, k2.layers.Dense(30, name="output")(x)), folder / "autoencoder_model.h5")
    with pytest.raises(
        LegacyImportError, match=r"autoencoder_model.h5: layer 0 'encoder_1' \(Dense\) has units=64, the notebook's 32"
    ):
        import_legacy(folder, tmp_path / "models")

    inp = k2.layers.Input(shape=(30,))
    _save_keras2(
        k2.Model(inp, k2.layers.Dense(30)(k2.layers.Dense(64, activation="relu")(inp))), folder / "autoencoder_model.h5"
    )
    with pytest.raises(LegacyImportError, match=r"layers \['Dense', 'Dense'\] differ from the notebook's"):
        import_legacy(folder, tmp_path / "models")


def test_lambda_layer_is_refused(notebook, tmp_path):
    import tf_keras as k2

    folder = _copy(notebook, tmp_path)
    inp = k2.layers.Input(shape=(30,))
    x = k2.layers.Lambda(lambda t: t * 2.0, name="sneaky")(inp)
    for units, activation in ((32, "relu"), (16, "relu"), (32, "relu"), (30, "linear")):
        x = k2.layers.Dense(units, activation=activation)(x)
    _save_keras2(k2.Model(inp, x), folder / "autoencoder_model.h5")
    with pytest.raises(LegacyImportError, match=r"autoencoder_model.h5: layer 0 'sneaky' is a Lambda layer"):
        import_legacy(folder, tmp_path / "models")


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ((("LSTM", 32), "dense"), r"layer 1 'lstm\w*' \(LSTM\) has units=32, the notebook's 64"),
        ((("LSTM", 64), "masked"), r"layer 0 'embedding\w*' \(Embedding\) has mask_zero=True, the notebook's False"),
        ((("GRU", 64), "dense"), r"layer 1 'gru\w*' is a GRU, not a layer of the notebooks' networks"),
    ],
)
def test_sequence_model_of_another_architecture_is_refused(notebook, tmp_path, layers, message):
    import tf_keras as k2

    folder = _copy(notebook, tmp_path)
    (recurrent, units), variant = layers
    model = k2.Sequential()
    model.add(k2.layers.Embedding(input_dim=9, output_dim=32, input_length=10, mask_zero=variant == "masked"))
    model.add(getattr(k2.layers, recurrent)(units))
    model.add(k2.layers.Dropout(0.2))
    model.add(k2.layers.Dense(1, activation="sigmoid"))
    _save_keras2(model, folder / "model_lstm.h5")
    with pytest.raises(LegacyImportError, match=rf"model_lstm.h5: {message}"):
        import_legacy(folder, tmp_path / "models")


def test_missing_file_is_named(notebook, tmp_path):
    folder = _copy(notebook, tmp_path)
    (folder / "threshold.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"threshold.pkl is missing"):
        import_legacy(folder, tmp_path / "models")
    with pytest.raises(ValueError, match=r"threshold.pkl is missing"):
        import_legacy(folder, tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_failed_import_leaves_the_promoted_versions(notebook, imported, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(imported[0], models)
    before = {name: artifacts.current_version(models, name) for name in (contract.AE_MODEL, contract.SEQ_MODEL)}
    folder = _copy(notebook, tmp_path)
    (folder / "model_lstm.h5").write_bytes(b"not hdf5")
    with pytest.raises(LegacyImportError, match=r"model_lstm.h5: not an HDF5 file"):
        import_legacy(folder, models)
    assert {name: artifacts.current_version(models, name) for name in before} == before
    assert sorted(p.name for p in (models / contract.AE_MODEL).iterdir()) == sorted(
        p.name for p in (imported[0] / contract.AE_MODEL).iterdir()
    )
