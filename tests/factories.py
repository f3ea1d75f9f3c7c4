"""Small inline test data, written the way other producers would write it (pandas + pyarrow)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from raksha import contract

NORMAL_ACTIONS = ["LOGIN", "VIEW_BALANCE", "VIEW_TRANSACTIONS", "TRANSFER_SMALL", "LOGOUT"]


def random_features(n: int, rng: np.random.Generator) -> pd.DataFrame:
    data = {}
    for name in contract.CONTINUOUS_FEATURES:
        low, high = contract.feature_range(name)
        data[name] = rng.uniform(low, high, n)
    for name in contract.BINARY_FEATURES:
        data[name] = rng.integers(0, 2, n).astype("int32")
    return pd.DataFrame(data)


def sessions_frame(day: dt.date, n: int, seed: int = 0, prefix: str = "s") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(day.isoformat(), tz="UTC")
    frame = pd.DataFrame(
        {
            "session_id": [f"{prefix}{day:%Y%m%d}-{i:05d}" for i in range(n)],
            "user_id": [f"u{i % max(1, n // 3):04d}" for i in range(n)],
            "device_id": [f"d{i % max(1, n // 3):04d}" for i in range(n)],
            "session_start": start + pd.to_timedelta(rng.integers(0, 86_399, n), unit="s"),
        }
    )
    return pd.concat([frame, random_features(n, rng)], axis=1)


def actions_frame(sessions: pd.DataFrame, seed: int = 0, sequences: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Actions for each session: the given sequence, else LOGIN, random views, LOGOUT."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid, uid, start in zip(sessions["session_id"], sessions["user_id"], sessions["session_start"], strict=True):
        seq = (sequences or {}).get(sid)
        if seq is None:
            seq = ["LOGIN"] + list(rng.choice(NORMAL_ACTIONS[1:4], rng.integers(1, 6))) + ["LOGOUT"]
        for i, action in enumerate(seq):
            rows.append((sid, uid, start + pd.Timedelta(seconds=5 * (i + 1)), i + 1, action, None))
    return pd.DataFrame(rows, columns=["session_id", "user_id", "event_ts", "seq_no", "action", "amount"]).astype(
        {"seq_no": "int32", "amount": "float64"}
    )


def write_partition(frame: pd.DataFrame, root: Path | str, day: dt.date, name: str = "part-0.parquet") -> Path:
    folder = Path(root) / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    return path


def write_untrained_models(
    models_root: Path | str,
    seed: int = 0,
    broken_autoencoder: bool = False,
    broken_sequence: bool = False,
    ae_threshold: float = 1.0,
) -> None:
    """Promoted versions of both notebook networks with initial weights (plumbing tests only).

    ``broken_autoencoder`` / ``broken_sequence``: that model's last layer's bias is NaN, so every
    output is NaN.
    """
    import keras

    from raksha.features.behavior import Scaler
    from raksha.models import architectures, artifacts

    keras.utils.set_random_seed(seed)
    n = len(contract.CONTINUOUS_FEATURES)
    scaler = Scaler(np.full(n, 0.5), np.full(n, 0.25))
    artifacts.write_version(
        models_root,
        contract.AE_MODEL,
        {
            "model.keras": _model_bytes(architectures.build_autoencoder(), broken_autoencoder),
            "scaler.json": json.dumps(scaler.to_json()).encode(),
        },
        {"threshold": ae_threshold, "source": "test-untrained"},
        promote_it=True,
    )
    artifacts.write_version(
        models_root,
        contract.SEQ_MODEL,
        {"model.keras": _model_bytes(architectures.build_sequence_model(), broken_sequence)},
        {"block_threshold": 0.8, "source": "test-untrained"},
        promote_it=True,
    )


def _model_bytes(model, broken: bool) -> bytes:
    """``model`` as ``.keras`` bytes, its last layer's bias NaN when ``broken``."""
    from raksha.models import architectures

    if broken:
        last = model.layers[-1]
        kernel, bias = last.get_weights()
        last.set_weights([kernel, np.full_like(bias, np.nan)])
    return architectures.model_to_bytes(model)


def read_table_day(cfg, table: str, day: dt.date | str) -> pd.DataFrame:
    """A published day of an output table as a tool outside Spark reads it: through delta-rs
    (the ``deltalake`` package), never by globbing Parquet files (a replaced run's files stay
    until vacuum). Without the dt column, as pandas read one dt= folder before."""
    from deltalake import DeltaTable

    path = Path(cfg.path("warehouse")) / table
    frame = DeltaTable(str(path)).to_pandas(partitions=[("dt", "=", str(day))])
    return frame.drop(columns=["dt"]).reset_index(drop=True)


def cli_sets(cfg, *extra: str) -> list[str]:
    """``--set`` arguments that point a command at ``cfg``'s paths and catalog database, then ``extra``
    (``key=value`` settings)."""
    sets = [f"paths.{key}={cfg.path(key)}" for key in cfg.get("paths")]
    sets += [f"catalog.database={cfg.get('catalog.database')}"]
    sets += [f"baseline.enabled={str(cfg.get('baseline.enabled')).lower()}", *extra]  # as the in-process runs
    return [arg for item in sets for arg in ("--set", item)]


def scored_rows(spark, day: dt.date, ids: list[str], run_id: str):
    """scored_sessions rows as the job writes them (within the table's CHECK constraints)."""
    start = dt.datetime.combine(day, dt.time(12))
    at = dt.datetime.combine(day, dt.time(23))
    rows = [
        (sid, "u1", "d1", start, 0.1, 0.2, 0, 50.0, None, 0.1, 0, 0.1, 1, 10.0, "ALLOW", [], [], 5, 0, "ae", "seq")
        + (run_id, at)
        + (None,) * len(contract.CHALLENGER_FIELDS)
        + (None,)  # user_baseline_score
        for sid in ids
    ]
    return spark.createDataFrame(rows, contract.SCORED_SESSIONS_SCHEMA)
