"""Champion and challenger: a second version scored in the same run, into its own columns only."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import conftest
import factories
import numpy as np
import pandas as pd
import pytest

from raksha import contract, synthetic
from raksha.config import ConfigError
from raksha.decide.decisions import RULE_COLUMNS, validate_policy
from raksha.features.sequences import session_sequences
from raksha.models import architectures, artifacts
from raksha.pipeline.daily import run
from raksha.pipeline.summary import print_run_summary
from raksha.platform import tables
from raksha.scoring import challenger
from raksha.scoring.scorers import BehaviorScorer, SequenceScorer

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 4, 6)
CHAMPION_COLUMNS = [
    f.name
    for f in contract.SCORED_SESSIONS_SCHEMA.fields
    if f not in contract.CHALLENGER_FIELDS and f.name not in ("run_id", "scored_at")
]


def _day(cfg, table: str) -> pd.DataFrame:
    frame = factories.read_table_day(cfg, table, DAY)
    key = ["session_id", "audit"] if table == "review_queue" else ["session_id"]
    return frame.sort_values(key).reset_index(drop=True)


def _other_weights(models: Path, name: str, seed: int, threshold_factor: float = 1.0) -> artifacts.ModelVersion:
    """A real version of ``name`` whose network has other weights than the promoted one's (each
    weight moved by up to 30%), with the promoted version's scaler, reference and manifest fields."""
    champion = artifacts.load_version(models, name)
    model = architectures.model_from_bytes(champion.files["model.keras"], name)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([w * (1 + 0.3 * rng.uniform(-1, 1, w.shape)) for w in layer.get_weights()])
    files = {**champion.files, "model.keras": architectures.model_to_bytes(model)}
    fields = {k: v for k, v in champion.manifest.items() if k not in ("name", "version", "created_at", "files")}
    if "threshold" in fields:
        fields["threshold"] = champion.threshold * threshold_factor
    return artifacts.write_version(models, name, files, fields)


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """One day scored without a challenger, then again with one: both networks with other weights,
    the autoencoder's threshold stricter."""
    root = tmp_path_factory.mktemp("challenger")
    models = root / "models"
    shutil.copytree(REPO / "models", models)
    rival = _other_weights(models, contract.AE_MODEL, seed=1, threshold_factor=0.5)
    seq = _other_weights(models, contract.SEQ_MODEL, seed=2).version
    plain = conftest.test_config(root / "plain", f"paths.models={models}")
    synthetic.generate(DAY, 1, 1500, 0.05, 3, plain.path("sessions"), plain.path("actions"), plain.path("labels"))
    inputs = [f"paths.{k}={plain.path(k)}" for k in ("sessions", "actions", "labels")]
    sets = [*inputs, f"paths.models={models}"]
    with_rival = conftest.test_config(
        root / "rival",
        *sets,
        f"models.challenger.behavior_autoencoder={rival.version}",
        f"models.challenger.sequence_lstm={seq}",
    )
    return {
        "plain": (plain, run(spark, plain, DAY)),
        "rival": (with_rival, run(spark, with_rival, DAY)),
        "threshold": rival.threshold,
        "versions": (rival.version, seq),
        "expected": _expected_challenger(spark, plain, models, rival.version, seq),
    }


def _expected_challenger(spark, cfg, models: Path, ae: str, seq: str) -> pd.DataFrame:
    """What the challenger versions compute for each session of the day, outside the job: the
    autoencoder's scorer on the raw sessions, the sequence scorer on the day's ordered actions."""
    sessions = pd.read_parquet(Path(cfg.path("sessions")) / f"dt={DAY}")
    behavior = BehaviorScorer(artifacts.load_version(models, contract.AE_MODEL, ae)).score(sessions, with_reasons=False)
    actions = session_sequences(spark.read.parquet(f"{cfg.path('actions')}/dt={DAY}")).toPandas()
    tokens = dict(zip(actions["session_id"], actions["action_tokens"], strict=True))
    ids = list(sessions["session_id"])
    sequence = SequenceScorer(artifacts.load_version(models, contract.SEQ_MODEL, seq)).score_sessions(
        [list(tokens.get(s, [])) for s in ids], with_reasons=False
    )
    return pd.DataFrame(
        {"session_id": ids, "ae_error": behavior["ae_error"].to_numpy(), "seq_risk": sequence["seq_risk"].to_numpy()}
    )


def test_without_a_challenger_the_columns_are_null(runs):
    cfg, result = runs["plain"]
    scored = _day(cfg, "scored_sessions")
    for f in contract.CHALLENGER_FIELDS:
        assert scored[f.name].isna().all(), f.name
    assert result.challenger is None and "challenger_disagreements" not in result.counts


