"""Model versions on disk (DESIGN.md section 6).

``{paths.models}/{name}/{version}/`` holds the model files and ``manifest.json`` (name,
version, created_at, library versions, the contract the model was built for, threshold,
training window and counts, metrics, the drift reference of a trained version, and the sha256
of every file). ``{name}/CURRENT``
names the promoted version.

Loading reads every file into memory and checks its sha256 against the manifest *before*
anything is deserialized, so what is later deserialized is exactly the verified bytes. The driver
does the reading, by URI (``file:``, ``hdfs:``, ``s3a:`` through Hadoop's FileSystem API: pass a
``raksha.platform.storage.Storage``; local paths need nothing), and broadcasts the bytes: executors
never open a model path.
The promoted formats need no pickle: Keras 3 ``.keras`` files (loaded in safe mode) and the
scaler's means and scales as JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from raksha import contract
from raksha.platform.uris import join, local_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CURRENT = "CURRENT"


class ArtifactError(RuntimeError):
    """A model version that is missing, tampered with, or built for another contract."""


class ModelFiles(Protocol):
    """Where model versions live: ``Storage`` (any Hadoop filesystem) or ``LocalFiles``."""

    def exists(self, path: str) -> bool: ...

    def read_bytes(self, path: str) -> bytes: ...

    def write_bytes(self, path: str, data: bytes) -> str: ...


class LocalFiles:
    """Local paths and ``file:`` URIs, without Spark (import-legacy, promote, tests)."""

    def _os_path(self, path: str) -> Path:
        local = local_path(path)
        if local is None:
            raise ArtifactError(f"{path}: models on a cluster filesystem are read through Spark (not a local path)")
        return Path(local)

    def exists(self, path: str) -> bool:
        return self._os_path(path).exists()

    def read_bytes(self, path: str) -> bytes:
        return self._os_path(path).read_bytes()

    def write_bytes(self, path: str, data: bytes) -> str:
        target = self._os_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # a reader sees the old file or the new one
        return str(target)


@dataclass(frozen=True)
class ModelVersion:
    """A verified model version: its manifest and the bytes of every file it lists."""

    name: str
    version: str
    manifest: dict[str, Any]
    files: Mapping[str, bytes] = field(repr=False)

    @property
    def checksums(self) -> dict[str, str]:
        return dict(self.manifest["files"])

    @property
    def threshold(self) -> float | None:
        value = self.manifest.get("threshold")
        return None if value is None else float(value)

    @property
    def drift_reference(self) -> dict[str, Any] | None:
        """The binned training data the nightly report measures drift against (``raksha.pipeline.drift``);
        None for a version that carries none (imported from the notebooks, or older)."""
        value = self.manifest.get("drift_reference")
        return dict(value) if isinstance(value, Mapping) else None

    @property
    def risk_score_cut(self) -> float | None:
        """The combined-score cut ``raksha calibrate`` set for this version (None without one)."""
        value = (self.manifest.get("alert_budget") or {}).get("risk_score_cut")
        return None if value is None else float(value)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {}
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scikit-learn", "pyspark"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return versions


def new_version_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("v%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


def contract_fields(name: str) -> dict[str, Any]:
    """What a model of ``name`` must agree on with the data contract."""
    if name == contract.AE_MODEL:
        return {
            "continuous_features": list(contract.CONTINUOUS_FEATURES),
            "binary_features": list(contract.BINARY_FEATURES),
        }
    if name == contract.SEQ_MODEL:
        return {"vocabulary": dict(contract.ACTIONS), "max_seq_length": contract.MAX_SEQ_LENGTH}
    raise ArtifactError(f"unknown model name '{name}'")


def write_version(
    models_root: str | Path,
    name: str,
    files: Mapping[str, bytes],
    manifest_fields: Mapping[str, Any],
    promote_it: bool = False,
    store: ModelFiles | None = None,
) -> ModelVersion:
    """Write a new version of ``name`` (files, then the manifest last) and optionally promote it."""
    store = store or LocalFiles()
    version = new_version_id()
    folder = join(str(models_root), name, version)
    if store.exists(folder):
        raise ArtifactError(f"model {name}/{version}: {folder} exists already")
    for filename, data in files.items():
        store.write_bytes(join(folder, filename), data)
    manifest = {
        "name": name,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "library_versions": library_versions(),
        "contract": contract_fields(name),
        **dict(manifest_fields),
        "files": {filename: sha256_bytes(data) for filename, data in files.items()},
    }
    store.write_bytes(join(folder, MANIFEST), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    log.info("wrote model version %s/%s", name, version)
    if promote_it:
        promote(models_root, name, version, store)
    return ModelVersion(name, version, manifest, dict(files))


def promote(models_root: str | Path, name: str, version: str, store: ModelFiles | None = None) -> None:
    """Point ``{name}/CURRENT`` at ``version`` (atomic replace); the version must load cleanly."""
    store = store or LocalFiles()
    load_version(models_root, name, version, store)
    store.write_bytes(join(str(models_root), name, CURRENT), (version + "\n").encode())
    log.info("promoted %s/%s", name, version)


def current_version(models_root: str | Path, name: str, store: ModelFiles | None = None) -> str:
    store = store or LocalFiles()
    pointer = join(str(models_root), name, CURRENT)
    if not store.exists(pointer):
        raise ArtifactError(f"no promoted version of '{name}': {pointer} is missing")
    return store.read_bytes(pointer).decode().strip()


def load_version(
    models_root: str | Path, name: str, version: str | None = None, store: ModelFiles | None = None
) -> ModelVersion:
    """Read and verify a version (the promoted one by default). Nothing is deserialized here."""
    store = store or LocalFiles()
    version = version or current_version(models_root, name, store)
    folder = join(str(models_root), name, version)
    manifest_path = join(folder, MANIFEST)
    if not store.exists(manifest_path):
        raise ArtifactError(f"model {name}/{version}: {manifest_path} is missing")
    try:
        manifest = json.loads(store.read_bytes(manifest_path))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"model {name}/{version}: {manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("name") != name or manifest.get("version") != version:
        raise ArtifactError(f"model {name}/{version}: manifest names {manifest.get('name')}/{manifest.get('version')}")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise ArtifactError(f"model {name}/{version}: manifest lists no files")
    files: dict[str, bytes] = {}
    for filename, expected in sorted(listed.items()):
        if Path(filename).name != filename:
            raise ArtifactError(f"model {name}/{version}: file name '{filename}' is not a plain name")
        path = join(folder, filename)
        if not store.exists(path):
            raise ArtifactError(f"model {name}/{version}: file {path} is missing")
        data = store.read_bytes(path)
        actual = sha256_bytes(data)
        if actual != expected:
            raise ArtifactError(
                f"model {name}/{version}: checksum mismatch for {path} "
                f"(manifest {expected[:12]}..., file {actual[:12]}...)"
            )
        files[filename] = data
    check_contract(name, version, manifest)
    return ModelVersion(name, version, manifest, files)


def check_contract(name: str, version: str, manifest: Mapping[str, Any]) -> None:
    """Refuse a model whose feature order or vocabulary differs from the contract, saying how."""
    expected = contract_fields(name)
    actual = manifest.get("contract") or {}
    for key, want in expected.items():
        got = actual.get(key)
        if got == want:
            continue
        if isinstance(want, list) and isinstance(got, list):
            pairs = enumerate(zip(got, want, strict=False))
            diff = [f"position {i}: model has '{g}', contract '{w}'" for i, (g, w) in pairs if g != w]
            if len(got) != len(want):
                diff.append(f"model has {len(got)} names, contract {len(want)}")
            detail = "; ".join(diff[:3])
        elif isinstance(want, dict) and isinstance(got, dict):
            keys = sorted(set(want) | set(got))
            detail = "; ".join(
                f"'{k}': model {got.get(k)}, contract {want.get(k)}" for k in keys if got.get(k) != want.get(k)
            )
        else:
            detail = f"model has {got!r}, contract {want!r}"
        raise ArtifactError(f"model {name}/{version}: {key} differs from the data contract: {detail}")
