from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from raksha import contract
from raksha.models import artifacts


def _write(root: Path, name: str = contract.SEQ_MODEL, **fields):
    return artifacts.write_version(root, name, {"model.keras": b"weights", "extra.json": b"{}"}, fields)


def test_written_version_loads_with_every_checksum_checked(tmp_path):
    version = _write(tmp_path, block_threshold=0.8)
    artifacts.promote(tmp_path, version.name, version.version)
    loaded = artifacts.load_version(tmp_path, contract.SEQ_MODEL)
    assert loaded.version == version.version
    assert loaded.files == {"model.keras": b"weights", "extra.json": b"{}"}
    assert loaded.manifest["contract"]["vocabulary"] == contract.ACTIONS
    assert set(loaded.manifest) >= {"name", "version", "created_at", "library_versions", "files"}


def test_one_changed_byte_is_refused_naming_the_file(tmp_path):
    version = _write(tmp_path)
    path = tmp_path / version.name / version.version / "model.keras"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(artifacts.ArtifactError, match=r"checksum mismatch for .*model.keras"):
        artifacts.load_version(tmp_path, version.name, version.version)


def test_missing_file_and_missing_pointer_are_errors(tmp_path):
    version = _write(tmp_path)
    (tmp_path / version.name / version.version / "extra.json").unlink()
    with pytest.raises(artifacts.ArtifactError, match=r"extra.json is missing"):
        artifacts.load_version(tmp_path, version.name, version.version)
    with pytest.raises(artifacts.ArtifactError, match=r"no promoted version"):
        artifacts.load_version(tmp_path, version.name)


def test_feature_order_differing_from_the_contract_is_refused_saying_where(tmp_path):
    version = artifacts.write_version(tmp_path, contract.AE_MODEL, {"scaler.json": b"{}"}, {"threshold": 1.0})
    manifest_path = tmp_path / version.name / version.version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    order = manifest["contract"]["continuous_features"]
    order[0], order[1] = order[1], order[0]
    manifest_path.write_text(json.dumps(manifest))
    expected = r"position 0: model has 'swipe_velocity', contract 'tap_duration'"
    with pytest.raises(artifacts.ArtifactError, match=expected):
        artifacts.load_version(tmp_path, version.name, version.version)


def test_vocabulary_differing_from_the_contract_is_refused(tmp_path):
    version = _write(tmp_path)
    manifest_path = tmp_path / version.name / version.version / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["contract"]["vocabulary"]["LOGOUT"] = 9
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(artifacts.ArtifactError, match=r"'LOGOUT': model 9, contract 8"):
        artifacts.load_version(tmp_path, version.name, version.version)


