"""Synthetic days of mobile-banking sessions that look like a bank's, with ground truth.

The model of the data:

- **Users** (fixed for a seed, the same on every day): a primary device (some have a second),
  a home place (gps) and home wifi, usual hours of activity, and personal touch and motion
  dynamics. Activity is skewed: a few users have many sessions, most have few.
- **Normal sessions** vary around their user's habits: mostly at home on the home wifi,
  sometimes elsewhere or on mobile data; touch dynamics with session noise; actions like the
  LSTM notebook's normal traffic (LOGIN, views, sometimes a small transfer, usually LOGOUT),
  about 5-6 actions on average, a few long sessions, rarely a legitimate ADD_RECIPIENT,
  CHANGE_PASSWORD or TRANSFER_LARGE, and a few actions outside the vocabulary.
- **Benign oddities** among normal sessions, so that nothing is trivially separable: a new
  phone, travel, low battery at night, missing motion sensors.
- **Attacks** at ``attack_rate``, each labelled with its kind:
  ``account_takeover`` (a new device and place, an unusual hour, another person's touch, an
  aggressive sequence such as LOGIN, CHANGE_PASSWORD, TRANSFER_LARGE); ``bot`` (too fast, too
  regular, a tiny touch area, many touch events; an ordinary-looking sequence);
  ``social_engineering`` (the user's own device, place and touch, hesitant and long, with an
  unusual sequence such as LOGIN, VIEW_BALANCE, ADD_RECIPIENT, TRANSFER_LARGE).

Time of day is encoded on the unit circle with midnight at (sin, cos) = (-1, 0), as the
autoencoder notebook's examples read ("time_of_day_sin: -1.0  # midnight"): the angle is
``2*pi*hour/24 - pi/2``. Everything is vectorized numpy and deterministic for a seed: the
users come from ``SeedSequence([seed])``, each day from ``SeedSequence([seed, ordinal])``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raksha import contract

log = logging.getLogger(__name__)

UNKNOWN_ACTION_NAMES = ("VIEW_CARD", "OPEN_SUPPORT_CHAT", "SCAN_QR", "VIEW_OFFERS")
ODDITIES = ("new_device", "travel", "low_battery_night", "missing_sensors")
ODDITY_RATE = 0.03  # of normal sessions, for each oddity
ATTACK_MIX = {"account_takeover": 0.4, "bot": 0.3, "social_engineering": 0.3}

A = contract.ACTIONS
# Action codes: the vocabulary's, plus 100 + i for UNKNOWN_ACTION_NAMES[i].
ACTION_NAME_BY_CODE = {**contract.ACTION_NAMES, **{100 + i: n for i, n in enumerate(UNKNOWN_ACTION_NAMES)}}
ACTION_NAME_TABLE = np.empty(max(ACTION_NAME_BY_CODE) + 1, dtype=object)
for _code, _name in ACTION_NAME_BY_CODE.items():
    ACTION_NAME_TABLE[_code] = _name
# What a normal user does after LOGIN, step by step (LOGOUT handled apart).
NORMAL_STEPS = np.array(
    [A["VIEW_BALANCE"], A["VIEW_TRANSACTIONS"], A["TRANSFER_SMALL"], A["ADD_RECIPIENT"], A["TRANSFER_LARGE"],
     A["CHANGE_PASSWORD"], 100, 101, 102, 103]
)
NORMAL_STEP_P = np.array([0.42, 0.38, 0.11, 0.012, 0.008, 0.005, 0.02, 0.015, 0.005, 0.005])
NORMAL_STEP_P = NORMAL_STEP_P / NORMAL_STEP_P.sum()

L, VB, VT, TS, TL, CP, AR, LO = (A[k] for k in ("LOGIN", "VIEW_BALANCE", "VIEW_TRANSACTIONS", "TRANSFER_SMALL",
                                                "TRANSFER_LARGE", "CHANGE_PASSWORD", "ADD_RECIPIENT", "LOGOUT"))
ATTACK_SEQUENCES = {
    "account_takeover": [
        [L, CP, TL], [L, CP, TL, LO], [L, AR, TL], [L, AR, TL, LO], [L, CP, AR, TL, TL, LO], [L, VB, AR, TL, LO],
        [L, CP, AR, TL], [L, VB, CP, TL, LO],
    ],
    "social_engineering": [
        [L, VB, AR, TL, TL], [L, VB, VT, AR, TL, LO], [L, AR, TS, TL, LO], [L, VB, CP, AR, TL],
        [L, VB, AR, TL, LO], [L, VT, VB, AR, TL, TL, LO],
    ],
}


@dataclass
class DayData:
    sessions: pd.DataFrame
    actions: pd.DataFrame
    labels: pd.DataFrame


@dataclass
class Users:
    user_id: np.ndarray
    device_id: np.ndarray
    second_device_id: np.ndarray
    has_second_device: np.ndarray
    home_lat: np.ndarray
    home_lon: np.ndarray
    home_wifi: np.ndarray
    usual_hour: np.ndarray
    traits: np.ndarray  # (n_users, 3): firmness, speed, steadiness
    brightness: np.ndarray
    activity: np.ndarray


# Population means of a user's touch and motion habits: the autoencoder notebook's normal_example.
TOUCH_MEANS = {"tap_duration": (0.2, 0.04), "swipe_velocity": (0.72, 0.08), "touch_pressure": (0.68, 0.08),
               "tap_interval_avg": (0.3, 0.05), "touch_area": (0.6, 0.07), "device_orientation": (0.5, 0.06)}
MOTION_MEANS = {"accel_variance": (0.3, 0.06), "gyro_variance": (0.25, 0.05)}
# Biometrics are correlated, as in the notebook's "correlated" training data: two latent traits
# of a hand, firmness and speed (and one of motion, steadiness), drive the touch and motion
# features; each feature's loading on (firmness, speed, steadiness), the rest is its own noise.
LOADINGS = {
    "touch_pressure": (0.95, 0.0, 0.0), "touch_area": (0.9, 0.0, 0.0), "tap_duration": (0.55, -0.65, 0.0),
    "swipe_velocity": (0.0, 0.92, 0.0), "tap_interval_avg": (0.0, -0.9, 0.0), "device_orientation": (0.0, 0.0, 0.4),
    "accel_variance": (0.0, 0.0, 0.93), "gyro_variance": (0.0, 0.0, 0.9),
}


def _dynamics(latent: np.ndarray, noise: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Touch and motion features from latent traits (n, 3) and per-feature noise (n, features)."""
    means = {**TOUCH_MEANS, **MOTION_MEANS}
    out = {}
    for j, (name, loading) in enumerate(LOADINGS.items()):
        weight = np.asarray(loading)
        own = np.sqrt(max(0.0, 1.0 - float(weight @ weight)))
        mean, sd = means[name]
        out[name] = mean + scale * sd * (latent @ weight + own * noise[:, j])
    return out


