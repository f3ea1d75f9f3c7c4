"""Each user's own baseline: the fold of a day into the state, the score against it, its reasons, and the
snapshots the nightly job keeps (raksha.baselines)."""

from __future__ import annotations

import datetime as dt

import factories
import numpy as np
import pandas as pd
import pytest
from conftest import test_config as config_under

from raksha import contract
from raksha.baselines import fold, habits, nightly, snapshots
from raksha.baselines.habits import Population, Settings
from raksha.pipeline.daily import run
from raksha.platform import tables
from raksha.synthetic import generate_day

DAY = dt.date(2026, 3, 2)
POPULATION = Population({f: 0.5 for f in contract.BASELINE_FEATURES}, {f: 0.2 for f in contract.BASELINE_FEATURES})


@pytest.fixture
def settings(cfg) -> Settings:
    return Settings.of(cfg)


def _sessions(spark, rows: list[dict]) -> object:
    """Sessions with the columns the baselines read; unset features are the population's mean."""
    full = []
    for i, row in enumerate(rows):
        base = {f: 0.5 for f in contract.CONTINUOUS_FEATURES}
        base.update(
            {"session_id": f"s{i}", "user_id": "u1", "device_id": "d1", "decision": "ALLOW", "wifi_id_hash": 0.25}
        )
        base.update({"gps_latitude": 0.40, "gps_longitude": 0.60, "time_of_day_sin": 0.0, "time_of_day_cos": 1.0})
        base.update(row)
        full.append(base)
    frame = pd.DataFrame(full)
    return spark.createDataFrame(frame)


def _score(sessions, state, day, population, settings):
    expected = None if state is None else habits.expectations(state, day, population, settings)
    return habits.score(sessions, expected, population, settings)


def _habit_rows(rng, n: int, **fixed) -> list[dict]:
    rows = []
    for _ in range(n):
        row = {f: float(np.clip(rng.normal(0.3, 0.02), 0, 1)) for f in contract.BASELINE_FEATURES}
        row.update(fixed)
        rows.append(row)
    return rows


def test_a_fold_adds_the_days_sums_to_the_old_ones_decayed_and_leaves_out_blocked_and_fraud(spark, settings):
    rng = np.random.default_rng(1)
    first = _habit_rows(rng, 6)
    state = fold.fold_day(None, _sessions(spark, first), DAY, POPULATION, settings, "r1").toPandas()
    assert len(state) == 1 and state.loc[0, "sessions"] == 6
    # a new user's values are clipped to the population's mean +- 3 spreads (0.5 +- 0.6: nothing here)
    values = np.array([r["tap_duration"] for r in first])
    assert state.loc[0, "tap_duration_sum"] == pytest.approx(values.sum())
    assert state.loc[0, "tap_duration_sumsq"] == pytest.approx(np.square(values).sum())

    later = DAY + dt.timedelta(days=15)
    second = _habit_rows(rng, 3)
    extra = [
        {**_habit_rows(rng, 1)[0], "decision": "BLOCK"},  # blocked: does not count
        {**_habit_rows(rng, 1)[0], "session_id": "fraudulent"},  # an analyst said fraud
        {"tap_duration": 1.0},  # far off the user's habit: clipped before it counts
    ]
    frame = _sessions(spark, second + extra)
    fraud_ids = spark.createDataFrame([("fraudulent",)], "session_id string")
    state2 = fold.fold_day(
        spark.createDataFrame(state, contract.USER_BASELINES_SCHEMA),
        frame,
        later,
        POPULATION,
        settings,
        "r2",
        fraud_ids,
    ).toPandas()
    decay = 0.5 ** (15 / settings.half_life_days)
    kept = [r["tap_duration"] for r in second]
    assert state2.loc[0, "sessions"] == 6 + 4  # the three, the clipped one; not the blocked one nor the fraud
    n = 6 * decay
    mean = values.mean()
    var = np.square(values).mean() - mean**2
    shrunk_mean = (n * mean + settings.prior_sessions * 0.5) / (n + settings.prior_sessions)
    shrunk_var = (n * var + settings.prior_sessions * 0.04) / (n + settings.prior_sessions)
    shrunk_sd = np.sqrt(max(shrunk_var, settings.variance_floor * 0.04))
    clipped = min(1.0, shrunk_mean + settings.winsorize_sd * shrunk_sd)
    assert state2.loc[0, "tap_duration_weight"] == pytest.approx(6 * decay + 4)
    assert state2.loc[0, "tap_duration_sum"] == pytest.approx(values.sum() * decay + sum(kept) + clipped)
    assert state2.loc[0, "last_seen"] == later and state2.loc[0, "first_seen"] == DAY
    assert state2.loc[0, "run_id"] == "r2"


