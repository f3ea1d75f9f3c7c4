"""The autoencoder's standardised error and its reasons by occlusion (issue 15, part 3).

ae_std_error: each behavioural feature's squared error over its held-out mean, the day-of-week one-hots
left out (and held at their training frequencies in the input). Reasons: the feature that, set to its
expected value, lowers that error most. Measured on normal generated sessions with 2-3 features pushed
to extremes, with the shipped autoencoder and with one trained by the notebook's own code and imported.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import notebook_reference as nb
import numpy as np
import pandas as pd
import pytest

from raksha import contract
from raksha.features.behavior import BEHAVIOUR_INDEX, DAY_FEATURES, FeatureErrors, feature_matrix, reason_lists
from raksha.models import artifacts
from raksha.models.legacy import import_legacy
from raksha.scoring.scorers import BehaviorScorer
from raksha.synthetic import generate_day

MODELS = Path(__file__).resolve().parent.parent / "models"
FEATURES = list(contract.FEATURES)
N_CONT = len(contract.CONTINUOUS_FEATURES)
DAY = dt.date(2026, 11, 4)


def altered_sessions(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Normal generated sessions, each with 2-3 behavioural features pushed to an extreme: a present
    continuous value to the end of its range farther from it, a binary at 0 (the usual value) to 1.
    Returns the sessions and which features were altered, (n, 30) bool."""
    sessions = generate_day(DAY, n, 0.0, seed=seed).sessions
    observed = feature_matrix(sessions)
    rng = np.random.default_rng(seed)
    altered = np.zeros(observed.shape, dtype=bool)
    for row in range(len(observed)):  # building test data: a loop is fine here
        values = observed[row]
        eligible = [
            j for j in BEHAVIOUR_INDEX if (j < N_CONT and not np.isnan(values[j])) or (j >= N_CONT and values[j] == 0)
        ]
        for j in rng.choice(eligible, rng.integers(2, 4), replace=False):
            if j < N_CONT:
                low, high = contract.feature_range(FEATURES[j])
                values[j] = low if abs(values[j] - low) > abs(values[j] - high) else high
            else:
                values[j] = 1.0
            altered[row, j] = True
    return pd.DataFrame(observed, columns=FEATURES), altered


def first_reasons(scorer: BehaviorScorer, sessions: pd.DataFrame, altered: np.ndarray) -> tuple[float, float]:
    """(share of sessions given a behavioural reason, share of those whose first reason was altered)."""
    out = scorer.score(sessions)
    named = out["ae_reason_1_feature"].to_numpy()
    given = np.array([f is not None for f in named])
    position = np.array([FEATURES.index(f) if f is not None else 0 for f in named])
    hit = altered[np.arange(len(sessions)), position] & given
    for k in (1, 2, 3):  # a day of the week is never a reason
        assert not out[f"ae_reason_{k}_feature"].isin(DAY_FEATURES).any()
    return float(given.mean()), float(hit[given].mean())


@pytest.fixture(scope="module")
def shipped():
    return BehaviorScorer(artifacts.load_version(MODELS, contract.AE_MODEL))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """An autoencoder trained by the notebook's own code (Keras 2, tf-keras) on a generated week, saved
    as the notebook saves it and imported: a version without held-out per-feature errors."""
    folder = tmp_path_factory.mktemp("notebook_files")
    week = [generate_day(dt.date(2026, 10, 5) + dt.timedelta(days=i), 1500, 0.05, 3).sessions for i in range(7)]
    train = pd.concat(week)[FEATURES].astype("float64")
    autoencoder, scaler, threshold = nb.train_notebook_autoencoder(train, epochs=30, seed=1)
    nb.save_notebook_autoencoder_files(folder, autoencoder, scaler, threshold)
    nb.save_notebook_lstm(folder, nb.train_notebook_lstm(epochs=1, seed=1, n_normal=40, n_attack=20))
    ae, _ = import_legacy(folder, tmp_path_factory.mktemp("models"))
    return BehaviorScorer(ae)


# ----------------------------------------------------------------------------------- reasons


def test_shipped_first_reason_names_an_altered_feature(shipped):
    given, hit = first_reasons(shipped, *altered_sessions(1500, 21))
    assert given > 0.8  # most altered sessions are unusual enough to be explained
    assert hit >= 0.95


