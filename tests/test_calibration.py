from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from raksha.scoring import calibration

REFERENCE = list(np.quantile(np.random.default_rng(0).gamma(2.0, 0.05, 20_000), np.linspace(0, 1, 1001)))


def test_surprise_is_monotone_and_keeps_ranking_far_above_the_reference():
    errors = np.array([0.0, 0.05, 0.1, 0.3, 0.31, 1.0, 5.0, 1e3, 1e9])
    s = calibration.surprise(errors, REFERENCE)
    assert np.all(np.diff(s) > 0)
    assert s[0] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isfinite(s))


def test_two_flagged_sessions_of_different_severity_get_different_scores_in_order():
    threshold = float(np.quantile(REFERENCE, 0.95))
    errors = np.array([threshold * 3, threshold * 30, threshold * 3000])  # all far above the threshold
    scores = calibration.risk_score(calibration.surprise(errors, REFERENCE), np.zeros(3))
    assert scores[0] < scores[1] < scores[2] < 100.0


def test_risk_score_lies_in_0_100_and_is_monotone_in_each_model():
    rng = np.random.default_rng(1)
    s_ae, s_seq = rng.exponential(3, 500), rng.exponential(3, 500)
    scores = calibration.risk_score(s_ae, s_seq)
    assert np.all((scores >= 0) & (scores < 100))
    assert np.all(calibration.risk_score(s_ae + 0.5, s_seq) > scores)
    assert np.all(calibration.risk_score(s_ae, s_seq + 0.5) > scores)
    assert calibration.risk_score(np.array([-np.log10(0.05)]), np.array([0.0]))[0] < 50  # Fisher: one model alone


def test_sequence_outputs_compare_on_the_logit_scale():
    normal = list(np.quantile(np.random.default_rng(2).beta(1, 60, 5000), np.linspace(0, 1, 1001)))
    s = calibration.surprise(np.array([0.01, 0.5, 0.9, 0.999, 0.999999]), normal, logit=True)
    assert np.all(np.diff(s) > 0)


def test_fallback_for_models_without_reference_puts_the_threshold_at_5_percent():
    s = calibration.fallback_surprise(np.array([0.2, 0.4]), "ae", threshold=0.2)
    np.testing.assert_allclose(10**-s, [0.05, 0.0025])
    np.testing.assert_allclose(10 ** -calibration.fallback_surprise(np.array([0.9]), "seq"), [0.1])


def test_spark_expression_equals_numpy(spark):
    rng = np.random.default_rng(3)
    pairs = [(float(a), float(b)) for a, b in rng.exponential(2, (50, 2))]
    df = spark.createDataFrame(pairs, "a double, b double")
    got = [r[0] for r in df.select(calibration.risk_score_column(F.col("a"), F.col("b"))).collect()]
    np.testing.assert_allclose(got, calibration.risk_score(*np.array(pairs).T), rtol=1e-12)