def test_devices_are_merged_capped_to_the_latest_and_forgotten_after_their_age(spark, settings):
    rows = [{"device_id": f"d{i}", "wifi_id_hash": None} for i in range(7)]
    state = fold.fold_day(None, _sessions(spark, rows), DAY, POPULATION, settings, "r1")
    devices = state.toPandas().loc[0, "devices"]
    assert len(devices) == settings.max_devices  # 7 seen, the cap kept (same day, same use: by id)
    later = DAY + dt.timedelta(days=settings.forget_after_days - 1)
    state2 = fold.fold_day(state, _sessions(spark, [{"device_id": "d9"}]), later, POPULATION, settings, "r2")
    ids = [d["id"] for d in state2.toPandas().loc[0, "devices"]]
    assert ids[0] == "d9" and len(ids) == settings.max_devices
    gone = later + dt.timedelta(days=2)
    state3 = fold.fold_day(state2, _sessions(spark, [{"device_id": "d9"}]), gone, POPULATION, settings, "r3")
    assert [d["id"] for d in state3.toPandas().loc[0, "devices"]] == ["d9"]  # the others were not seen for too long
    assert state3.toPandas().loc[0, "devices"][0]["sessions"] == 2  # seen on two days


def test_sets_folded_day_after_day_equal_a_plain_python_fold(spark, settings):
    """Devices and places (a key of two cells) over ten days of random use (some days skipped) against the
    rule written plainly: per key the sessions summed and the last day seen; those not seen for
    forget_after_days dropped; the newest first, then the most used, then the key; at most max_* kept."""
    from dataclasses import replace

    small = replace(settings, forget_after_days=3, max_devices=3, max_places=3)
    cell = small.place_cell
    rng = np.random.default_rng(7)
    state, expected, day = None, {"devices": {}, "places": {}}, DAY
    for i in range(10):
        day += dt.timedelta(days=2 if i % 3 == 2 else 1)  # a day skipped now and then
        users = [u for u in ("u1", "u2", "u3") if rng.random() < 0.8]
        rows = []
        for u in users:
            for j in range(int(rng.integers(1, 5))):
                device, lat, lon = f"d{rng.integers(0, 6)}", *(int(c) for c in rng.integers(0, 3, size=2))
                row = {"user_id": u, "session_id": f"{day}-{u}-{j}", "device_id": device}
                row.update({"gps_latitude": (lat + 0.5) * cell, "gps_longitude": (lon + 0.5) * cell})
                rows.append((row, {"devices": (device,), "places": (lat, lon)}))
        if not rows:
            continue
        state = fold.fold_day(
            state, _sessions(spark, [r for r, _ in rows]), day, POPULATION, small, "r"
        ).localCheckpoint()
        for kind, cap in (("devices", small.max_devices), ("places", small.max_places)):
            for u in {r["user_id"] for r, _ in rows}:
                seen = expected[kind].setdefault(u, {})
                for r, keys in rows:
                    if r["user_id"] == u:
                        uses, _ = seen.get(keys[kind], (0, day))
                        seen[keys[kind]] = (uses + 1, day)
                recent = {k: v for k, v in seen.items() if v[1] > day - dt.timedelta(days=small.forget_after_days)}
                order = sorted(recent, key=lambda k: ((day - recent[k][1]).days, -recent[k][0], k))
                expected[kind][u] = {k: recent[k] for k in order[:cap]}
        got = state.toPandas().set_index("user_id")
        for kind, fields in (("devices", ("id",)), ("places", ("lat_cell", "lon_cell"))):
            for u, seen in expected[kind].items():
                if u in got.index:
                    assert [(tuple(e[f] for f in fields), e["sessions"], e["last_seen"]) for e in got.loc[u, kind]] == [
                        (k, uses, last) for k, (uses, last) in seen.items()
                    ], (day, u, kind)


