"""Variant d, in the child process ``bench/run.py --child d``: the notebooks' per-row scoring, timed.

The functions timed are the notebooks' own ``score_session`` (autoencoder notebook, section 8) and
``predict_session_risk`` (LSTM notebook, part 5), as the tests hold them in ``tests/notebook_reference.py``
(the one copy), called as the notebooks call them, with the shipped models and a scikit-learn
``StandardScaler`` holding the shipped scaler. One Python process, no Spark.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

from settings import DAY, MODELS, NOTEBOOK_REFERENCE, NOTEBOOK_SAMPLE


def notebook_reference() -> ModuleType:
    """``tests/notebook_reference.py``, imported by its path (as ``notebook_reference``, the tests' name).

    It imports tf_keras (Keras 2) next to the Keras 3 that loads the shipped models, as the tests do;
    its ``pad_sequences`` is Keras 2's, the models are called through their own ``predict``.
    """
    if "notebook_reference" in sys.modules:
        return sys.modules["notebook_reference"]
    spec = importlib.util.spec_from_file_location("notebook_reference", NOTEBOOK_REFERENCE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {NOTEBOOK_REFERENCE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def child_notebook(raw: Path, sessions: int, result_path: Path, sample: int = NOTEBOOK_SAMPLE) -> None:
    """Time the notebooks' per-row scoring of ``sample`` sessions of the day under ``raw``; extrapolate to
    ``sessions``."""
    import pandas as pd
    import pyarrow.dataset as ds

    from raksha import contract
    from raksha.features.behavior import Scaler
    from raksha.models import artifacts
    from raksha.models.architectures import model_from_bytes

    day = f"dt={DAY.isoformat()}"
    frame = pd.read_parquet(raw / "sessions" / day)
    picked = frame.sample(n=min(sample, len(frame)), random_state=0).reset_index(drop=True)
    ids = picked["session_id"].tolist()
    actions = (
        ds.dataset(raw / "action_log" / day)
        .to_table(filter=ds.field("session_id").isin(ids))
        .to_pandas()
        .sort_values(["session_id", "event_ts", "seq_no"])
    )
    by_session = actions.groupby("session_id")["action"].apply(list).to_dict()
    picked[list(contract.FEATURES)] = picked[list(contract.FEATURES)].fillna(0)  # the notebook's fillna(0)

    ae = artifacts.load_version(MODELS, contract.AE_MODEL)
    seq = artifacts.load_version(MODELS, contract.SEQ_MODEL)
    autoencoder = model_from_bytes(ae.files["model.keras"], "autoencoder")
    lstm = model_from_bytes(seq.files["model.keras"], "lstm")
    fitted = Scaler.from_json(json.loads(ae.files["scaler.json"]))
    scaler = fitted.to_sklearn()  # the notebook's fitted StandardScaler, from the shipped means and scales
    threshold = float(ae.threshold)
    clock = time.monotonic()
    nb = notebook_reference()
    import_s = time.monotonic() - clock  # tf_keras on top of Keras 3: not in the timing below

    # one warm-up call each (graph tracing), which the notebook paid once per kernel
    first = picked.iloc[0].to_dict()
    nb.score_session(first, autoencoder, scaler, threshold)
    nb.predict_session_risk(by_session.get(first["session_id"], []), lstm)

    clock = time.monotonic()
    for _, row in picked.iterrows():
        session = row.to_dict()
        nb.score_session(session, autoencoder, scaler, threshold)
        nb.predict_session_risk(by_session.get(session["session_id"], []), lstm)
    sample_s = time.monotonic() - clock
    per_session = sample_s / len(picked)
    payload = {
        "variant": "notebook",
        "wall_s": per_session * sessions,
        "extrapolated": True,
        "sample_sessions": len(picked),
        "sample_s": sample_s,
        "seconds_per_session": per_session,
        "notebook_reference_import_s": import_s,
    }
    result_path.write_text(json.dumps(payload, indent=2) + "\n")
