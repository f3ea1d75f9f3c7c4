"""Banks that ran the notebooks keep their models: Keras 2 files in, the notebooks' numbers out.

The notebooks' pipelines are rebuilt with Keras 2 (tf-keras), their five files saved as the
notebooks saved them, imported with ``raksha import-legacy``, and a day of sessions and
sequences is scored by the Spark job. Every row must equal the notebooks' own per-row
functions (``score_session``, ``predict_session_risk``) to 1e-5 relative.
"""

from __future__ import annotations

import datetime as dt

import factories
import notebook_reference as nb
import numpy as np
import pytest

from raksha import cli, contract
from raksha.pipeline.daily import run
from raksha.platform import tables

DAY = dt.date(2026, 7, 8)
RTOL = 1e-5


@pytest.fixture(scope="module")
def notebook_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook_files")
    train = factories.sessions_frame(DAY - dt.timedelta(days=1), 600, seed=11)
    autoencoder, scaler, threshold = nb.train_notebook_autoencoder(train[list(contract.FEATURES)], epochs=3)
    nb.save_notebook_autoencoder_files(folder, autoencoder, scaler, threshold)
    lstm = nb.train_notebook_lstm(epochs=2, seed=3, n_normal=600, n_attack=120)
    nb.save_notebook_lstm(folder, lstm)
    return folder, autoencoder, scaler, threshold, lstm


def _sequences(ids: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    names = list(contract.ACTIONS) + ["OPEN_SUPPORT_CHAT", "VIEW_CARD"]
    out = {}
    for i, sid in enumerate(ids):
        length = [0, 1, 3, 4, 7, 10, 11, 14, 25][i % 9]
        out[sid] = list(rng.choice(names, length))
    out[ids[1]] = list(nb.SEQ2)
    out[ids[2]] = list(nb.SEQ3)
    return out


def test_imported_notebook_models_score_like_the_notebooks(spark, cfg, notebook_files):
    folder, autoencoder, scaler, threshold, lstm = notebook_files
    assert cli.main(["import-legacy", "--from", str(folder), *[f"--set=paths.models={cfg.path('models')}"]]) == 0

    sessions = factories.sessions_frame(DAY, 300, seed=12)
    rng = np.random.default_rng(12)
    sessions["charging_state"] = sessions["charging_state"].astype("Int32")  # nullable int, as Parquet allows
    for column in ("gps_latitude", "wifi_id_hash", "charging_state"):  # missing values are filled with 0
        sessions.loc[rng.choice(300, 20, replace=False), column] = None
    sequences = _sequences(list(sessions["session_id"]), rng)
    actions = factories.actions_frame(sessions, sequences=sequences)
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(actions, cfg.path("actions"), DAY)

    run(spark, cfg, DAY)
    scored = {r["session_id"]: r for r in spark.table(tables.table_name(cfg, "scored_sessions")).collect()}
    assert len(scored) == 300

    for record in sessions.to_dict("records"):
        row = scored[record["session_id"]]
        filled = {f: (0 if record[f] is None or record[f] != record[f] else record[f]) for f in contract.FEATURES}
        error, is_anomaly, risk = nb.score_session(filled, autoencoder, scaler, threshold)
        assert row["ae_error"] == pytest.approx(float(error), rel=RTOL)
        assert row["ae_is_anomaly"] == int(is_anomaly)
        assert row["ae_risk_percent"] == pytest.approx(float(risk), rel=RTOL)
        assert row["ae_threshold"] == pytest.approx(float(threshold), rel=1e-12)

    for sid, seq in sequences.items():
        risk = float(nb.predict_session_risk(seq, lstm))
        row = scored[sid]
        assert row["seq_risk"] == pytest.approx(risk, rel=RTOL)
        assert row["seq_is_block"] == int(risk > 0.8)