def make_users(n_users: int, seed: int) -> Users:
    """The user population of a seed: the same on every day."""
    rng = np.random.default_rng(np.random.SeedSequence([seed]))
    idx = np.arange(n_users)
    # usual hours: a morning, a lunchtime and an evening crowd
    centre = rng.choice(np.array([8.0, 12.5, 19.5]), n_users, p=[0.35, 0.3, 0.35])
    return Users(
        user_id=np.array([f"u{i:07d}" for i in idx], dtype=object),
        device_id=np.array([f"d{i:07d}a" for i in idx], dtype=object),
        second_device_id=np.array([f"d{i:07d}b" for i in idx], dtype=object),
        has_second_device=rng.random(n_users) < 0.25,
        home_lat=rng.uniform(0.15, 0.85, n_users),
        home_lon=rng.uniform(0.15, 0.85, n_users),
        home_wifi=rng.uniform(0.05, 1.0, n_users),
        usual_hour=centre + rng.normal(0, 1.2, n_users),
        traits=rng.normal(0, 1, (n_users, 3)),
        brightness=np.clip(rng.normal(0.65, 0.12, n_users), 0.1, 1.0),
        activity=rng.lognormal(0.0, 0.8, n_users),
    )


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


def _pick(mask: np.ndarray, rng: np.random.Generator, rate: float) -> np.ndarray:
    return mask & (rng.random(len(mask)) < rate)


