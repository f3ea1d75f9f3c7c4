"""The synthetic generator: deterministic, shaped as the contract, and realistic where the models look."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from raksha import contract
from raksha.synthetic import generate, generate_day
from raksha.synthetic.users import make_users
from raksha.synthetic.write import write_day

DAY = dt.date(2026, 11, 4)  # a Wednesday
N = 3000
SEED = 7
ATTACK_RATE = 0.06


@pytest.fixture(scope="module")
def day():
    return generate_day(DAY, N, ATTACK_RATE, seed=SEED)


@pytest.fixture(scope="module")
def users():
    return make_users(math.ceil(N * 250 / 1000), SEED)


def _sequences(day, kind: str | None) -> pd.Series:
    """Action tuples per session of one attack kind (None: normal sessions)."""
    labels = day.labels
    chosen = labels["attack_kind"].isna() if kind is None else labels["attack_kind"] == kind
    ids = set(labels.loc[chosen, "session_id"])
    actions = day.actions[day.actions["session_id"].isin(ids)].sort_values(["session_id", "seq_no"])
    return actions.groupby("session_id")["action"].agg(tuple)


def _rows(day, kind: str) -> pd.DataFrame:
    return day.sessions[(day.labels["attack_kind"] == kind).to_numpy()]


# --- determinism ---------------------------------------------------------------------------------


def test_same_arguments_same_frames_other_seed_or_day_other_data(day):
    again = generate_day(DAY, N, ATTACK_RATE, seed=SEED)
    for name in ("sessions", "actions", "labels"):
        pd.testing.assert_frame_equal(getattr(day, name), getattr(again, name))
    other_seed = generate_day(DAY, N, ATTACK_RATE, seed=SEED + 1)
    assert not day.sessions["tap_duration"].equals(other_seed.sessions["tap_duration"])
    assert not day.actions["action"].equals(other_seed.actions["action"])
    next_day = generate_day(DAY + dt.timedelta(days=1), N, ATTACK_RATE, seed=SEED)
    assert not day.sessions["tap_duration"].equals(next_day.sessions["tap_duration"])
    assert not day.sessions["session_id"].isin(next_day.sessions["session_id"]).any()


def test_same_arguments_write_the_same_bytes(tmp_path):
    for run in ("a", "b"):
        data = generate_day(DAY, 500, ATTACK_RATE, seed=SEED)
        write_day(data, DAY, *(str(tmp_path / run / t) for t in ("s", "a", "l")))
    for table in ("s", "a", "l"):
        first, second = (tmp_path / run / table / f"dt={DAY}" / "part-00000.parquet" for run in ("a", "b"))
        assert first.read_bytes() == second.read_bytes(), table


# --- the contract --------------------------------------------------------------------------------


def test_columns_and_dtypes_follow_the_contract(day):
    s, a, lab = day.sessions, day.actions, day.labels
    assert list(s.columns) == [f.name for f in contract.SESSIONS_SCHEMA.fields]
    assert list(a.columns) == [f.name for f in contract.ACTIONS_SCHEMA.fields]
    assert list(lab.columns) == [f.name for f in contract.LABELS_SCHEMA.fields]
    assert str(s["session_start"].dtype) == "datetime64[us, UTC]" and str(a["event_ts"].dtype) == "datetime64[us, UTC]"
    assert all(str(s[c].dtype) == "Float64" for c in contract.CONTINUOUS_FEATURES)
    assert all(str(s[c].dtype) == "Int32" for c in contract.BINARY_FEATURES)
    assert str(a["seq_no"].dtype) == "int32" and str(a["amount"].dtype) == "Float64"
    assert str(lab["is_attack"].dtype) == "int32"
    for column in (*contract.SESSION_ID_COLUMNS, "action"):
        frame = a if column == "action" else s
        assert frame[column].map(type).eq(str).all(), column


def test_values_lie_in_their_ranges_and_ids_are_well_formed(day):
    s = day.sessions
    for name in contract.CONTINUOUS_FEATURES:
        low, high = contract.feature_range(name)
        values = s[name].dropna().to_numpy(dtype=float)
        assert np.isfinite(values).all() and (values >= low).all() and (values <= high).all(), name
        assert values.std() > 0, name
    for name in contract.BINARY_FEATURES:
        assert s[name].notna().all() and set(s[name].unique()) <= {0, 1}, name
    start = pd.Timestamp(DAY, tz="UTC")
    assert s["session_start"].between(start, start + pd.Timedelta(days=1), inclusive="left").all()
    assert s["session_id"].is_unique and s["session_id"].str.fullmatch(r"s20261104-\d{8}").all()
    assert s["user_id"].str.fullmatch(r"u\d{7}").all() and s["device_id"].str.fullmatch(r"d\S+").all()
    assert (day.labels["session_id"] == s["session_id"]).all() and (day.labels["user_id"] == s["user_id"]).all()


@pytest.mark.parametrize("offset", range(7))
def test_day_of_week_one_hot_matches_the_date(offset):
    date = DAY + dt.timedelta(days=offset)
    s = generate_day(date, 50, 0.1, seed=1).sessions
    one_hot = s[list(contract.DAY_OF_WEEK_FEATURES)].to_numpy(dtype=int)
    expected = np.zeros(7, dtype=int)
    expected[date.weekday()] = 1
    assert (one_hot == expected).all()


def test_time_of_day_encodes_the_session_start_midnight_at_minus_one(day):
    s = day.sessions
    start = s["session_start"]
    hours = (start.dt.hour + start.dt.minute / 60 + start.dt.second / 3600 + start.dt.microsecond / 3.6e9).to_numpy()
    # the notebook's examples: midnight is (sin, cos) = (-1, 0), i.e. a quarter turn behind sin(2 pi h / 24)
    np.testing.assert_allclose(s["time_of_day_sin"].to_numpy(float), -np.cos(2 * np.pi * hours / 24), atol=1e-9)
    np.testing.assert_allclose(s["time_of_day_cos"].to_numpy(float), np.sin(2 * np.pi * hours / 24), atol=1e-9)


def test_missing_flags_match_the_nulls_exactly(day):
    s = day.sessions
    pairs = {
        "accel_variance_missing": ["accel_variance"],
        "gyro_variance_missing": ["gyro_variance"],
        "wifi_info_missing": ["wifi_id_hash"],
        "gps_location_missing": ["gps_latitude", "gps_longitude"],
    }
    for flag, columns in pairs.items():
        missing = (s[flag] == 1).to_numpy()
        assert 0 < missing.sum() < len(s), flag
        for column in columns:
            assert (s[column].isna().to_numpy() == missing).all(), column
    others = [c for c in contract.CONTINUOUS_FEATURES if c not in sum(pairs.values(), [])]
    assert s[others].notna().all().all()


# --- labels and attacks --------------------------------------------------------------------------


def test_attacks_of_every_kind_at_about_the_rate(day):
    labels = day.labels
    assert abs(labels["is_attack"].mean() - ATTACK_RATE) < 0.015
    assert set(labels["attack_kind"].dropna()) == set(contract.ATTACK_KINDS)
    assert (labels["attack_kind"].notna() == (labels["is_attack"] == 1)).all()
    assert set(labels["benign_oddity"].dropna()) == {"new_device", "travel", "low_battery_night", "missing_sensors"}
    assert labels.loc[labels["is_attack"] == 1, "benign_oddity"].isna().all()
    assert 0.06 < labels["benign_oddity"].notna().mean() < 0.18
    assert generate_day(DAY, 500, 0.0, seed=SEED).labels["is_attack"].sum() == 0
    assert generate_day(DAY, 500, 1.0, seed=SEED).labels["is_attack"].all()


def test_account_takeover_comes_from_a_new_device_far_from_home_at_night(day, users):
    ato = _rows(day, "account_takeover")
    index = ato["user_id"].str[1:].astype(int).to_numpy()
    assert ato["device_id"].str.startswith("dn").all()
    seen = ato["gps_latitude"].notna().to_numpy()
    distance = np.abs(ato["gps_latitude"].to_numpy(float, na_value=np.nan) - users.home_lat[index])[seen]
    assert (distance >= 0.15 - 1e-9).all()
    wifi = ato["wifi_id_hash"].to_numpy(float, na_value=np.nan)
    assert not np.isclose(wifi, users.home_wifi[index]).any()
    night = (ato["session_start"].dt.hour < 5) | (ato["session_start"].dt.hour >= 23)
    assert night.mean() > 0.4


def test_social_engineering_is_the_user_at_home_on_the_own_device(day, users):
    se = _rows(day, "social_engineering")
    index = se["user_id"].str[1:].astype(int).to_numpy()
    own = np.where(se["device_id"].str.endswith("a"), users.device_id[index], users.second_device_id[index])
    assert (se["device_id"].to_numpy() == own).all()
    np.testing.assert_allclose(se["wifi_id_hash"].to_numpy(float), users.home_wifi[index])
    seen = se["gps_latitude"].notna().to_numpy()
    assert (np.abs(se["gps_latitude"].to_numpy(float, na_value=np.nan) - users.home_lat[index])[seen] < 0.05).all()
    normal = day.sessions[day.labels["is_attack"].eq(0).to_numpy()]
    assert se["screen_on_time"].astype(float).median() > normal["screen_on_time"].astype(float).quantile(0.9)


def test_bots_are_too_fast_too_regular_and_tap_tiny_areas(day):
    bot = _rows(day, "bot")
    normal = day.sessions[day.labels["is_attack"].eq(0).to_numpy()]
    for name in ("tap_duration", "tap_interval_avg", "touch_area"):
        assert bot[name].astype(float).max() < normal[name].astype(float).quantile(0.01), name
    motion = bot["accel_variance"].to_numpy(float, na_value=0.0)
    assert (motion < 0.03).all() and bot["accel_variance_missing"].eq(1).any()
    assert bot["touch_event_count"].astype(float).min() > normal["touch_event_count"].astype(float).quantile(0.95)
    ids = set(bot["session_id"])
    gaps = day.actions[day.actions["session_id"].isin(ids)].groupby("session_id")["event_ts"].diff().dropna()
    assert (gaps < pd.Timedelta(seconds=1)).all()


# --- action sequences ----------------------------------------------------------------------------


def test_normal_sequences_look_like_the_notebooks_normal_traffic(day):
    normal = _sequences(day, None)
    assert 0.97 < normal.map(lambda s: s[0] == "LOGIN").mean() < 1.0  # a few sessions resumed without LOGIN
    assert 0.75 < normal.map(lambda s: s[-1] == "LOGOUT").mean() < 0.95
    lengths = normal.map(len)
    assert 4.5 < lengths.mean() < 6.5 and 10 < lengths.max() <= 25
    flat = pd.Series([a for s in normal for a in s])
    views = flat.isin(["VIEW_BALANCE", "VIEW_TRANSACTIONS"]).sum() / (~flat.isin(["LOGIN", "LOGOUT"])).sum()
    assert views > 0.7
    # not trivially separable: the risky actions also occur, rarely, in normal sessions
    risky = normal.map(lambda s: bool({"ADD_RECIPIENT", "TRANSFER_LARGE", "CHANGE_PASSWORD"} & set(s)))
    assert 0 < risky.mean() < 0.15
    # other strings occur
    unknown = ~day.actions["action"].isin(list(contract.ACTIONS))
    assert 0 < unknown.mean() < 0.05


def test_attack_sequences_include_the_notebooks_test_cases(day):
    ato = set(_sequences(day, "account_takeover"))
    login_cp_tl = ("LOGIN", "CHANGE_PASSWORD", "TRANSFER_LARGE")
    assert login_cp_tl in ato or (*login_cp_tl, "LOGOUT") in ato
    assert ("LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE") in ato
    for kind in contract.SEQUENCE_ATTACK_KINDS:
        sequences = _sequences(day, kind)
        assert sequences.map(lambda s: "TRANSFER_LARGE" in s and s[0] == "LOGIN").all(), kind
        assert sequences.map(lambda s: bool({"ADD_RECIPIENT", "CHANGE_PASSWORD"} & set(s))).all(), kind


def test_action_log_order_times_and_amounts(day):
    a = day.actions.merge(day.sessions[["session_id", "user_id", "session_start"]], on="session_id")
    assert len(a) == len(day.actions) and (a["user_id_x"] == a["user_id_y"]).all()
    assert set(day.sessions["session_id"]) == set(a["session_id"])
    assert (a["event_ts"] > a["session_start"]).all()
    assert (a["event_ts"] - a["session_start"]).max() < pd.Timedelta(hours=1)  # sessions last minutes
    a = a.sort_values(["session_id", "seq_no"])
    per_session = a.groupby("session_id")
    assert (per_session["seq_no"].transform(lambda s: np.arange(1, len(s) + 1)) == a["seq_no"]).all()
    assert (per_session["event_ts"].diff().dropna() > pd.Timedelta(0)).all()
    amount = a["amount"]
    small, large = a["action"] == "TRANSFER_SMALL", a["action"] == "TRANSFER_LARGE"
    assert amount[small].between(0.01, 500, inclusive="left").all() and amount[small].notna().all()
    assert (amount[large] > 10_000).all() and amount[large].notna().all()
    assert amount[~small & ~large].isna().all()


# --- users ---------------------------------------------------------------------------------------


def test_users_keep_their_habits_across_days_and_volumes():
    assert (make_users(100, SEED).home_lat == make_users(3000, SEED).home_lat[:100]).all()
    assert not (make_users(100, SEED).home_lat == make_users(100, SEED + 1).home_lat).any()
    a = generate_day(DAY, 2000, 0.0, seed=3)
    b = generate_day(DAY + dt.timedelta(days=1), 6000, 0.0, seed=3)

    def habits(data):
        s = data.sessions[data.labels["benign_oddity"].isna().to_numpy()]
        return s.groupby("user_id")[["gps_latitude", "tap_duration"]].median().astype(float)

    both = habits(a).join(habits(b), how="inner", lsuffix="_a", rsuffix="_b").dropna()
    assert len(both) > 200
    assert (both["gps_latitude_a"] - both["gps_latitude_b"]).abs().median() < 0.02
    # and users differ from each other much more than a user from day to day
    assert both["gps_latitude_a"].std() > 0.1
    shuffled = both["tap_duration_b"].sample(frac=1, random_state=0).to_numpy()
    same = (both["tap_duration_a"] - both["tap_duration_b"]).abs().median()
    assert same < 0.6 * np.median(np.abs(both["tap_duration_a"].to_numpy() - shuffled))
    own = a.sessions["device_id"].str.fullmatch(r"d\d{7}[ab]")
    assert own.mean() > 0.9  # most sessions on a device the user always uses


# --- files ---------------------------------------------------------------------------------------


def test_written_parquet_has_utc_microseconds_real_nulls_and_replaces_the_day(tmp_path):
    roots = [str(tmp_path / t) for t in ("s", "a", "l")]
    stale = tmp_path / "s" / f"dt={DAY}" / "part-99999.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    summary = generate(DAY, 2, 500, 0.05, SEED, *roots)
    assert not stale.exists()
    assert summary["sessions"] == 1000 and summary["days"] == 2
    assert summary["attacks"] == sum(summary[k] for k in contract.ATTACK_KINDS) > 0
    sessions = pq.read_table(tmp_path / "s" / f"dt={DAY}" / "part-00000.parquet")
    actions = pq.read_table(tmp_path / "a" / f"dt={DAY}" / "part-00000.parquet")
    labels = pq.read_table(tmp_path / "l" / f"dt={DAY + dt.timedelta(days=1)}" / "part-00000.parquet")
    assert sessions.schema.field("session_start").type == pa.timestamp("us", tz="UTC")
    assert actions.schema.field("event_ts").type == pa.timestamp("us", tz="UTC")
    assert actions.schema.field("seq_no").type == pa.int32() and actions.schema.field("amount").type == pa.float64()
    assert all(sessions.schema.field(c).type == pa.float64() for c in contract.CONTINUOUS_FEATURES)
    assert all(sessions.schema.field(c).type == pa.int32() for c in contract.BINARY_FEATURES)
    assert labels.schema.field("is_attack").type == pa.int32()
    assert labels.schema.field("attack_kind").type == pa.string()
    assert (
        summary["actions"]
        == actions.num_rows
        + pq.read_table(tmp_path / "a" / f"dt={DAY + dt.timedelta(days=1)}" / "part-00000.parquet").num_rows
    )
    for table, column in (
        (sessions, "gps_latitude"),
        (sessions, "wifi_id_hash"),
        (sessions, "accel_variance"),
        (actions, "amount"),
    ):
        values = table.column(column)
        present = values.drop_null().to_numpy()
        assert values.null_count > 0 and not np.isnan(present).any(), column
    assert labels.column("attack_kind").null_count == labels.num_rows - pc.sum(labels.column("is_attack")).as_py()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [f"dt={DAY}", f"dt={DAY + dt.timedelta(days=1)}"]


# --- edges ---------------------------------------------------------------------------------------


def test_an_empty_day_has_the_same_columns():
    empty = generate_day(DAY, 0, 0.05, seed=SEED)
    full = generate_day(DAY, 10, 0.05, seed=SEED)
    for name in ("sessions", "actions", "labels"):
        frame = getattr(empty, name)
        assert frame.empty and (frame.dtypes == getattr(full, name).dtypes).all(), name


@pytest.mark.parametrize(
    "kwargs", [{"attack_rate": -0.1}, {"attack_rate": 1.5}, {"n_sessions": -1}, {"users_per_1000_sessions": 0}]
)
def test_bad_arguments_are_refused(kwargs):
    args = {"day": DAY, "n_sessions": 10, "attack_rate": 0.05, "seed": SEED, **kwargs}
    with pytest.raises(ValueError):
        generate_day(**args)
