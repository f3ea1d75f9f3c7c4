"""Configuration: ``conf/base.yaml``, then overlays (``--conf FILE``), then ``--set key=value``.

A ``--set`` or overlay key that base.yaml does not define is an error (a typo must not be
silently ignored), except below ``spark.conf``, which takes any Spark setting.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = Path(os.environ.get("RAKSHA_CONF_DIR", REPO_ROOT / "conf"))
OPEN_SECTIONS = ("spark.conf",)  # keys below these are not checked against base.yaml


class ConfigError(ValueError):
    """A configuration file or override that does not fit base.yaml."""


def _merge(base: dict[str, Any], overlay: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        is_open = any(dotted.startswith(s + ".") for s in OPEN_SECTIONS)
        if key not in base and not is_open:
            raise ConfigError(f"unknown config key '{dotted}' (not in conf/base.yaml)")
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, dotted + ".")
        else:
            base[key] = copy.deepcopy(value)


def _parse_set(item: str) -> dict[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got '{item}'")
    key, raw = item.split("=", 1)
    key = key.strip()
    value = yaml.safe_load(raw) if raw.strip() else ""
    # spark.conf keys contain dots themselves: spark.conf.<spark key>
    if key.startswith("spark.conf."):
        return {"spark": {"conf": {key[len("spark.conf.") :]: value}}}
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


@dataclass(frozen=True)
class Config:
    """Resolved configuration; read values with ``cfg.get("paths.sessions")``."""

    data: dict[str, Any]

    def get(self, dotted: str, default: Any = KeyError) -> Any:
        cursor: Any = self.data
        for part in dotted.split("."):
            if not isinstance(cursor, Mapping) or part not in cursor:
                if default is KeyError:
                    raise ConfigError(f"missing config key '{dotted}'")
                return default
            cursor = cursor[part]
        return cursor

    def path(self, key: str) -> str:
        """``paths.<key>`` as an absolute path or URI (relative paths are taken from the cwd)."""
        return resolve_path(self.get(f"paths.{key}"))

    def with_overrides(self, sets: Iterable[str]) -> Config:
        data = copy.deepcopy(self.data)
        for item in sets:
            _merge(data, _parse_set(item))
        return Config(data)

    def digest(self) -> str:
        """Short hash of the resolved configuration, recorded with every run."""
        blob = json.dumps(self.data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def resolve_path(value: str) -> str:
    if "://" in value or value.startswith("file:"):
        return value
    return str(Path(value).expanduser().resolve())


def load_config(overlays: Iterable[str | Path] = (), sets: Iterable[str] = ()) -> Config:
    """base.yaml, each overlay file in order, then ``key=value`` overrides."""
    with open(CONF_DIR / "base.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    for overlay in overlays:
        with open(overlay, encoding="utf-8") as fh:
            content = yaml.safe_load(fh) or {}
        if not isinstance(content, Mapping):
            raise ConfigError(f"{overlay}: expected a mapping at the top level")
        try:
            _merge(data, content)
        except ConfigError as exc:
            raise ConfigError(f"{overlay}: {exc}") from None
    return Config(data).with_overrides(sets)
