"""One generated day as pandas frames shaped as the contract's sessions, actions and labels.

Who (an attack of which kind, a benign oddity: ``labels``), when (around the user's usual hour;
account takeover mostly at night, bots at any hour), what (``actions``), whose hand holds the
phone (the user's own: ``users``; another person's; a script), the phone's state, and where (home,
near home, far away; the home wifi, another network, mobile data). Pure numpy/pandas; every draw
comes from ``SeedSequence([seed, day.toordinal()])`` in a fixed order, so the same arguments give
the same frames.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raksha import contract
from raksha.synthetic.actions import ACTION_NAME_TABLE, RESUMED_RATE, action_times, amounts, sequences
from raksha.synthetic.labels import ATO, BOT, SE, draw_truth, labels_frame, oddity_code
from raksha.synthetic.users import LOADINGS, dynamics, make_users, numbered_ids

TIME_OF_DAY_PHASE = contract.TIME_OF_DAY_PHASE  # midnight at (sin, cos) = (-1, 0), as the notebook's examples


@dataclass
class DayData:
    """One day of generated data: frames shaped as the contract's sessions, actions and labels."""

    sessions: pd.DataFrame
    actions: pd.DataFrame
    labels: pd.DataFrame


def time_of_day_encoding(hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time_of_day_sin, time_of_day_cos) of fractional UTC hours, midnight at (-1, 0)."""
    angle = 2 * np.pi * np.asarray(hours, dtype=np.float64) / 24 + TIME_OF_DAY_PHASE
    return np.sin(angle), np.cos(angle)


def _far_from(home: np.ndarray, rng: np.random.Generator, low: float = 0.15, high: float = 0.5) -> np.ndarray:
    """A coordinate ``low``..``high`` away from ``home`` along one axis, kept inside [0, 1]."""
    offset = rng.uniform(low, high, len(home)) * rng.choice(np.array([-1.0, 1.0]), len(home))
    out = home + offset
    outside = (out < 0) | (out > 1)
    out[outside] = home[outside] - offset[outside]
    return out


def _utc(epoch_us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(epoch_us.astype("datetime64[us]")).tz_localize("UTC")


def _masked(values: np.ndarray, missing: np.ndarray | None = None) -> pd.api.extensions.ExtensionArray:
    mask = np.zeros(len(values), dtype=bool) if missing is None else missing
    return pd.arrays.FloatingArray(np.where(mask, 0.0, values).astype(np.float64), mask.copy())


def generate_day(
    day: dt.date, n_sessions: int, attack_rate: float, seed: int, users_per_1000_sessions: int = 250
) -> DayData:
    """One day of sessions, actions and labels (pandas), deterministic for the arguments."""
    if not 0.0 <= attack_rate <= 1.0:
        raise ValueError(f"attack rate must lie in [0, 1], got {attack_rate}")
    if n_sessions < 0 or n_sessions >= 10**8:
        raise ValueError(f"sessions per day must lie in [0, 1e8), got {n_sessions}")
    if users_per_1000_sessions < 1:
        raise ValueError(f"users per 1000 sessions must be >= 1, got {users_per_1000_sessions}")
    n = int(n_sessions)
    users = make_users(max(1, math.ceil(n * users_per_1000_sessions / 1000)), seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, day.toordinal()]))
    user = np.searchsorted(np.cumsum(users.activity) / users.activity.sum(), rng.random(n), side="right")
    user = np.minimum(user, len(users.activity) - 1)

    # who: an attack of some kind, or a normal session with perhaps one benign oddity
    attack, kind, oddity = draw_truth(rng, n, attack_rate)
    ato, bot, se = kind == ATO, kind == BOT, kind == SE
    new_device, travel = oddity == oddity_code("new_device"), oddity == oddity_code("travel")
    night = oddity == oddity_code("low_battery_night")
    no_sensors = oddity == oddity_code("missing_sensors")
    resumed = ~attack & (rng.random(n) < RESUMED_RATE)

    # when: around the user's usual hour (later at weekends); attackers mostly at night, bots at any hour
    hour = users.usual_hour[user] + rng.normal(0, 1.5, n) + (1.0 if day.weekday() >= 5 else 0.0)
    hour[night] = rng.uniform(22, 28, int(night.sum()))
    n_ato = int(ato.sum())
    hour[ato] = np.where(rng.random(n_ato) < 0.6, rng.uniform(-1, 5, n_ato), rng.uniform(0, 24, n_ato))
    hour[bot] = rng.uniform(0, 24, int(bot.sum()))
    start_offset_us = np.floor((hour % 24) * 3_600_000_000).astype(np.int64)
    hour = start_offset_us / 3_600_000_000  # the encoded hour is exactly the session_start's
    day_start_us = (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * 86_400_000_000
    start_us = day_start_us + start_offset_us

    # what: the action sequence, and how long it took
    lengths, codes, owner = sequences(rng, kind, resumed)
    offsets, elapsed, duration_s = action_times(rng, kind, lengths, owner)

    # whose hand holds the phone: the user's own (varying a little), another person's, or a script
    f: dict[str, np.ndarray] = {}
    traits = users.traits[user] + rng.normal(0, 0.3, (n, 3))
    traits[ato] = rng.normal(0, 1.6, (n_ato, 3))
    f.update(dynamics(traits, rng.normal(0, 1, (n, len(LOADINGS)))))
    new_screen = new_device | ato
    f["touch_area"][new_screen] += rng.normal(0, 0.04, int(new_screen.sum()))  # another screen's calibration
    f["touch_pressure"][new_screen] += rng.normal(0, 0.04, int(new_screen.sum()))
    n_bot = int(bot.sum())
    f["tap_duration"][bot] = rng.uniform(0.01, 0.06, n_bot)
    f["tap_interval_avg"][bot] = rng.uniform(0.01, 0.05, n_bot)
    f["touch_area"][bot] = rng.uniform(0.01, 0.08, n_bot)
    f["touch_pressure"][bot] = 0.5 + rng.normal(0, 0.005, n_bot)
    f["swipe_velocity"][bot] = rng.uniform(0.9, 1.0, n_bot)
    f["accel_variance"][bot] = rng.uniform(0.0, 0.02, n_bot)
    f["gyro_variance"][bot] = rng.uniform(0.0, 0.02, n_bot)
    f["device_orientation"][bot] = 0.5

    f["touch_event_count"] = lengths / 40 + rng.normal(0.25, 0.05, n)
    f["touch_event_count"][bot] = rng.uniform(0.8, 1.0, n_bot)
    f["app_usage_time"] = 1 - np.exp(-duration_s / 150) + rng.normal(0.02, 0.03, n)
    f["screen_on_time"] = rng.beta(4, 6, n)
    n_se = int(se.sum())
    f["screen_on_time"][se] = rng.uniform(0.6, 0.95, n_se)
    f["app_usage_time"][se] = np.maximum(f["app_usage_time"][se], rng.uniform(0.55, 0.9, n_se))

    # the phone's state
    local_hour = hour % 24
    dark = (local_hour < 6) | (local_hour >= 22)
    f["battery_level"] = rng.uniform(0.15, 1.0, n)
    f["battery_level"][night] = rng.uniform(0.02, 0.12, int(night.sum()))
    f["brightness_level"] = users.brightness[user] + rng.normal(0, 0.08, n)
    f["brightness_level"][dark] *= 0.5
    f["time_of_day_sin"], f["time_of_day_cos"] = time_of_day_encoding(hour)
    charging = rng.random(n) < np.where(dark, 0.55, 0.2)
    charging[night] = False

    # where: home, near home, or far away; on the home wifi, another network, or mobile data
    far = ato | travel
    at_home = se | (~far & (rng.random(n) < 0.65))
    near = rng.normal(0, 1, (n, 2)) * np.where(at_home, 0.005, 0.04)[:, None]
    f["gps_latitude"] = users.home_lat[user] + near[:, 0]
    f["gps_longitude"] = users.home_lon[user] + near[:, 1]
    f["gps_latitude"][far] = _far_from(users.home_lat[user[far]], rng)
    f["gps_longitude"][far] = _far_from(users.home_lon[user[far]], rng, 0.0, 0.5)
    f["wifi_id_hash"] = np.where(at_home, users.home_wifi[user], rng.uniform(0, 1, n))
    mobile_data = ~at_home & (rng.random(n) < 0.5)
    gps_missing = rng.random(n) < np.where(bot, 0.3, 0.04)
    sensors_missing = no_sensors | (bot & (rng.random(n) < 0.5))

    for name in f:
        low, high = contract.feature_range(name)
        f[name] = np.clip(f[name], low, high)

    # which device: the user's (sometimes the second one), or a device never seen before
    second = users.has_second_device[user] & (rng.random(n) < 0.3)
    device = np.where(second, users.second_device_id[user], users.device_id[user])
    fresh = ato | new_device | (bot & (rng.random(n) < 0.7))
    device[fresh] = numbered_ids(f"dn{day:%Y%m%d}-", np.flatnonzero(fresh), 8)
    session_id = numbered_ids(f"s{day:%Y%m%d}-", np.arange(n), 8)
    user_id = users.user_id[user]

    missing = {
        "accel_variance": sensors_missing,
        "gyro_variance": sensors_missing,
        "wifi_id_hash": mobile_data,
        "gps_latitude": gps_missing,
        "gps_longitude": gps_missing,
    }
    weekday = day.weekday()
    binaries = {
        "accel_variance_missing": sensors_missing,
        "gyro_variance_missing": sensors_missing,
        "charging_state": charging,
        "wifi_info_missing": mobile_data,
        "gps_location_missing": gps_missing,
        **{name: np.full(n, i == weekday) for i, name in enumerate(contract.DAY_OF_WEEK_FEATURES)},
    }
    sessions = pd.DataFrame(
        {
            "session_id": session_id,
            "user_id": user_id,
            "device_id": device,
            "session_start": _utc(start_us),
            **{name: _masked(f[name], missing.get(name)) for name in contract.CONTINUOUS_FEATURES},
            **{name: pd.array(binaries[name].astype(np.int32), dtype="Int32") for name in contract.BINARY_FEATURES},
        }
    )
    actions = pd.DataFrame(
        {
            "session_id": session_id[owner],
            "user_id": user_id[owner],
            "event_ts": _utc(start_us[owner] + elapsed),
            "seq_no": (np.arange(len(owner)) - offsets[owner] + 1).astype(np.int32),
            "action": ACTION_NAME_TABLE[codes],
            "amount": amounts(rng, codes),
        }
    )
    labels = labels_frame(session_id, user_id, attack, kind, oddity)
    return DayData(sessions, actions, labels)
