"""Importing the notebooks' files: what is refused, and why, before anything runs."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import shutil
from pathlib import Path

import joblib
import pytest

import factories
import notebook_reference as nb
from raksha import artifacts, contract
from raksha.legacy import LegacyImportError, import_legacy


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb")
    train = factories.sessions_frame(dt.date(2026, 1, 1), 200, seed=1)[list(contract.FEATURES)]
    nb.save_notebook_autoencoder_files(folder, *nb.train_notebook_autoencoder(train, epochs=1))
    nb.save_notebook_lstm(folder, nb.train_notebook_lstm(epochs=1, n_normal=100, n_attack=20))
    return folder


def _copy(files: Path, tmp_path: Path) -> Path:
    target = tmp_path / "files"
    shutil.copytree(files, target)
    return target


class Marker:
    """A pickle that would create a file when loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_import_writes_promoted_versions_without_pickles(files, tmp_path):
    ae, seq = import_legacy(files, tmp_path / "models")
    assert artifacts.current_version(tmp_path / "models", contract.AE_MODEL) == ae.version
    assert artifacts.current_version(tmp_path / "models", contract.SEQ_MODEL) == seq.version
    assert set(ae.files) == {"model.keras", "scaler.json"} and set(seq.files) == {"model.keras"}
    assert ae.manifest["source"]["kind"] == "legacy-import"
    assert float(joblib.load(files / "threshold.pkl")) == ae.threshold


def test_malicious_scaler_pickle_is_refused_and_never_runs(files, tmp_path):
    folder = _copy(files, tmp_path)
    marker = tmp_path / "pwned"
    joblib.dump(Marker(str(marker)), folder / "scaler.pkl")
    with pytest.raises(LegacyImportError, match=r"refusing to unpickle posix.system"):
        import_legacy(folder, tmp_path / "models")
    assert not marker.exists()
    with open(folder / "threshold.pkl", "wb") as fh:  # plain pickle, same refusal
        pickle.dump(Marker(str(marker)), fh)
    with pytest.raises(LegacyImportError):
        import_legacy(folder, tmp_path / "models")
    assert not marker.exists()
    assert not (tmp_path / "models").exists()


def test_swapped_feature_order_is_refused_naming_the_positions(files, tmp_path):
    folder = _copy(files, tmp_path)
    info = joblib.load(folder / "feature_info.pkl")
    cont = info["continuous_features"]
    cont[2], cont[3] = cont[3], cont[2]
    joblib.dump(info, folder / "feature_info.pkl")
    with pytest.raises(LegacyImportError, match=r"position 2: file 'tap_interval_avg', contract 'touch_pressure'"):
        import_legacy(folder, tmp_path / "models")


def test_other_architecture_is_refused(files, tmp_path):
    import tf_keras as k2

    folder = _copy(files, tmp_path)
    inp = k2.layers.Input(shape=(30,))
    out = k2.layers.Dense(30)(k2.layers.Dense(64, activation="relu")(inp))
    k2.Model(inp, out).save(str(folder / "autoencoder_model.h5"))
    with pytest.raises(LegacyImportError, match=r"layers \['Dense', 'Dense'\] differ from the notebook's"):
        import_legacy(folder, tmp_path / "models")


def test_missing_file_is_named(files, tmp_path):
    folder = _copy(files, tmp_path)
    (folder / "model_lstm.h5").unlink()
    with pytest.raises(LegacyImportError, match=r"model_lstm.h5 is missing"):
        import_legacy(folder, tmp_path / "models")