def test_the_score_is_the_exact_sum_of_its_causes_against_the_users_own_habits(spark, settings):
    rng = np.random.default_rng(2)
    history = _habit_rows(rng, 20)
    state = fold.fold_day(None, _sessions(spark, history), DAY, POPULATION, settings, "r1")
    odd = {f: 0.3 for f in contract.BASELINE_FEATURES}
    odd.update({"touch_pressure": 0.9, "device_id": "new-phone", "session_id": "x"})
    usual = {f: 0.3 for f in contract.BASELINE_FEATURES}
    usual["session_id"] = "y"
    day = DAY + dt.timedelta(days=1)
    sessions = _sessions(spark, [odd, usual])
    out = _score(sessions, state, day, POPULATION, settings).toPandas().set_index("session_id")
    assert out["has_user_baseline"].all()
    # touch_pressure in numpy: the user's mean and spread shrunk towards the population's
    values = np.array([r["touch_pressure"] for r in history])
    n = 20 * 0.5 ** (1 / settings.half_life_days)
    mean = (n * values.mean() + settings.prior_sessions * 0.5) / (n + settings.prior_sessions)
    var = (n * values.var() + settings.prior_sessions * 0.04) / (n + settings.prior_sessions)
    z2 = min((0.9 - mean) ** 2 / max(var, settings.variance_floor * 0.04), settings.feature_cap)
    reasons = out.loc["x", "user_baseline_reasons"]
    assert reasons[0]["code"] == "TOUCH_PRESSURE_HIGH_FOR_USER" and reasons[0]["feature"] == "touch_pressure"
    assert reasons[0]["value"] == pytest.approx(0.9) and reasons[0]["expected"] == pytest.approx(mean)
    assert reasons[0]["contribution"] * out.loc["x", "user_baseline_score"] == pytest.approx(z2)
    assert [r["code"] for r in reasons[:2]] == ["TOUCH_PRESSURE_HIGH_FOR_USER", "NEW_DEVICE"]
    assert reasons[1]["contribution"] * out.loc["x", "user_baseline_score"] == pytest.approx(settings.new_device_weight)
    assert out.loc["x", "user_baseline_score"] > 10 * out.loc["y", "user_baseline_score"]
    assert sum(r["contribution"] for r in reasons) <= 1.0 + 1e-9


def test_a_user_without_history_is_compared_with_the_population_and_nothing_is_new(spark, settings):
    row = {f: 0.5 for f in contract.BASELINE_FEATURES}
    row["tap_duration"] = 0.9  # two population spreads above its mean
    out = _score(_sessions(spark, [row]), None, DAY, POPULATION, settings).toPandas()
    assert not out.loc[0, "has_user_baseline"]
    assert out.loc[0, "user_baseline_score"] == pytest.approx(((0.9 - 0.5) / 0.2) ** 2)
    assert [r["code"] for r in out.loc[0, "user_baseline_reasons"]] == ["TAP_DURATION_HIGH_FOR_USER"]
    # with no snapshot at all (no join) a user is scored as a user missing from a snapshot is (the join)
    someone_else = _sessions(spark, _habit_rows(np.random.default_rng(2), 3, user_id="u9"))
    state = fold.fold_day(None, someone_else, DAY, POPULATION, settings, "r")
    joined = _score(_sessions(spark, [row]), state, DAY, POPULATION, settings).toPandas()
    columns = ["user_baseline_score", "has_user_baseline", "user_baseline_reasons"]
    pd.testing.assert_frame_equal(out[columns], joined[columns])


def test_reasons_only_where_the_score_is_notable_against_the_reference(spark, settings):
    """A usual session (tail above 10% of the day before's scores) names no cause; an odd one does."""
    from raksha.baselines.nightly import REASON_MIN_SURPRISE, SURPRISE, Baselines

    rng = np.random.default_rng(4)
    state = fold.fold_day(None, _sessions(spark, _habit_rows(rng, 20)), DAY, POPULATION, settings, "r1")
    reference = list(np.linspace(0.0, 20.0, 1001))  # the day before: scores spread evenly over 0-20
    day = DAY + dt.timedelta(days=1)
    baselines = Baselines(day, DAY, state, reference, POPULATION, settings)
    usual = {f: 0.3 for f in contract.BASELINE_FEATURES}
    odd = {**usual, "touch_pressure": 0.9, "device_id": "new-phone"}
    out = baselines.score(_sessions(spark, [usual, odd])).toPandas()
    assert 0 < out.loc[0, "user_baseline_score"] and out.loc[0, SURPRISE] < REASON_MIN_SURPRISE
    assert len(out.loc[0, "user_baseline_reasons"]) == 0
    assert out.loc[1, SURPRISE] >= REASON_MIN_SURPRISE
    assert out.loc[1, "user_baseline_reasons"][0]["code"] == "TOUCH_PRESSURE_HIGH_FOR_USER"