def test_imported_notebook_model_first_reason_names_an_altered_feature(imported):
    assert not imported.standardised  # no held-out errors: reasons weigh every feature's error alike
    given, hit = first_reasons(imported, *altered_sessions(1500, 22))
    assert given > 0.8
    assert hit >= 0.95


def test_reasons_say_what_the_feature_was_set_to(shipped):
    sessions = generate_day(DAY, 400, 0.0, seed=21).sessions
    normal = sessions[shipped.score(sessions, with_reasons=False)["ae_surprise"].to_numpy() < 1].head(20)
    altered = normal.copy()
    altered["charging_state"] = 1
    altered["touch_pressure"] = 0.02
    out = shipped.score(altered)
    reasons = reason_lists(out)
    assert all(r[0]["code"] == "TOUCH_PRESSURE_LOW" for r in reasons)
    mean = shipped.scaler.mean[contract.CONTINUOUS_FEATURES.index("touch_pressure")]
    assert all(r[0]["expected"] == pytest.approx(mean) and r[0]["value"] == pytest.approx(0.02) for r in reasons)
    contributions = out[[f"ae_reason_{k}_contribution" for k in (1, 2, 3)]].to_numpy()
    assert np.all((contributions[:, 0] > 0) & (contributions[:, 0] <= 1))
    assert np.all(np.diff(np.nan_to_num(contributions, nan=0.0), axis=1) <= 0)  # largest fall first


def test_unremarkable_sessions_get_no_behavioural_reasons(shipped):
    sessions = generate_day(DAY, 1000, 0.0, seed=23).sessions
    out = shipped.score(sessions)
    quiet = out["ae_surprise"].to_numpy() < 1
    assert 0.8 < quiet.mean() < 0.97  # about 90% of a normal day: their reasons are never computed
    assert out.loc[quiet, "ae_reason_1_code"].isna().all()
    assert out.loc[~quiet, "ae_reason_1_code"].notna().mean() > 0.95


# ----------------------------------------------------------------------------------- the standardised error


def test_standardised_error_leaves_out_the_days_and_divides_by_heldout_means():
    heldout = np.full(30, 0.5)
    heldout[0] = 0.0  # never wrong on held-out rows: floored, not divided by 0
    stats = FeatureErrors(heldout, FeatureErrors.training_expected(np.eye(30)))
    squared = np.zeros((2, 30))
    squared[0, [FEATURES.index(d) for d in DAY_FEATURES]] = 1.0  # only the days wrong
    squared[1, 1] = 23 * 0.5  # one feature 23 times its held-out mean
    np.testing.assert_allclose(stats.standardised(squared), [0.0, 1.0])
    squared[1, 0] = 1e-4 * 23
    np.testing.assert_allclose(stats.standardised(squared)[1], 2.0)
    neutral = stats.neutral_days(np.ones((1, 30)))
    day_index = [FEATURES.index(d) for d in DAY_FEATURES]
    np.testing.assert_allclose(neutral[0, day_index], 1 / 30)  # np.eye(30): each day 1 row of 30
    assert neutral[0, 0] == 1.0


def test_a_weekday_absent_from_training_does_not_inflate_the_standardised_error(tmp_path):
    from raksha.training.fit import AutoencoderParams, fit_autoencoder

    week = [generate_day(dt.date(2026, 10, 5) + dt.timedelta(days=i), 500, 0.0, 3).sessions for i in range(6)]
    trained = fit_autoencoder(pd.concat(week)[FEATURES].reset_index(drop=True), AutoencoderParams(epochs=15))
    fields = trained.manifest_fields
    assert fields["feature_errors"]["features"] == FEATURES and len(fields["std_reference"]["quantiles"]) == 1001
    assert fields["feature_errors"]["expected"][FEATURES.index("day_of_week_sun")] == 0.0  # Monday to Saturday
    version = artifacts.write_version(tmp_path, contract.AE_MODEL, trained.files, {**fields, "source": "test"})
    scorer = BehaviorScorer(version)

    saturday = generate_day(dt.date(2026, 10, 17), 1000, 0.0, 9).sessions[FEATURES]
    sunday = saturday.assign(day_of_week_sat=0, day_of_week_sun=1)  # the same sessions, on the unseen day
    on_sat, on_sun = scorer.score(saturday), scorer.score(sunday)
    assert on_sun["ae_error"].median() > 1.15 * on_sat["ae_error"].median()  # the notebook's error is inflated
    np.testing.assert_allclose(on_sun["ae_std_error"], on_sat["ae_std_error"])
    np.testing.assert_allclose(on_sun["ae_surprise"], on_sat["ae_surprise"])
    assert (on_sun["ae_surprise"] >= 1).mean() < 0.15  # about the 10% of a normal day, not most of it


