"""The notebooks in notebooks/ run top to bottom over raksha/ (parameters cell overridden)."""

from __future__ import annotations

import uuid
from pathlib import Path

import factories
import notebook_reference as nb
import pandas as pd
import pytest
from notebook_cells import execute

from raksha import contract
from raksha.features.sequences import encode_actions
from raksha.models import architectures, artifacts
from raksha.scoring.scorers import BehaviorScorer

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_training_notebook(spark, tmp_path):
    ns = execute(
        NOTEBOOKS / "training.ipynb",
        {"WORKDIR": str(tmp_path), "DAYS": 2, "SESSIONS_PER_DAY": 1500, "AE_EPOCHS": 2, "SEQ_EPOCHS": 2},
    )
    models = tmp_path / "models"
    ae = artifacts.load_version(models, contract.AE_MODEL, ns["ae"].version)
    seq = artifacts.load_version(models, contract.SEQ_MODEL, ns["seq"].version)
    assert ae.threshold == ns["ae"].threshold > 0 and seq.manifest["metrics"] == ns["seq"].manifest["metrics"]
    with pytest.raises(artifacts.ArtifactError, match="no promoted version"):  # PROMOTE = False
        artifacts.current_version(models, contract.AE_MODEL)
    # the examples the notebook prints are the notebooks' own score_session / predict_session_risk
    # numbers with the versions it trained
    autoencoder = architectures.model_from_bytes(ae.files["model.keras"], contract.AE_MODEL)
    scaler = BehaviorScorer(ae).scaler.to_sklearn()
    printed = ns["behavior"].score(ns["examples"], with_reasons=False)
    for (_, row), error in zip(ns["examples"].iterrows(), printed["ae_error"], strict=True):
        expected, _, _ = nb.score_session(row.to_dict(), autoencoder, scaler, ae.threshold)
        assert error == pytest.approx(expected, rel=1e-5)
    lstm = architectures.model_from_bytes(seq.files["model.keras"], contract.SEQ_MODEL)
    risks = ns["sequence"].score([encode_actions(t) for t in ns["tests"]], with_reasons=False)["seq_risk"]
    for actions, risk in zip(ns["tests"], risks, strict=True):
        assert risk == pytest.approx(float(nb.predict_session_risk(actions, lstm)), rel=1e-5)


def test_analyst_notebook(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(NOTEBOOKS.parent)  # paths.models defaults to the shipped models/
    ns = execute(
        NOTEBOOKS / "analyst.ipynb",
        {"WORKDIR": str(tmp_path), "SESSIONS": 600, "DATABASE": f"nb_{uuid.uuid4().hex[:8]}"},
    )
    assert int(ns["decisions"]["sessions"].sum()) == ns["result"].counts["sessions_scored"]
    # every table the notebook shows, against the published day read without Spark (delta-rs)
    cfg, day = ns["cfg"], ns["day"]
    scored = factories.read_table_day(cfg, "scored_sessions", day)
    decisions = scored["decision"].value_counts().sort_index()
    assert dict(zip(ns["decisions"]["decision"], ns["decisions"]["sessions"], strict=True)) == decisions.to_dict()
    queue = factories.read_table_day(cfg, "review_queue", day).sort_values(["case_rank", "rank_in_case"])
    assert len(queue) > 0 and len(ns["queue"]) == min(20, len(queue))
    queue = queue.head(20)
    assert list(ns["queue"]["session_id"]) == list(queue["session_id"])
    assert list(ns["queue"]["risk_score"]) == pytest.approx(list(queue["risk_score"].round(1)))
    codes = scored.loc[scored["decision"] != "ALLOW", "reasons"].explode().dropna().map(lambda r: r["code"])
    counts = codes.value_counts()
    assert dict(zip(ns["reasons"]["code"], ns["reasons"]["sessions"], strict=True)) == {
        c: counts[c] for c in ns["reasons"]["code"]
    }
    assert list(ns["reasons"]["sessions"]) == sorted(counts.to_numpy(), reverse=True)[: len(ns["reasons"])]
    labels = pd.read_parquet(Path(cfg.path("labels")) / f"dt={day}")
    joined = scored.merge(labels, on="session_id")
    kinds = ["account_takeover", "bot", "social_engineering"]
    expected = pd.crosstab(joined["decision"], joined["attack_kind"]).reindex(
        index=sorted(joined["decision"].unique()), columns=kinds, fill_value=0
    )
    shown = ns["truth"].set_index("decision").sort_index()[kinds]
    assert shown.to_dict() == expected.to_dict()