def test_an_unusual_hour_is_measured_on_the_circle(spark, settings):
    # a user always at 23:00; a session at 01:00 is two hours away, not 22
    angle = lambda h: 2 * np.pi * h / 24 + contract.TIME_OF_DAY_PHASE  # noqa: E731
    history = [{"time_of_day_sin": np.sin(angle(23.0)), "time_of_day_cos": np.cos(angle(23.0))} for _ in range(30)]
    state = fold.fold_day(None, _sessions(spark, history), DAY, POPULATION, settings, "r1")
    near = {"time_of_day_sin": np.sin(angle(1.0)), "time_of_day_cos": np.cos(angle(1.0))}
    far = {"time_of_day_sin": np.sin(angle(11.0)), "time_of_day_cos": np.cos(angle(11.0))}
    out = _score(_sessions(spark, [near, far]), state, DAY, POPULATION, settings).toPandas()
    reasons = {r["code"]: r for r in out.loc[0, "user_baseline_reasons"]}
    hour = reasons["UNUSUAL_HOUR_FOR_USER"]
    assert hour["value"] == pytest.approx(1.0) and hour["expected"] == pytest.approx(23.0)
    n = 30 * 0.5**0
    weight = n / (n + settings.prior_sessions)
    assert hour["contribution"] * out.loc[0, "user_baseline_score"] == pytest.approx(
        weight * (2.0 / settings.hour_floor_hours) ** 2
    )
    far_reasons = {r["code"]: r for r in out.loc[1, "user_baseline_reasons"]}
    assert far_reasons["UNUSUAL_HOUR_FOR_USER"]["contribution"] * out.loc[1, "user_baseline_score"] == pytest.approx(
        weight * settings.hour_cap
    )


def test_the_first_reason_names_an_altered_habit_on_sessions_altered_to_extremes(spark, settings):
    """Normal generated sessions of users with a history, 2-3 habit features pushed to 0 or 1: the first
    reason names one of them (the issue asks for 95%)."""
    start = dt.date(2026, 3, 1)
    days = [generate_day(start + dt.timedelta(days=i), 1500, 0.0, seed=5, users_per_1000_sessions=60) for i in range(4)]
    state = None
    for i, day in enumerate(days[:3]):
        state = fold.fold_day(
            state,
            spark.createDataFrame(day.sessions),
            start + dt.timedelta(days=i),
            POPULATION_OF_GENERATOR,
            settings,
            "r",
        ).persist()
    test = days[3].sessions.iloc[:400].copy()
    rng = np.random.default_rng(3)
    altered = []
    for i in range(len(test)):
        picked = rng.choice(contract.BASELINE_FEATURES, size=rng.integers(2, 4), replace=False)
        for feature in picked:
            test.loc[test.index[i], feature] = float(rng.integers(0, 2))
        altered.append(set(picked))
    scored = _score(
        spark.createDataFrame(test), state, start + dt.timedelta(days=3), POPULATION_OF_GENERATOR, settings
    ).toPandas()
    scored = scored.set_index("session_id").loc[test["session_id"]]
    first = [r[0]["feature"] if len(r) else None for r in scored["user_baseline_reasons"]]
    hits = np.mean([f in a for f, a in zip(first, altered, strict=True)])
    assert scored["has_user_baseline"].mean() > 0.9
    assert hits >= 0.95, hits


def _generator_population() -> Population:
    day = generate_day(dt.date(2026, 2, 1), 3000, 0.0, seed=5)
    frame = day.sessions[list(contract.BASELINE_FEATURES)].astype(float)
    return Population(frame.mean().to_dict(), frame.std(ddof=0).to_dict())


POPULATION_OF_GENERATOR = _generator_population()


def test_the_reference_observed_while_the_day_is_built_is_the_reference_of_the_published_day(spark):
    """The nightly job takes the day's reference as an observation of the pass that builds (and keeps) its
    scored day, over the rows it then publishes: the same as a pass over those rows."""
    from pyspark import StorageLevel
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    rng = np.random.default_rng(3)
    n = 400
    rows = pd.DataFrame(
        {
            "session_id": [f"s{i}" for i in range(n)],
            "user_baseline_score": rng.gamma(2.0, 3.0, n),
            "has_user_baseline": rng.random(n) > 0.2,
            "decision": rng.choice(["ALLOW", "REVIEW", "BLOCK", None], n, p=[0.6, 0.2, 0.1, 0.1]),
            "failed": rng.random(n) > 0.9,  # stands for a model output that is not a number: not published
        }
    )
    rows.loc[rows.index % 37 == 0, "user_baseline_score"] = np.nan  # a null score is skipped, still counted
    frame = spark.createDataFrame(rows).withColumn(
        "user_baseline_score", F.when(~F.isnan("user_baseline_score"), F.col("user_baseline_score"))
    )
    observation = Observation("reference")
    kept = frame.observe(observation, *snapshots.reference_metrics(~F.col("failed"))).persist(StorageLevel.DISK_ONLY)
    try:
        assert kept.agg(F.count("*")).first()[0] == n  # the job's first pass over the kept day
        observed = snapshots.reference_of(observation.get)
        published = kept.where(~F.col("failed"))
        assert observed == snapshots.reference_quantiles(published)
        expected_n = int((~rows["failed"] & rows["has_user_baseline"] & (rows["decision"] != "BLOCK")).sum())
        assert observed[0] == expected_n > 100 and len(observed[1]) == snapshots.QUANTILES
    finally:
        kept.unpersist()