def test_versions_without_heldout_errors_keep_the_error_tail(imported):
    out = imported.score(generate_day(DAY, 50, 0.0, seed=4).sessions, with_reasons=False)
    assert out["ae_std_error"].isna().all()
    from raksha.scoring import calibration

    expected = calibration.fallback_surprise(out["ae_error"].to_numpy(), "ae", imported.threshold)
    np.testing.assert_allclose(out["ae_surprise"], expected)


def test_shipped_manifest_holds_heldout_errors_that_match_its_threshold(shipped):
    manifest = artifacts.load_version(MODELS, contract.AE_MODEL).manifest
    stats = FeatureErrors.from_json(manifest["feature_errors"])
    assert shipped.standardised and stats.heldout_mean is not None
    quantiles = manifest["std_reference"]["quantiles"]
    assert quantiles[500] == pytest.approx(manifest["std_error_metrics"]["heldout_std_error_p50"])
    assert 0.9 < manifest["std_error_metrics"]["heldout_std_error_mean"] < 1.1  # about 1 by construction
    with pytest.raises(ValueError, match="features differ"):
        FeatureErrors.from_json({**manifest["feature_errors"], "features": FEATURES[::-1]})


# ----------------------------------------------------------------------------------- Spark


def test_the_udf_returns_the_standardised_error_and_the_reasons(spark, shipped):
    from raksha.scoring import model_cache
    from raksha.scoring.udfs import BroadcastModel, models_udf, with_model_columns

    sessions, _ = altered_sessions(40, 24)
    sessions = sessions.astype({f: "float64" for f in FEATURES})
    frame = spark.createDataFrame(
        sessions.assign(session_id=[f"s{i}" for i in range(len(sessions))], action_tokens=[[1, 2, 8]] * len(sessions))
    )
    version = artifacts.load_version(MODELS, contract.AE_MODEL)
    counter = spark.sparkContext.accumulator({}, model_cache.CounterParam())
    udf = models_udf(BroadcastModel.of(spark, version, "keras"), None, 1, counter)
    rows = {r["session_id"]: r for r in with_model_columns(frame, udf).collect()}
    expected = BehaviorScorer(version, "keras").score(sessions)
    reasons = reason_lists(expected)
    for i in range(len(sessions)):
        row = rows[f"s{i}"]
        assert row["ae_std_error"] == pytest.approx(expected["ae_std_error"][i], rel=1e-5)
        assert row["ae_surprise"] == pytest.approx(expected["ae_surprise"][i], rel=1e-5)
        assert [r["feature"] for r in row["ae_reasons"]] == [r["feature"] for r in reasons[i]]
    assert sum(1 for r in rows.values() if r["ae_reasons"]) > 30


def test_what_was_not_measured_is_not_evidence_in_the_standardised_error():
    """A session without motion sensors or gps scores as if they had read the training's usual values; the
    notebook's ae_error still sees the zeros it was fed."""
    scorer = BehaviorScorer(artifacts.load_version(MODELS, contract.AE_MODEL))
    sessions = generate_day(DAY, 200, 0.0, seed=21).sessions
    observed = pd.DataFrame(feature_matrix(sessions), columns=FEATURES)
    missing = observed.copy()
    for feature in ("accel_variance", "gyro_variance", "gps_latitude", "gps_longitude"):
        missing[feature] = np.nan
    for indicator in ("accel_variance_missing", "gyro_variance_missing", "gps_location_missing"):
        missing[indicator] = 1.0
    usual = observed.copy()
    for feature in ("accel_variance", "gyro_variance", "gps_latitude", "gps_longitude"):
        usual[feature] = scorer.scaler.mean[FEATURES.index(feature)]
    for indicator in ("accel_variance_missing", "gyro_variance_missing", "gps_location_missing"):
        usual[indicator] = 0.0
    got, expected = scorer.score(missing, with_reasons=False), scorer.score(usual, with_reasons=False)
    np.testing.assert_allclose(got["ae_std_error"], expected["ae_std_error"], rtol=1e-6)
    assert (got["ae_error"] > expected["ae_error"]).mean() > 0.9  # the notebook's error is unchanged: zeros fed
