"""Configuration: ``conf/base.yaml``, then overlays (``--conf FILE``), then ``--set key=value``.

A ``--set`` or overlay key that base.yaml does not define is an error (a typo must not be
silently ignored), except below ``spark.conf``, which takes any Spark setting. Every key has a
type and a range (``Settings`` below), checked when the configuration is loaded, before anything
is read: ``--set review.capacity=abc`` fails naming the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
# conf/ is installed as the package raksha.conf (setup.py): found the same in a checkout, an installed
# wheel and the environment `raksha submit` ships to a cluster
CONF_DIR = Path(os.environ.get("RAKSHA_CONF_DIR") or str(resources.files("raksha.conf")))
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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


Positive = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0, le=1)]


class _Paths(_Section):
    sessions: Annotated[str, Field(min_length=1)]
    actions: Annotated[str, Field(min_length=1)]
    labels: Annotated[str, Field(min_length=1)]
    warehouse: Annotated[str, Field(min_length=1)]
    models: Annotated[str, Field(min_length=1)]
    metastore: Annotated[str, Field(min_length=1)]


class _Spark(_Section):
    master: str | None
    app_name: str
    sessions_per_shuffle_partition: Annotated[int, Field(ge=0)]
    conf: dict[str, Any] | None


class _Challenger(_Section):
    behavior_autoencoder: str | None
    sequence_lstm: str | None


class _Models(_Section):
    challenger: _Challenger


class _Postgres(_Section):
    url: Annotated[str, Field(pattern=r"^jdbc:postgresql://")]
    user: Annotated[str, Field(min_length=1)]
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Catalog(_Section):
    database: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    metastore: Literal["derby", "postgres"]
    postgres: _Postgres


Port = Annotated[int, Field(ge=1, le=65535)]


class _SqlServer(_Section):
    host: Annotated[str, Field(min_length=1)]
    port: Port


class _ConnectServer(_Section):
    port: Port
    token_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Servers(_Section):
    start_timeout_s: Annotated[float, Field(gt=0)]
    sql: _SqlServer
    connect: _ConnectServer


class _Scoring(_Section):
    threads_per_worker: Positive
    runtime: Literal["onnx", "keras"]
    max_windows_per_session: Positive


class _Decision(_Section):
    # each rule's keys, outcome and condition are checked against the scored columns by
    # raksha.decide.decisions.validate_policy, the first step of every run
    rules: list[dict[str, Any]]
    default: str


class _Publish(_Section):
    retention_days: Annotated[float, Field(ge=0)]
    commit_wait_s: Annotated[float, Field(ge=0)]


class _Privacy(_Section):
    location_decimals: Annotated[int, Field(ge=0, le=8)] | None
    keep_network_ids: bool
    pseudonym_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Review(_Section):
    capacity: Annotated[int, Field(ge=0)]
    audit_rate: Share


class _Report(_Section):
    enabled: bool
    dir: Annotated[str, Field(min_length=1)] | None
    trend_runs: Positive
    top_reasons: Positive


class _Baseline(_Section):
    enabled: bool
    half_life_days: Annotated[float, Field(gt=0)]
    prior_sessions: Annotated[float, Field(gt=0)]
    variance_floor: Annotated[float, Field(gt=0, le=1)]
    feature_cap: Annotated[float, Field(gt=0)]
    hour_cap: Annotated[float, Field(ge=0)]
    hour_floor_hours: Annotated[float, Field(gt=0, le=12)]
    new_device_weight: Annotated[float, Field(ge=0)]
    new_network_weight: Annotated[float, Field(ge=0)]
    new_place_weight: Annotated[float, Field(ge=0)]
    place_cell: Annotated[float, Field(gt=0, le=1)]
    winsorize_sd: Annotated[float, Field(gt=0)]
    max_devices: Positive
    max_networks: Positive
    max_places: Positive
    forget_after_days: Positive
    keep_days: Positive


class _Exports(_Section):
    behavior_max_risk_score: Annotated[float, Field(ge=0, le=100)]


class _Generate(_Section):
    attack_rate: Share
    seed: int
    users_per_1000_sessions: Positive


class _Autoencoder(_Section):
    epochs: Positive
    batch_size: Positive
    patience: Annotated[int, Field(ge=0)]
    test_size: Annotated[float, Field(gt=0, lt=1)]
    validation_split: Annotated[float, Field(ge=0, lt=1)]


class _Sequence(_Section):
    epochs: Positive
    batch_size: Positive
    test_size: Annotated[float, Field(gt=0, lt=1)]


class _Training(_Section):
    max_rows: Positive
    seed: int
    autoencoder: _Autoencoder
    sequence: _Sequence


class Settings(_Section):
    """Every configuration key with its type and range (the keys of conf/base.yaml)."""

    paths: _Paths
    spark: _Spark
    models: _Models
    catalog: _Catalog
    servers: _Servers
    scoring: _Scoring
    decision: _Decision
    publish: _Publish
    privacy: _Privacy
    review: _Review
    report: _Report
    baseline: _Baseline
    exports: _Exports
    generate: _Generate
    training: _Training


def check(data: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first key whose value has the wrong type or range."""
    try:
        Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        got = first.get("input")
        raise ConfigError(f"config key '{key}': {first['msg']} (got {got!r})") from None


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
        check(data)
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