def test_nightly_days_are_scored_against_the_day_before_and_reruns_rebuild_what_follows(spark, tmp_path):
    cfg = config_under(tmp_path, "baseline.enabled=true")
    factories.write_untrained_models(cfg.path("models"))
    days = [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
    for i, day in enumerate(days):
        sessions = factories.sessions_frame(day, 60, seed=10 + i)
        factories.write_partition(sessions, cfg.path("sessions"), day)
        factories.write_partition(factories.actions_frame(sessions, seed=i), cfg.path("actions"), day)
    first = run(spark, cfg, days[0])
    scored = factories.read_table_day(cfg, "scored_sessions", days[0])
    assert all("NO_USER_BASELINE" in f for f in scored["dq_flags"])  # no snapshot before the first day
    assert scored["user_baseline_score"].notna().all()
    assert snapshots.snapshot_dates(spark, cfg) == [days[0]]
    assert {contract.USER_BASELINES, contract.USER_BASELINE_REFERENCE} <= set(first.versions)

    run(spark, cfg, days[1])
    second = factories.read_table_day(cfg, "scored_sessions", days[1]).set_index("session_id").sort_index()
    assert not any("NO_USER_BASELINE" in f for f in second["dq_flags"])  # the same 20 users came back
    assert any(r["code"].endswith("_FOR_USER") for reasons in second["reasons"] for r in reasons)
    snapshot_2 = factories.read_table_day(cfg, contract.USER_BASELINES, days[1]).set_index("user_id").sort_index()
    assert (snapshot_2["sessions"] == 6).all()  # three sessions a day each (60 sessions, 20 users)

    # a rerun of the second day reads the same snapshot: the same scores
    run(spark, cfg, days[1])
    again = factories.read_table_day(cfg, "scored_sessions", days[1]).set_index("session_id").sort_index()
    pd.testing.assert_series_equal(again["user_baseline_score"], second["user_baseline_score"])
    pd.testing.assert_series_equal(again["risk_score"], second["risk_score"])

    # the first day's input changes and is rerun: its snapshot is folded again, the second day's rebuilt on it
    changed = factories.sessions_frame(days[0], 30, seed=99)
    factories.write_partition(changed, cfg.path("sessions"), days[0])
    factories.write_partition(factories.actions_frame(changed), cfg.path("actions"), days[0])
    rerun = run(spark, cfg, days[0])
    rebuilt = factories.read_table_day(cfg, contract.USER_BASELINES, days[1]).set_index("user_id").sort_index()
    assert (rebuilt["run_id"] == rerun.run_id).all()
    assert rebuilt["sessions"].sum() == 30 + 60

    # raksha baseline build from the input history gives the snapshot the nightly job folded
    folded = _comparable(factories.read_table_day(cfg, contract.USER_BASELINES, days[0]))
    built = nightly.build(spark, cfg, days[0], days[1])
    assert built["built"] == days and built["users"] == len(rebuilt)
    pd.testing.assert_frame_equal(
        _comparable(factories.read_table_day(cfg, contract.USER_BASELINES, days[0])), folded, rtol=1e-9
    )
    assert tables.exists(spark, cfg, contract.USER_BASELINE_REFERENCE)

    # restoring the first day as its first run wrote it rebuilds the second day's snapshot on it again
    from raksha.platform import history

    restored = history.restore(spark, cfg, days[0], first.run_id)
    again = factories.read_table_day(cfg, contract.USER_BASELINES, days[1])
    assert (again["run_id"] == restored.run_id).all() and again["sessions"].sum() == 60 + 60


def _comparable(snapshot: pd.DataFrame) -> pd.DataFrame:
    """A snapshot without its run, sets as sorted tuples, by user."""
    out = snapshot.drop(columns=["run_id"]).set_index("user_id").sort_index()
    for kind in fold.SET_KINDS:
        out[kind] = [tuple(sorted(tuple(sorted(d.items())) for d in items)) for items in out[kind]]
    return out