def test_the_challenger_never_changes_the_champion_outputs(runs):
    (plain, _), (rival, _) = runs["plain"], runs["rival"]
    pd.testing.assert_frame_equal(
        _day(rival, "scored_sessions")[CHAMPION_COLUMNS], _day(plain, "scored_sessions")[CHAMPION_COLUMNS]
    )
    pd.testing.assert_frame_equal(
        _day(rival, "review_queue").drop(columns="run_id"), _day(plain, "review_queue").drop(columns="run_id")
    )


def test_challenger_columns_are_its_own_scores_under_the_same_rules(runs):
    cfg, result = runs["rival"]
    scored = _day(cfg, "scored_sessions")
    rival_ae, rival_seq = runs["versions"]
    assert (scored["challenger_ae_model_version"] == rival_ae).all()
    assert (scored["challenger_seq_model_version"] == rival_seq).all()
    # the challenger's outputs are its own networks' (computed outside the job), not the champion's
    expected = scored[["session_id"]].merge(runs["expected"], on="session_id", how="left")
    for column in ("ae_error", "seq_risk"):
        np.testing.assert_allclose(scored[f"challenger_{column}"], expected[column], rtol=1e-5, err_msg=column)
        moved = np.abs(scored[f"challenger_{column}"] - scored[column]) / np.maximum(np.abs(scored[column]), 1e-9)
        assert moved.median() > 0.01, column  # other weights: other outputs
    assert (scored["challenger_ae_threshold"] == runs["threshold"]).all()
    anomaly = (scored["challenger_ae_error"] > runs["threshold"]).astype(int)
    assert (scored["challenger_ae_is_anomaly"] == anomaly).all()
    assert anomaly.sum() > scored["ae_is_anomaly"].sum()
    expected = np.where(scored["challenger_seq_risk"] > 0.8, "BLOCK", np.where(anomaly == 1, "REVIEW", "ALLOW"))
    assert (scored["challenger_decision"] == expected).all()
    differ = scored[scored["decision"] != scored["challenger_decision"]]
    pairs = (differ["decision"] + "->" + differ["challenger_decision"]).value_counts().to_dict()
    assert len(differ) > 0
    assert result.challenger["disagreements"] == len(differ) == result.counts["challenger_disagreements"]
    assert result.challenger["pairs"] == pairs
    assert result.challenger["sessions_compared"] == len(scored)
    assert result.model_loads["challenger_behavior_autoencoder.loads"] >= 1
    assert result.model_loads["challenger_sequence_lstm.loads"] >= 1


def test_the_nightly_summary_shows_the_disagreements_and_run_log_the_versions(spark, runs, capsys):
    cfg, result = runs["rival"]
    print_run_summary(spark, cfg, result)
    out = capsys.readouterr().out
    n = result.challenger["disagreements"]
    assert f"challenger: {n} of 1500 sessions decided differently" in out
    assert all(f"    {pair:<15} {count}" in out for pair, count in result.challenger["pairs"].items())
    assert sum(result.challenger["pairs"].values()) == n and "e.g. " in out
    run_log = tables.table_name(cfg, "run_log")
    log = spark.sql(f"select model_checksums from {run_log} where run_id = '{result.run_id}'").first()[0]
    rival_ae = runs["versions"][0]
    assert any(k.startswith(f"challenger_{contract.AE_MODEL}/{rival_ae}/") for k in log)


def test_a_bad_challenger_setting_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'models.challenger.autoencoder'"):
        conftest.test_config(tmp_path, "models.challenger.autoencoder=v1")
    cfg = conftest.test_config(tmp_path, f"paths.models={REPO / 'models'}", "models.challenger.sequence_lstm=v404")
    with pytest.raises(artifacts.ArtifactError, match=r"model sequence_lstm/v404: .*manifest.json is missing"):
        challenger.load(cfg)


def test_rules_cannot_read_challenger_columns_an_error_before_anything_is_read(spark, tmp_path):
    seq = (REPO / "models" / contract.SEQ_MODEL / "CURRENT").read_text().strip()
    cfg = conftest.test_config(
        tmp_path,
        f"paths.models={REPO / 'models'}",
        f"models.challenger.sequence_lstm={seq}",
        'decision.rules=[{when: "seq_risk > 0.8", decision: BLOCK}, '
        '{when: "challenger_risk_score > 50", decision: REVIEW}]',
    )
    # no input exists for DAY: a run that read anything would fail on the missing partition instead
    with pytest.raises(ConfigError, match=r"decision.rules\[1\] 'challenger_risk_score > 50': .*challenger_risk_score"):
        run(spark, cfg, DAY)
    assert not Path(cfg.path("warehouse")).exists()  # no table created, no lock taken
    # the same rule over the champion's column is a rule's to read; no challenger column is
    validate_policy(spark, cfg.with_overrides(['decision.rules=[{when: "risk_score > 50", decision: REVIEW}]']))
    assert not {f.name for f in contract.CHALLENGER_FIELDS} & {f.name for f in RULE_COLUMNS}