class _Payload:
    """A pickle that, when loaded, would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _real_versions(root: Path) -> None:
    import factories

    factories.write_untrained_models(root)


@pytest.mark.parametrize("fix_manifest", [False, True], ids=["checksum-stale", "checksum-updated-too"])
def test_scaler_replaced_by_a_malicious_pickle_never_runs(tmp_path, fix_manifest):
    import hashlib
    import pickle

    from raksha.scoring.scorers import BehaviorScorer

    _real_versions(tmp_path / "models")
    marker = tmp_path / "pwned"
    version = artifacts.current_version(tmp_path / "models", contract.AE_MODEL)
    folder = tmp_path / "models" / contract.AE_MODEL / version
    payload = pickle.dumps(_Payload(marker))
    (folder / "scaler.json").write_bytes(payload)
    if fix_manifest:  # an attacker who also rewrites the manifest's checksum
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"]["scaler.json"] = hashlib.sha256(payload).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises((artifacts.ArtifactError, ValueError)):
        BehaviorScorer(artifacts.load_version(tmp_path / "models", contract.AE_MODEL))
    assert not marker.exists()


@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_a_model_file_carrying_code_is_refused_and_the_code_never_runs(tmp_path, runtime):
    """A ``.keras`` file is a deserialization path: a Lambda layer carries marshalled Python code.
    Both runtimes refuse it before anything of it runs (Keras' safe mode, the allowed layers)."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    from raksha.models import architectures, runtimes

    marker = tmp_path / "pwned"
    inputs = keras.Input(shape=(30,))
    code = f"lambda x: x + float(bool(__import__('pathlib').Path({str(marker)!r}).touch()))"
    hidden = keras.layers.Lambda(eval(code))(inputs)  # noqa: S307 - the attacker's layer, built here
    model = keras.Model(inputs, keras.layers.Dense(30)(hidden))
    model(np.zeros((1, 30), dtype=np.float32))  # the layer runs once here: the marker exists now
    assert marker.exists()
    marker.unlink()
    data = architectures.model_to_bytes(model)
    with pytest.raises(Exception, match=r"(?i)lambda|not allowed|unsafe|safe_mode|unsupported"):
        runtimes.load(data, contract.AE_MODEL, 30, runtime)
    assert not marker.exists()


def test_the_sequence_scorer_blocks_at_its_version_s_threshold(tmp_path):
    """seq_is_block follows the block_threshold the version's manifest records (0.8, the notebook's,
    for the shipped and imported versions), not a constant of the code."""
    from raksha.scoring.scorers import SequenceScorer

    repo = Path(__file__).resolve().parent.parent
    shipped = artifacts.load_version(repo / "models", contract.SEQ_MODEL)
    assert shipped.manifest["block_threshold"] == 0.8
    fields = {k: v for k, v in shipped.manifest.items() if k not in ("name", "version", "created_at", "files")}
    lower = artifacts.write_version(tmp_path, contract.SEQ_MODEL, shipped.files, {**fields, "block_threshold": 0.3})
    rng = np.random.default_rng(0)
    tokens = [list(rng.integers(1, len(contract.ACTIONS) + 1, rng.integers(1, 11))) for _ in range(400)]
    at_08 = SequenceScorer(shipped).score(tokens, with_reasons=False)
    at_03 = SequenceScorer(artifacts.load_version(tmp_path, contract.SEQ_MODEL, lower.version)).score(
        tokens, with_reasons=False
    )
    np.testing.assert_array_equal(at_08["seq_risk"], at_03["seq_risk"])
    assert (at_08["seq_is_block"] == (at_08["seq_risk"] > 0.8)).all()
    assert (at_03["seq_is_block"] == (at_03["seq_risk"] > 0.3)).all()
    assert at_03["seq_is_block"].sum() > at_08["seq_is_block"].sum()


def test_models_are_reached_by_uri_through_the_hadoop_filesystem(spark, tmp_path):
    """A ``file:`` URI root, written, promoted and read through Storage (Hadoop's FileSystem API, what
    the job uses for hdfs: and s3a: too); joins keep a URI's scheme and authority (pathlib made
    ``hdfs://nn/models`` into ``hdfs:/nn/models``), and without Spark a cluster URI is refused by name."""
    from raksha.platform.storage import Storage
    from raksha.platform.uris import join

    root = f"file://{tmp_path}/models"
    store = Storage(spark)
    version = artifacts.write_version(root, contract.SEQ_MODEL, {"model.keras": b"w"}, {}, promote_it=True, store=store)
    assert (tmp_path / "models" / contract.SEQ_MODEL / "CURRENT").read_text().strip() == version.version
    loaded = artifacts.load_version(root, contract.SEQ_MODEL, store=store)
    assert loaded.version == version.version and loaded.files == {"model.keras": b"w"}

    assert (
        join("hdfs://nn:8020/raksha/models/", "sequence_lstm", "v1") == "hdfs://nn:8020/raksha/models/sequence_lstm/v1"
    )
    with pytest.raises(artifacts.ArtifactError, match=r"hdfs://nn:8020/raksha/models/sequence_lstm/CURRENT: models on"):
        artifacts.load_version("hdfs://nn:8020/raksha/models", contract.SEQ_MODEL)
