"""Model versions on disk (DESIGN.md section 6).

``{paths.models}/{name}/{version}/`` holds the model files and ``manifest.json`` (name,
version, created_at, library versions, the contract the model was built for, threshold,
training window and counts, metrics, and the sha256 of every file). ``{name}/CURRENT``
names the promoted version.

Loading reads every file into memory and checks its sha256 against the manifest *before*
anything is deserialized, so what is later deserialized is exactly the verified bytes.
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
from typing import Any

from raksha import contract

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CURRENT = "CURRENT"


class ArtifactError(RuntimeError):
    """A model version that is missing, tampered with, or built for another contract."""


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
) -> ModelVersion:
    """Write a new version of ``name`` (files, then the manifest last) and optionally promote it."""
    version = new_version_id()
    folder = Path(models_root) / name / version
    folder.mkdir(parents=True, exist_ok=False)
    for filename, data in files.items():
        (folder / filename).write_bytes(data)
    manifest = {
        "name": name,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "library_versions": library_versions(),
        "contract": contract_fields(name),
        **dict(manifest_fields),
        "files": {filename: sha256_bytes(data) for filename, data in files.items()},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("wrote model version %s/%s", name, version)
    if promote_it:
        promote(models_root, name, version)
    return ModelVersion(name, version, manifest, dict(files))


def promote(models_root: str | Path, name: str, version: str) -> None:
    """Point ``{name}/CURRENT`` at ``version`` (atomic replace); the version must load cleanly."""
    load_version(models_root, name, version)
    pointer = Path(models_root) / name / CURRENT
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(version + "\n")
    os.replace(tmp, pointer)
    log.info("promoted %s/%s", name, version)


def current_version(models_root: str | Path, name: str) -> str:
    pointer = Path(models_root) / name / CURRENT
    if not pointer.is_file():
        raise ArtifactError(f"no promoted version of '{name}': {pointer} is missing")
    return pointer.read_text().strip()


def load_version(models_root: str | Path, name: str, version: str | None = None) -> ModelVersion:
    """Read and verify a version (the promoted one by default). Nothing is deserialized here."""
    version = version or current_version(models_root, name)
    folder = Path(models_root) / name / version
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"model {name}/{version}: {manifest_path} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"model {name}/{version}: {manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("name") != name or manifest.get("version") != version:
        raise ArtifactError(f"model {name}/{version}: manifest names {manifest.get('name')}/{manifest.get('version')}")
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise ArtifactError(f"model {name}/{version}: manifest lists no files")
    files: dict[str, bytes] = {}
    for filename, expected in sorted(listed.items()):
        path = folder / filename
        if Path(filename).name != filename:
            raise ArtifactError(f"model {name}/{version}: file name '{filename}' is not a plain name")
        if not path.is_file():
            raise ArtifactError(f"model {name}/{version}: file {path} is missing")
        data = path.read_bytes()
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