def _sequences(rng: np.random.Generator, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths per session, flat action codes in session order) for sessions of ``kinds``."""
    n = len(kinds)
    # normal-shaped sequences for every session first (bots keep them)
    steps = np.minimum(rng.geometric(0.27, n), 8)
    long = rng.random(n) < 0.02
    steps[long] = rng.integers(10, 24, long.sum())
    logout = rng.random(n) < 0.85
    lengths = 1 + steps + logout
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    codes = rng.choice(NORMAL_STEPS, lengths.sum(), p=NORMAL_STEP_P)
    codes[offsets] = L
    codes[(offsets + lengths - 1)[logout]] = LO
    per_session = np.split(codes, offsets[1:])
    for kind, templates in ATTACK_SEQUENCES.items():
        chosen = np.flatnonzero(kinds == kind)
        picks = rng.integers(0, len(templates), len(chosen))
        for i, t in zip(chosen, picks):
            per_session[i] = np.asarray(templates[t])
    lengths = np.array([len(s) for s in per_session])
    return lengths, np.concatenate(per_session) if n else np.zeros(0, dtype=np.int64)


def generate_day(
    day: dt.date, n_sessions: int, attack_rate: float, seed: int, users_per_1000_sessions: int = 250
) -> DayData:
    """One day of sessions, actions and labels (pandas), deterministic for the arguments."""
    if not 0.0 <= attack_rate <= 1.0:
        raise ValueError(f"attack rate must lie in [0, 1], got {attack_rate}")
    n_users = max(1, math.ceil(n_sessions * users_per_1000_sessions / 1000))
    users = make_users(n_users, seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, day.toordinal()]))
    n = n_sessions
    user = rng.choice(n_users, n, p=users.activity / users.activity.sum())

    kinds = np.full(n, "", dtype=object)
    attack = rng.random(n) < attack_rate
    kinds[attack] = rng.choice(list(ATTACK_MIX), attack.sum(), p=list(ATTACK_MIX.values()))
    oddity = np.full(n, None, dtype=object)
    draw = rng.random(n)
    for i, name in enumerate(ODDITIES):
        oddity[~attack & (draw >= i * ODDITY_RATE) & (draw < (i + 1) * ODDITY_RATE)] = name
    ato, bot, se = (kinds == "account_takeover"), (kinds == "bot"), (kinds == "social_engineering")
    new_device, travel = oddity == "new_device", oddity == "travel"
    night, no_sensors = oddity == "low_battery_night", oddity == "missing_sensors"

    # when: around the user's usual hour; attackers and bots at odd hours
    hour = (users.usual_hour[user] + rng.normal(0, 1.5, n)) % 24
    hour[night] = (rng.uniform(22, 28, night.sum())) % 24
    hour[ato] = np.where(rng.random(ato.sum()) < 0.6, rng.uniform(-1, 5, ato.sum()) % 24, rng.uniform(0, 24, ato.sum()))
    hour[bot] = rng.uniform(0, 24, bot.sum())
    start = pd.Timestamp(day.isoformat(), tz="UTC") + pd.to_timedelta(np.floor(hour * 3600).astype(np.int64), "s")
    angle = 2 * np.pi * hour / 24 - np.pi / 2

    # who holds the phone: the user's own dynamics, another person's, or a script
    f: dict[str, np.ndarray] = {}
    traits = users.traits[user] + rng.normal(0, 0.3, (n, 3))  # today's hand: the user's, varying a little
    traits[ato] = rng.normal(0, 1.6, (ato.sum(), 3))  # another person's hand
    f.update(_dynamics(traits, rng.normal(0, 1, (n, len(LOADINGS))), scale=1.0))
    f["tap_duration"][bot] = rng.uniform(0.01, 0.06, bot.sum())
    f["tap_interval_avg"][bot] = rng.uniform(0.01, 0.05, bot.sum())
    f["touch_area"][bot] = rng.uniform(0.01, 0.08, bot.sum())
    f["touch_pressure"][bot] = 0.5 + rng.normal(0, 0.005, bot.sum())
    f["swipe_velocity"][bot] = rng.uniform(0.9, 1.0, bot.sum())
    f["accel_variance"][bot] = rng.uniform(0.0, 0.02, bot.sum())
    f["gyro_variance"][bot] = rng.uniform(0.0, 0.02, bot.sum())
    f["device_orientation"][bot] = 0.5

    lengths, codes = _sequences(rng, kinds)
    f["touch_event_count"] = lengths / 40 + rng.normal(0.25, 0.05, n)
    f["touch_event_count"][bot] = rng.uniform(0.8, 1.0, bot.sum())
    f["screen_on_time"] = rng.beta(4, 6, n)
    f["app_usage_time"] = 0.1 + lengths / 50 + rng.normal(0.08, 0.05, n)
    f["screen_on_time"][se] = rng.uniform(0.6, 0.95, se.sum())  # on the phone with the "bank"
    f["app_usage_time"][se] = rng.uniform(0.55, 0.9, se.sum())

    f["battery_level"] = rng.uniform(0.15, 1.0, n)
    f["battery_level"][night] = rng.uniform(0.02, 0.12, night.sum())
    f["brightness_level"] = users.brightness[user] + rng.normal(0, 0.08, n)
    dark = (hour < 6) | (hour >= 22)
    f["brightness_level"][dark] *= 0.5
    f["time_of_day_sin"], f["time_of_day_cos"] = np.sin(angle), np.cos(angle)

    # where: home, near home, or far away; on the home wifi, another network, or mobile data
    far = ato | travel
    at_home = ~far & (rng.random(n) < 0.65)
    f["gps_latitude"] = users.home_lat[user] + np.where(at_home, rng.normal(0, 0.005, n), rng.normal(0, 0.04, n))
    f["gps_longitude"] = users.home_lon[user] + np.where(at_home, rng.normal(0, 0.005, n), rng.normal(0, 0.04, n))
    f["gps_latitude"][far] = rng.uniform(0, 1, far.sum())
    f["gps_longitude"][far] = rng.uniform(0, 1, far.sum())
    f["wifi_id_hash"] = np.where(at_home, users.home_wifi[user], rng.uniform(0, 1, n))
    mobile_data = ~at_home & (rng.random(n) < 0.5)
    gps_missing = rng.random(n) < 0.04
    charging = (rng.random(n) < np.where(dark, 0.55, 0.2)).astype(np.int32)
    charging[night] = 0

    sensors_missing = no_sensors | (bot & (rng.random(n) < 0.5))
    for name in f:
        low, high = contract.feature_range(name)
        f[name] = np.clip(f[name], low, high)
    device = np.where(users.has_second_device[user] & (rng.random(n) < 0.3),
                      users.second_device_id[user], users.device_id[user])
    fresh = ato | new_device | (bot & (rng.random(n) < 0.7))
    session_ids = np.array([f"s{day:%Y%m%d}-{i:08d}" for i in range(n)], dtype=object)
    device[fresh] = np.array([f"dn{day:%Y%m%d}-{i:08d}" for i in np.flatnonzero(fresh)], dtype=object)

    sessions = pd.DataFrame({"session_id": session_ids, "user_id": users.user_id[user], "device_id": device,
                             "session_start": start.astype("datetime64[us, UTC]")})
    for name in contract.CONTINUOUS_FEATURES:
        sessions[name] = pd.array(f[name], dtype="Float64")
    for column, missing in (("accel_variance", sensors_missing), ("gyro_variance", sensors_missing),
                            ("wifi_id_hash", mobile_data), ("gps_latitude", gps_missing),
                            ("gps_longitude", gps_missing)):
        sessions.loc[missing, column] = pd.NA
    binaries = {
        "accel_variance_missing": sensors_missing,
        "gyro_variance_missing": sensors_missing,
        "charging_state": charging.astype(bool),
        "wifi_info_missing": mobile_data,
        "gps_location_missing": gps_missing,
    }
    weekday = day.weekday()
    for i, name in enumerate(contract.DAY_OF_WEEK_FEATURES):
        binaries[name] = np.full(n, i == weekday)
    for name in contract.BINARY_FEATURES:
        sessions[name] = pd.array(binaries[name].astype(np.int32), dtype="Int32")

    actions = _actions(rng, sessions, lengths, codes, bot)
    labels = pd.DataFrame({
        "session_id": session_ids,
        "user_id": sessions["user_id"].to_numpy(),
        "is_attack": attack.astype(np.int32),
        "attack_kind": np.where(attack, kinds, None),
        "benign_oddity": oddity,
    })
    return DayData(sessions, actions, labels)


def _actions(rng: np.random.Generator, sessions: pd.DataFrame, lengths: np.ndarray, codes: np.ndarray,
             bot: np.ndarray) -> pd.DataFrame:
    n_actions = int(lengths.sum())
    owner = np.repeat(np.arange(len(lengths)), lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    seq_no = (np.arange(n_actions) - np.repeat(offsets, lengths) + 1).astype(np.int32)
    gaps = rng.exponential(8.0, n_actions) + 1.0
    is_bot = np.repeat(bot, lengths)
    gaps[is_bot] = rng.uniform(0.3, 0.6, is_bot.sum())
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[offsets] - gaps[offsets], lengths)  # restart per session
    start_us = sessions["session_start"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    event_us = np.repeat(start_us, lengths) + (elapsed * 1e6).astype(np.int64)
    amount = np.full(n_actions, np.nan)
    small, large = codes == TS, codes == TL
    amount[small] = np.round(rng.uniform(5, 499, small.sum()), 2)
    amount[large] = np.round(rng.uniform(10_001, 60_000, large.sum()), 2)
    return pd.DataFrame({
        "session_id": sessions["session_id"].to_numpy()[owner],
        "user_id": sessions["user_id"].to_numpy()[owner],
        "event_ts": pd.to_datetime(event_us, unit="us", utc=True),
        "seq_no": seq_no,
        "action": ACTION_NAME_TABLE[codes.astype(np.int64)],
        "amount": pd.array(np.where(np.isnan(amount), None, amount), dtype="Float64"),
    })


def _arrow_schema(schema) -> pa.Schema:
    kinds = {"string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"), "double": pa.float64(),
             "int": pa.int32()}
    return pa.schema([pa.field(f.name, kinds[f.dataType.simpleString()], nullable=True) for f in schema.fields])


def _write(frame: pd.DataFrame, schema, root: str, day: dt.date) -> None:
    folder = Path(root) / f"dt={day.isoformat()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    table = pa.Table.from_pandas(frame, schema=_arrow_schema(schema), preserve_index=False)
    pq.write_table(table, folder / "part-00000.parquet", coerce_timestamps="us")


def write_day(data: DayData, day: dt.date, sessions_root: str, actions_root: str, labels_root: str) -> None:
    """``{root}/dt=YYYY-MM-DD/part-00000.parquet`` for sessions, actions and labels (replacing the day)."""
    _write(data.sessions, contract.SESSIONS_SCHEMA, sessions_root, day)
    _write(data.actions, contract.ACTIONS_SCHEMA, actions_root, day)
    _write(data.labels, contract.LABELS_SCHEMA, labels_root, day)


def generate(
    start_date: dt.date,
    days: int,
    sessions_per_day: int,
    attack_rate: float,
    seed: int,
    sessions_root: str,
    actions_root: str,
    labels_root: str,
    users_per_1000_sessions: int = 250,
) -> dict[str, object]:
    """Generate and write ``days`` days from ``start_date``; returns counts per attack kind."""
    if days < 1 or sessions_per_day < 0:
        raise ValueError("days must be >= 1 and sessions per day >= 0")
    totals: Counter[str] = Counter()
    clock = time.monotonic()
    for offset in range(days):
        day = start_date + dt.timedelta(days=offset)
        data = generate_day(day, sessions_per_day, attack_rate, seed, users_per_1000_sessions)
        write_day(data, day, sessions_root, actions_root, labels_root)
        totals["sessions"] += len(data.sessions)
        totals["actions"] += len(data.actions)
        totals.update(k for k in data.labels["attack_kind"] if k is not None)
        log.info("generated %s: %d sessions, %d actions", day, len(data.sessions), len(data.actions))
    return {**dict(totals), "seconds": round(time.monotonic() - clock, 1)}
