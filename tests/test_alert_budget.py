"""``raksha calibrate``: thresholds picked for a review capacity, measured, written as a new version."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import shutil
from pathlib import Path

import conftest
import factories
import numpy as np
import pandas as pd
import pytest

from raksha import cli, contract, synthetic
from raksha.feedback import alert_budget, thresholds
from raksha.ingest.inputs import InputError
from raksha.models import artifacts
from raksha.pipeline.daily import run
from raksha.scoring.scorers import BehaviorScorer

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 5, 4)
DAY2 = DAY + dt.timedelta(days=1)
DAYS = (DAY, DAY2)
CAPACITY = 40


def _published(cfg, table: str, days=DAYS) -> pd.DataFrame:
    frames = [factories.read_table_day(cfg, table, d).assign(dt=str(d)) for d in days]
    return pd.concat(frames, ignore_index=True)


def _labels(cfg) -> pd.DataFrame:
    frames = [pd.read_parquet(Path(cfg.path("labels")) / f"dt={d}") for d in DAYS]
    return pd.concat(frames, ignore_index=True)[["session_id", "is_attack"]]


def _expected(scored: pd.DataFrame, labels: pd.DataFrame, column: str, threshold: float) -> dict:
    """What the report must say at ``column > threshold``, computed here with pandas."""
    flagged = (scored["decision"] == "BLOCK") | (scored[column] > threshold)
    cases = scored[flagged].groupby(["dt", "user_id"]).size()
    judged = scored.assign(flagged=flagged).merge(labels, on="session_id")
    caught = int((judged["flagged"] & (judged["is_attack"] == 1)).sum())
    attack_cases = judged[judged["flagged"]].groupby(["dt", "user_id"])["is_attack"].max()
    return {
        "cases_per_day": len(cases) / len(DAYS),
        "sessions_flagged": int(flagged.sum()),
        "precision": caught / int(judged["flagged"].sum()),
        "recall": caught / int(judged["is_attack"].sum()),
        "case_precision": float(attack_cases.mean()),
    }


@pytest.fixture(scope="module")
def scored_days(spark, tmp_path_factory):
    """Two generated days (700 sessions each, 5% attacks) scored with a copy of the shipped models."""
    root = tmp_path_factory.mktemp("calibrate")
    shutil.copytree(REPO / "models", root / "models")
    # the notebooks' rules: calibrate sets the autoencoder threshold, which decides through ae_is_anomaly
    notebooks = (
        'decision.rules=[{"when": "seq_is_block = 1", "decision": "BLOCK"}, '
        '{"when": "ae_is_anomaly = 1", "decision": "REVIEW"}]'
    )
    cfg = conftest.test_config(root, notebooks)
    synthetic.generate(DAY, 2, 700, 0.05, 21, cfg.path("sessions"), cfg.path("actions"), cfg.path("labels"))
    for day in DAYS:
        run(spark, cfg, day)
    return cfg


@pytest.fixture(scope="module")
def calibrated(spark, scored_days):
    return alert_budget.calibrate(spark, scored_days, DAY, DAY2, CAPACITY)


def test_pick_threshold():
    assert thresholds.pick_threshold([9.0, 7.0, 5.0, 3.0], 2) == 5.0  # two values above 5
    assert thresholds.pick_threshold([9.0, 7.0], 2) == 0.0  # fewer values than slots: all above
    assert thresholds.pick_threshold([9.0, 7.0, 5.0], 0) == math.nextafter(9.0, math.inf)  # none above
    assert thresholds.pick_threshold([], 0) == 0.0


def test_figures_from_the_counts_at_a_threshold():
    truth = {"judged": 10, "attacks": 4, "flagged": 5, "caught": 3, "cases": 4, "attack_cases": 2}
    by_day = {str(DAY): 3, str(DAY2): 5}
    assert thresholds.figures(0.5, by_day, 2, 5, truth) == {
        "threshold": 0.5,
        "cases_per_day": 4.0,
        "cases_by_day": by_day,
        "sessions_flagged": 5,
        "sessions_judged": 10,
        "attacks": 4,
        "attacks_flagged": 3,
        "precision": 0.6,
        "recall": 0.75,
        "case_precision": 0.5,
    }
    nothing = thresholds.figures(9.0, {}, 2, 0, dict.fromkeys(truth, 0))
    assert [nothing[k] for k in ("cases_per_day", "precision", "recall", "case_precision")] == [0.0, None, None, None]
    assert "precision" not in thresholds.figures(0.5, by_day, 2, 5)  # no truth


def test_the_report_notes_what_the_budget_leaves():
    measured = {k: {"threshold": 1.0} for k in ("ae_threshold", "risk_score_cut", "current_ae_threshold")}

    def notes(blocked: int, slots: int, user_days: int = 100) -> list[str]:
        counts = {"days": 2, "sessions": 500, "user_days": user_days, "blocked": blocked, "slots": slots}
        report = thresholds.calibration_report(DAY, DAY2, 5, counts, None, "v1", ["v2"], measured)
        assert report["blocked_cases_per_day"] == blocked / 2 and report["ae_threshold"] is measured["ae_threshold"]
        return report["notes"]

    assert notes(blocked=4, slots=6) == []
    assert notes(blocked=12, slots=-2) == [
        "blocked sessions alone make 6.0 cases a day, at or above the capacity of 5: the thresholds are set "
        "above every session (no reviews beyond the blocks)"
    ]
    assert notes(blocked=4, slots=6, user_days=10) == [
        "the window has fewer user-days than the budget: every session is above the thresholds"
    ]


def test_the_thresholds_give_the_capacity_and_the_report_measures_them(scored_days, calibrated):
    cfg, report = scored_days, calibrated.report
    scored = _published(cfg, "scored_sessions")
    labels = _labels(cfg)
    blocked_cases = scored[scored["decision"] == "BLOCK"].groupby(["dt", "user_id"]).ngroups
    assert 0 < blocked_cases < CAPACITY * len(DAYS)
    assert report["blocked_cases_per_day"] == blocked_cases / len(DAYS)
    assert report["sessions"] == len(scored)
    for column, knob in thresholds.KNOBS.items():
        measured = report[knob]
        # exactly the capacity on average: the scores are continuous, so no ties at the threshold
        assert measured["cases_per_day"] == CAPACITY
        assert sum(measured["cases_by_day"].values()) == CAPACITY * len(DAYS)
        expected = _expected(scored, labels, column, measured["threshold"])
        for key, value in expected.items():
            assert measured[key] == pytest.approx(value, rel=1e-12), (knob, key)
        # one step lower and one more case comes in
        top = scored.loc[scored["decision"] != "BLOCK", column]
        assert (top > measured["threshold"]).sum() < (top >= measured["threshold"]).sum()
    # the shipped threshold (95th percentile) flags far more than the team can review
    current = report["current_ae_threshold"]
    assert current["threshold"] == artifacts.load_version(cfg.path("models"), contract.AE_MODEL).threshold
    assert current["cases_per_day"] > CAPACITY
    assert current["cases_per_day"] == _expected(scored, labels, "ae_error", current["threshold"])["cases_per_day"]


def test_the_new_version_keeps_the_network_and_the_history_and_is_not_promoted(scored_days, calibrated):
    models = Path(scored_days.path("models"))
    version, report = calibrated.version, calibrated.report
    source = artifacts.load_version(REPO / "models", contract.AE_MODEL)
    assert report["source_version"] == source.version
    assert artifacts.current_version(models, contract.AE_MODEL) == source.version  # not promoted
    loaded = artifacts.load_version(models, contract.AE_MODEL, version.version)
    assert dict(loaded.files) == dict(source.files)  # the same bytes
    manifest = loaded.manifest
    assert manifest["threshold"] == report["ae_threshold"]["threshold"] != source.threshold
    assert loaded.risk_score_cut == report["risk_score_cut"]["threshold"]
    assert manifest["reference"] == source.manifest["reference"]
    assert manifest["training"] == source.manifest["training"]
    budget = manifest["alert_budget"]
    assert (budget["capacity"], budget["start_date"], budget["end_date"]) == (CAPACITY, str(DAY), str(DAY2))
    assert budget["source_version"] == source.version and budget["truth"] == "labels"
    assert budget["ae_threshold"]["precision"] == report["ae_threshold"]["precision"]
    assert manifest["threshold_history"] == [
        {
            "version": source.version,
            "threshold": source.threshold,
            "set_by": "training",
            "created_at": source.manifest["created_at"],
        }
    ]
    assert "fallback_threshold" not in manifest  # the shipped version has a reference distribution


def test_scoring_with_the_calibrated_version(spark, scored_days, calibrated):
    """Promote it and rescore: the queue holds the cases calibrate predicted, risk scores do not move, a
    half-rescored window is refused, and calibrating the calibrated version extends its history."""
    cfg = scored_days
    before = _published(cfg, "scored_sessions", [DAY]).set_index("session_id").sort_index()
    models = Path(cfg.path("models"))
    source = artifacts.current_version(models, contract.AE_MODEL)
    artifacts.promote(models, contract.AE_MODEL, calibrated.version.version)
    try:
        run(spark, cfg, DAY)
        after = _published(cfg, "scored_sessions", [DAY]).set_index("session_id").sort_index()
        queue = _published(cfg, "review_queue", [DAY])
        assert (after["ae_model_version"] == calibrated.version.version).all()
        assert (after["ae_threshold"] == calibrated.report["ae_threshold"]["threshold"]).all()
        np.testing.assert_array_equal(after["risk_score"], before["risk_score"])
        np.testing.assert_array_equal(after["ae_error"], before["ae_error"])
        cases = queue.loc[~queue["audit"], "case_id"].nunique()
        assert cases == calibrated.report["ae_threshold"]["cases_by_day"][str(DAY)]

        # DAY2 still holds the source version's scores: ae_error of two versions cannot share a threshold
        with pytest.raises(thresholds.CalibrationError, match="scored by 2 autoencoder versions"):
            alert_budget.calibrate(spark, cfg, DAY, DAY2, CAPACITY)

        # rules that rank by the combined score read the version's cut
        ranked = conftest.test_config(
            Path(cfg.path("warehouse")).parent / "by_score",
            *[f"paths.{k}={cfg.path(k)}" for k in ("sessions", "actions", "labels", "models")],
            'decision.rules=[{"when": "seq_risk > 0.8", "decision": "BLOCK"}, '
            '{"when": "risk_score > risk_score_cut", "decision": "REVIEW"}]',
        )
        run(spark, ranked, DAY)
        queue = _published(ranked, "review_queue", [DAY])
        cases = queue.loc[~queue["audit"], "case_id"].nunique()
        assert cases == calibrated.report["risk_score_cut"]["cases_by_day"][str(DAY)]

        run(spark, cfg, DAY2)
        again = alert_budget.calibrate(spark, cfg, DAY, DAY2, CAPACITY + 10, truth=None)
    finally:
        artifacts.promote(models, contract.AE_MODEL, source)
        for day in DAYS:
            run(spark, cfg, day)  # the days as the other tests expect them
    history = again.version.manifest["threshold_history"]
    assert [h["version"] for h in history] == [source, calibrated.version.version]
    assert history[1]["set_by"] == "calibrate" and history[1]["capacity"] == CAPACITY
    assert history[1]["risk_score_cut"] == calibrated.version.risk_score_cut
    assert again.report["source_version"] == calibrated.version.version
    assert again.report["ae_threshold"]["cases_per_day"] == CAPACITY + 10
    assert again.report["ae_threshold"]["threshold"] < calibrated.report["ae_threshold"]["threshold"]
    assert "precision" not in again.report["ae_threshold"]  # truth=None


def test_a_rule_on_the_cut_never_matches_without_one(spark, scored_days, tmp_path):
    """The shipped version has no cut: a rule comparing with it matches nothing (null), it is not an error."""
    cfg = conftest.test_config(
        tmp_path,
        *[f"paths.{k}={scored_days.path(k)}" for k in ("sessions", "actions", "labels", "models")],
        'decision.rules=[{"when": "risk_score > risk_score_cut", "decision": "REVIEW"}]',
    )
    run(spark, cfg, DAY)
    assert set(_published(cfg, "scored_sessions", [DAY])["decision"]) == {"ALLOW"}


def test_blocks_beyond_the_capacity_leave_no_reviews(spark, scored_days):
    result = alert_budget.calibrate(spark, scored_days, DAY, DAY2, 1)
    scored = _published(scored_days, "scored_sessions")
    blocked_cases = scored[scored["decision"] == "BLOCK"].groupby(["dt", "user_id"]).ngroups
    for knob in thresholds.KNOBS.values():
        assert result.report[knob]["cases_per_day"] == blocked_cases / len(DAYS) > 1
    assert result.report["ae_threshold"]["threshold"] > scored["ae_error"].max()
    assert "blocked sessions alone make" in result.report["notes"][0]


def test_calibrate_refuses_what_it_cannot_do(spark, scored_days):
    later = DAY2 + dt.timedelta(days=1)
    with pytest.raises(InputError, match=rf"^scored_sessions {later}: not scored"):
        alert_budget.calibrate(spark, scored_days, DAY, later, CAPACITY)
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        alert_budget.calibrate(spark, scored_days, DAY, DAY2, 0)
    with pytest.raises(ValueError, match="before start date"):
        alert_budget.calibrate(spark, scored_days, DAY2, DAY, CAPACITY)


def test_a_calibrated_legacy_version_keeps_its_risk_scores(tmp_path):
    """Without a reference distribution risk_score scales with the threshold; the new version keeps the old scale."""
    shipped = artifacts.load_version(REPO / "models", contract.AE_MODEL)
    fields = {
        k: v for k, v in shipped.manifest.items() if k not in ("name", "version", "created_at", "files", "reference")
    }
    legacy = artifacts.write_version(tmp_path, contract.AE_MODEL, shipped.files, fields)
    cfg = conftest.test_config(tmp_path, f"paths.models={tmp_path}")
    report = {
        "start_date": str(DAY),
        "end_date": str(DAY2),
        "days": 2,
        "capacity": 5,
        "truth": None,
        "source_version": legacy.version,
        "seq_model_versions": ["v1"],
        "blocked_cases_per_day": 0.0,
        "ae_threshold": {"threshold": legacy.threshold * 3, "cases_per_day": 5.0},
        "risk_score_cut": {"threshold": 71.0, "cases_per_day": 5.0},
    }
    new = thresholds.write_calibrated(cfg, legacy, report, promote=False)
    assert new.manifest["fallback_threshold"] == legacy.threshold
    assert new.threshold == legacy.threshold * 3
    errors = np.array([0.0, legacy.threshold, legacy.threshold * 5])
    np.testing.assert_array_equal(BehaviorScorer(new).surprise(errors), BehaviorScorer(legacy).surprise(errors))


def _job(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_job", REPO / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_and_job(spark, scored_days, in_process, capsys):
    cfg = scored_days
    sets = factories.cli_sets(cfg)
    window = ["--start-date", str(DAY), "--end-date", str(DAY2), "--capacity", str(CAPACITY)]
    models = Path(cfg.path("models"))
    source = artifacts.current_version(models, contract.AE_MODEL)
    assert cli.main(["calibrate", *window, *sets]) == 0
    out = capsys.readouterr().out
    assert f"capacity {CAPACITY} cases a day" in out and "new risk_score_cut" in out
    assert "not promoted: raksha promote --model behavior_autoencoder --version v" in out
    assert artifacts.current_version(models, contract.AE_MODEL) == source
    try:
        assert _job("calibrate").main([*window, "--promote", "--truth", "none", *sets]) == 0
        promoted = artifacts.load_version(models, contract.AE_MODEL)
        assert promoted.version != source and promoted.manifest["alert_budget"]["truth"] is None
    finally:
        artifacts.promote(models, contract.AE_MODEL, source)
    later = str(DAY2 + dt.timedelta(days=1))
    assert cli.main(["calibrate", "--start-date", str(DAY), "--end-date", later, "--capacity", "5", *sets]) == 1
    assert f"scored_sessions {later}: not scored" in capsys.readouterr().err
