"""Synthetic days of mobile-banking sessions that look like a bank's, with ground truth.

The model of the data:

- **Users** (fixed for a seed, the same on every day and whatever the day's volume): a primary
  device (a quarter have a second one), a home place (gps) and home wifi, usual hours of activity
  (a morning, a lunchtime and an evening crowd, a little later at weekends), a screen brightness
  habit, and personal touch and motion dynamics. User ``i``'s habits depend only on the seed and
  ``i`` (users are drawn in blocks of ``USER_BLOCK``, each block from its own seed), so a day of
  20k sessions and a day of 1M sessions share their first users. Activity is skewed (log-normal):
  a few users have many sessions, most have few.
- **Touch and motion dynamics** are correlated, as in the autoencoder notebook's "correlated"
  training data: three latent traits of a hand (firmness, speed, steadiness) drive touch pressure
  and area, tap duration and interval, swipe velocity, orientation and accelerometer/gyroscope
  variance; every session varies a little around its user's traits.
- **Normal sessions** vary around their user's habits: mostly at home on the home wifi, sometimes
  near home or on mobile data (wifi missing); gps sometimes denied (missing). Actions like the LSTM
  notebook's normal traffic: LOGIN, then mostly VIEW_BALANCE / VIEW_TRANSACTIONS, sometimes a
  TRANSFER_SMALL, usually LOGOUT at the end; about 5-6 actions on average, 2% long sessions (up
  to 25 actions), rarely a legitimate ADD_RECIPIENT, CHANGE_PASSWORD or TRANSFER_LARGE, a few
  actions outside the vocabulary (``UNKNOWN_ACTION_NAMES``), and 1% resumed sessions that start
  without a LOGIN. ``app_usage_time`` follows the session's length in time, ``touch_event_count``
  its number of actions.
- **Benign oddities** among normal sessions (``ODDITY_RATE`` each), labelled in ``benign_oddity``
  with ``is_attack = 0``, so that nothing is trivially separable: ``new_device`` (a new phone,
  whose screen also registers touch a little differently), ``travel`` (far from home, foreign
  networks), ``low_battery_night`` (late, low battery, not charging, dark screen),
  ``missing_sensors`` (no accelerometer or gyroscope readings).
- **Attacks** at ``attack_rate`` (a fraction of the day's sessions), mixed as ``ATTACK_MIX``, each
  labelled with its kind:

  * ``account_takeover``: a new device, far from the user's home on an unknown network or mobile
    data, mostly at night, another person's hand, quick purposeful steps, and an aggressive
    sequence (``ATTACK_SEQUENCES``), among them the LSTM notebook's test sequences LOGIN,
    CHANGE_PASSWORD, TRANSFER_LARGE and LOGIN, ADD_RECIPIENT, TRANSFER_LARGE (with and without
    LOGOUT), in a third of them after some browsing and in a quarter followed by some;
  * ``bot``: too fast (tiny tap duration and interval), too regular (tiny motion variance, or no
    motion sensors at all), a tiny touch area, many touch events, actions a fraction of a second
    apart, mostly from a fresh device and at any hour; its action sequence looks ordinary;
  * ``social_engineering``: the user's own device, at home on the home wifi, the user's own hand,
    at the user's usual hour, but hesitant (long screen-on and app-usage times, long pauses while
    on the phone with the "bank") and an unusual sequence such as LOGIN, VIEW_BALANCE,
    ADD_RECIPIENT, TRANSFER_LARGE, TRANSFER_LARGE.

Time of day is encoded on the unit circle with midnight at (sin, cos) = (-1, 0), as the
autoencoder notebook's examples read ("time_of_day_sin: -1.0  # Edge of day (e.g., midnight)"):
the angle is ``2*pi*hour/24 + TIME_OF_DAY_PHASE`` with the phase ``-pi/2``
(:func:`time_of_day_encoding`). Amounts: TRANSFER_SMALL below 500, TRANSFER_LARGE above 10,000,
null for every other action.

Everything is vectorized numpy (no Python loop per session or per action) and deterministic: the
users come from ``SeedSequence([seed, USER_STREAM, block])``, each day from
``SeedSequence([seed, day.toordinal()])``; the same arguments give the same frames and the same
Parquet bytes. One day of 1M sessions (about 5.5M actions) generates and writes in about 10 s on
two cores.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import types as T

from raksha import contract

log = logging.getLogger(__name__)

# --- vocabulary -------------------------------------------------------------------------------
A = contract.ACTIONS
L, VB, VT, TS, TL, CP, AR, LO = (
    A[k]
    for k in (
        "LOGIN",
        "VIEW_BALANCE",
        "VIEW_TRANSACTIONS",
        "TRANSFER_SMALL",
        "TRANSFER_LARGE",
        "CHANGE_PASSWORD",
        "ADD_RECIPIENT",
        "LOGOUT",
    )
)
# Action strings the app sends that the notebook's vocabulary does not know ("other strings occur").
UNKNOWN_ACTION_NAMES: tuple[str, ...] = ("VIEW_CARD", "OPEN_SUPPORT_CHAT", "SCAN_QR", "VIEW_OFFERS")
UNKNOWN_CODE_BASE = 100  # internal code of UNKNOWN_ACTION_NAMES[i] is UNKNOWN_CODE_BASE + i
ACTION_NAME_BY_CODE: dict[int, str] = {
    **contract.ACTION_NAMES,
    **{UNKNOWN_CODE_BASE + i: name for i, name in enumerate(UNKNOWN_ACTION_NAMES)},
}
ACTION_NAME_TABLE = np.empty(max(ACTION_NAME_BY_CODE) + 1, dtype=object)
for _code, _name in ACTION_NAME_BY_CODE.items():
    ACTION_NAME_TABLE[_code] = _name

# What a normal user does at each step after LOGIN (LOGOUT, if any, is the last step).
NORMAL_STEPS = np.array([VB, VT, TS, AR, TL, CP, 100, 101, 102, 103])
NORMAL_STEP_P = np.array([0.42, 0.38, 0.11, 0.012, 0.008, 0.005, 0.02, 0.015, 0.005, 0.005])
NORMAL_STEP_CDF = np.cumsum(NORMAL_STEP_P / NORMAL_STEP_P.sum())
MEAN_STEPS_P = 0.27  # geometric number of steps after LOGIN (capped at 8): about 3.5
LONG_SESSION_RATE = 0.02  # 10-23 steps
LOGOUT_RATE = 0.85
RESUMED_RATE = 0.01  # normal sessions resumed from the background: no LOGIN first

ATTACK_SEQUENCES: dict[str, list[list[int]]] = {
    "account_takeover": [
        [L, CP, TL],
        [L, CP, TL, LO],
        [L, AR, TL],
        [L, AR, TL, LO],
        [L, CP, AR, TL, TL, LO],
        [L, VB, AR, TL, LO],
        [L, CP, AR, TL],
        [L, VB, CP, TL, LO],
    ],
    "social_engineering": [
        [L, VB, AR, TL, TL],
        [L, VB, VT, AR, TL, LO],
        [L, AR, TS, TL, LO],
        [L, VB, CP, AR, TL],
        [L, VB, AR, TL, LO],
        [L, VT, VB, AR, TL, TL, LO],
    ],
}
# All templates in one padded matrix, and where each kind's templates start in it.
_TEMPLATE_LIST = [t for kind in ATTACK_SEQUENCES for t in ATTACK_SEQUENCES[kind]]
TEMPLATES = np.zeros((len(_TEMPLATE_LIST), max(map(len, _TEMPLATE_LIST))), dtype=np.int64)
for _i, _t in enumerate(_TEMPLATE_LIST):
    TEMPLATES[_i, : len(_t)] = _t
TEMPLATE_LENGTHS = np.array([len(t) for t in _TEMPLATE_LIST])
# Attackers often look around first, and some keep browsing after the transfer: a share of the
# templated attacks get 1-3 browsing steps (VIEW_BALANCE / VIEW_TRANSACTIONS) after LOGIN, and a
# share get 1-3 after the attack, so the attack sits in the middle of the session.
BROWSE_FIRST_RATE = 0.35
BROWSE_AFTER_RATE = 0.25
_TEMPLATE_START = dict(zip(ATTACK_SEQUENCES, np.cumsum([0, *map(len, ATTACK_SEQUENCES.values())])[:-1], strict=True))

# --- labels -----------------------------------------------------------------------------------
ODDITIES: tuple[str, ...] = ("new_device", "travel", "low_battery_night", "missing_sensors")
ODDITY_RATE = 0.03  # of normal sessions, for each oddity
ATTACK_MIX: dict[str, float] = {"account_takeover": 0.4, "bot": 0.3, "social_engineering": 0.3}
assert set(ATTACK_MIX) == set(contract.ATTACK_KINDS)
KIND_NAMES = np.array([None, *contract.ATTACK_KINDS], dtype=object)  # code 0 is "no attack"
ODDITY_NAMES = np.array([None, *ODDITIES], dtype=object)
ATO, BOT, SE = (1 + contract.ATTACK_KINDS.index(k) for k in ("account_takeover", "bot", "social_engineering"))
MIX_KIND_CODES = np.array([1 + contract.ATTACK_KINDS.index(k) for k in ATTACK_MIX])

# --- users ------------------------------------------------------------------------------------
USER_BLOCK = 1024
USER_STREAM = 0x05E7  # separates the users' random stream from the days' ([seed, ordinal])
TIME_OF_DAY_PHASE = -math.pi / 2  # midnight at (sin, cos) = (-1, 0), as the notebook's examples

# Population means of a user's touch and motion habits: the autoencoder notebook's normal_example.
TOUCH_MEANS = {
    "tap_duration": (0.2, 0.04),
    "swipe_velocity": (0.72, 0.08),
    "touch_pressure": (0.68, 0.08),
    "tap_interval_avg": (0.3, 0.05),
    "touch_area": (0.6, 0.07),
    "device_orientation": (0.5, 0.06),
}
MOTION_MEANS = {"accel_variance": (0.3, 0.06), "gyro_variance": (0.25, 0.05)}
# Each feature's loading on the latent traits (firmness, speed, steadiness); the rest is its own noise.
LOADINGS = {
    "touch_pressure": (0.95, 0.0, 0.0),
    "touch_area": (0.9, 0.0, 0.0),
    "tap_duration": (0.55, -0.65, 0.0),
    "swipe_velocity": (0.0, 0.92, 0.0),
    "tap_interval_avg": (0.0, -0.9, 0.0),
    "device_orientation": (0.0, 0.0, 0.4),
    "accel_variance": (0.0, 0.0, 0.93),
    "gyro_variance": (0.0, 0.0, 0.9),
}


@dataclass
class DayData:
    """One day of generated data: frames shaped as the contract's sessions, actions and labels."""

    sessions: pd.DataFrame
    actions: pd.DataFrame
    labels: pd.DataFrame


@dataclass
class Users:
    """The user population of a seed; row ``i`` is user ``i``."""

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


def time_of_day_encoding(hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time_of_day_sin, time_of_day_cos) of fractional UTC hours, midnight at (-1, 0)."""
    angle = 2 * np.pi * np.asarray(hours, dtype=np.float64) / 24 + TIME_OF_DAY_PHASE
    return np.sin(angle), np.cos(angle)


def _ids(prefix: str, numbers: np.ndarray, width: int, suffix: str = "") -> np.ndarray:
    """Object array of ``f"{prefix}{n:0{width}d}{suffix}"``, built without a Python loop."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= 10**width):
        raise ValueError(f"id numbers must lie in [0, 10**{width})")
    head, tail = prefix.encode("ascii"), suffix.encode("ascii")
    size = len(head) + width + len(tail)
    chars = np.empty((len(numbers), size), dtype=np.uint8)
    chars[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    chars[:, len(head) : len(head) + width] = (numbers[:, None] // powers) % 10 + ord("0")
    chars[:, len(head) + width :] = np.frombuffer(tail, dtype=np.uint8)
    return chars.view(f"S{size}").ravel().astype(f"U{size}").astype(object)


def _user_block(seed: int, block: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, USER_STREAM, block]))
    n = USER_BLOCK
    centre = rng.choice(np.array([8.0, 12.5, 19.5]), n, p=[0.35, 0.3, 0.35])
    return {
        "has_second_device": rng.random(n) < 0.25,
        "home_lat": rng.uniform(0.15, 0.85, n),
        "home_lon": rng.uniform(0.15, 0.85, n),
        "home_wifi": rng.uniform(0.05, 1.0, n),
        "usual_hour": centre + rng.normal(0, 1.2, n),
        "traits": rng.normal(0, 1, (n, 3)),
        "brightness": np.clip(rng.normal(0.65, 0.12, n), 0.1, 1.0),
        "activity": rng.lognormal(0.0, 0.8, n),
    }


def make_users(n_users: int, seed: int) -> Users:
    """The first ``n_users`` users of a seed: user ``i`` is the same whatever ``n_users`` is."""
    if n_users < 1:
        raise ValueError(f"need at least one user, got {n_users}")
    blocks = [_user_block(seed, b) for b in range(math.ceil(n_users / USER_BLOCK))]
    habits = {key: np.concatenate([b[key] for b in blocks])[:n_users] for key in blocks[0]}
    idx = np.arange(n_users)
    return Users(
        user_id=_ids("u", idx, 7),
        device_id=_ids("d", idx, 7, "a"),
        second_device_id=_ids("d", idx, 7, "b"),
        **habits,
    )


def _dynamics(latent: np.ndarray, noise: np.ndarray) -> dict[str, np.ndarray]:
    """Touch and motion features from latent traits (n, 3) and per-feature noise (n, features)."""
    means = {**TOUCH_MEANS, **MOTION_MEANS}
    out = {}
    for j, (name, loading) in enumerate(LOADINGS.items()):
        weight = np.asarray(loading)
        own = np.sqrt(max(0.0, 1.0 - float(weight @ weight)))
        mean, sd = means[name]
        out[name] = mean + sd * (latent @ weight + own * noise[:, j])
    return out


def _far_from(home: np.ndarray, rng: np.random.Generator, low: float = 0.15, high: float = 0.5) -> np.ndarray:
    """A coordinate ``low``..``high`` away from ``home`` along one axis, kept inside [0, 1]."""
    offset = rng.uniform(low, high, len(home)) * rng.choice(np.array([-1.0, 1.0]), len(home))
    out = home + offset
    outside = (out < 0) | (out > 1)
    out[outside] = home[outside] - offset[outside]
    return out


def _sequences(
    rng: np.random.Generator, kind: np.ndarray, resumed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actions per session, flat action codes in session order, owning session of each action)."""
    n = len(kind)
    steps = np.minimum(rng.geometric(MEAN_STEPS_P, n), 8)
    long = rng.random(n) < LONG_SESSION_RATE
    steps[long] = rng.integers(10, 24, int(long.sum()))
    logout = rng.random(n) < LOGOUT_RATE
    lengths = (1 + steps + logout).astype(np.int64)
    template = np.full(n, -1, dtype=np.int64)
    for name, templates in ATTACK_SEQUENCES.items():
        chosen = kind == 1 + contract.ATTACK_KINDS.index(name)
        template[chosen] = _TEMPLATE_START[name] + rng.integers(0, len(templates), int(chosen.sum()))
    templated = template >= 0
    before = np.where(templated & (rng.random(n) < BROWSE_FIRST_RATE), rng.integers(1, 4, n), 0)
    after = np.where(templated & (rng.random(n) < BROWSE_AFTER_RATE), rng.integers(1, 4, n), 0)
    lengths[templated] = TEMPLATE_LENGTHS[template[templated]] + before[templated] + after[templated]

    owner = np.repeat(np.arange(n), lengths)
    offsets = np.cumsum(lengths) - lengths
    pos = np.arange(len(owner)) - offsets[owner]
    codes = NORMAL_STEPS[np.searchsorted(NORMAL_STEP_CDF, rng.random(len(owner)), side="right")]
    codes[(pos == 0) & ~resumed[owner]] = L
    codes[(pos == lengths[owner] - 1) & logout[owner]] = LO
    from_template = template[owner]
    # LOGIN, browsing, the template's steps, browsing, then the template's LOGOUT if it has one
    attack = from_template >= 0
    ends_logout = TEMPLATES[from_template, TEMPLATE_LENGTHS[from_template] - 1] == LO
    core = TEMPLATE_LENGTHS[from_template] - ends_logout
    in_template = pos - np.where(pos > 0, before[owner], 0)
    use = attack & ((pos == 0) | ((in_template > 0) & (in_template < core)))
    closing = attack & ends_logout & (pos == lengths[owner] - 1)
    browse = attack & ~use & ~closing
    codes[use] = TEMPLATES[from_template[use], in_template[use]]
    codes[closing] = LO
    codes[browse] = np.where(rng.random(int(browse.sum())) < 0.5, VB, VT)
    return lengths, codes, owner


def _gaps_us(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Microseconds from the previous event (or session_start) to each action, by the session's kind."""
    n = len(kind)
    seconds = rng.exponential(8.0, n) + 1.0  # reading, thinking
    is_bot, is_ato, is_se = kind == BOT, kind == ATO, kind == SE
    seconds[is_bot] = rng.uniform(0.3, 0.6, int(is_bot.sum()))  # scripted
    seconds[is_ato] = rng.uniform(2.0, 6.0, int(is_ato.sum()))  # knows what to do
    seconds[is_se] = rng.exponential(25.0, int(is_se.sum())) + 3.0  # on the phone with the "bank"
    return np.maximum(1, np.round(seconds * 1e6)).astype(np.int64)


def _amounts(rng: np.random.Generator, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    amount = np.zeros(len(codes))
    small, large = codes == TS, codes == TL
    amount[small] = np.round(np.clip(rng.lognormal(math.log(80), 0.9, int(small.sum())), 1.0, 499.99), 2)
    amount[large] = np.round(10_000.01 + np.minimum(rng.lognormal(math.log(9000), 0.8, int(large.sum())), 240_000), 2)
    return pd.arrays.FloatingArray(amount, ~(small | large))


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
    attack = rng.random(n) < attack_rate
    kind = np.zeros(n, dtype=np.int64)
    mix = np.cumsum(list(ATTACK_MIX.values()))
    kind[attack] = MIX_KIND_CODES[np.searchsorted(mix / mix[-1], rng.random(int(attack.sum())), side="right")]
    oddity = np.minimum(1 + (rng.random(n) // ODDITY_RATE).astype(np.int64), len(ODDITIES) + 1)
    oddity[(oddity > len(ODDITIES)) | attack] = 0
    ato, bot, se = kind == ATO, kind == BOT, kind == SE
    new_device, travel = oddity == 1 + ODDITIES.index("new_device"), oddity == 1 + ODDITIES.index("travel")
    night = oddity == 1 + ODDITIES.index("low_battery_night")
    no_sensors = oddity == 1 + ODDITIES.index("missing_sensors")
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
    lengths, codes, owner = _sequences(rng, kind, resumed)
    gaps = _gaps_us(rng, kind[owner])
    elapsed = np.cumsum(gaps)
    offsets = np.cumsum(lengths) - lengths
    before = np.concatenate([[0], elapsed])[offsets]  # elapsed before each session's first action
    elapsed -= np.repeat(before, lengths)
    duration_s = np.zeros(n)
    has_actions = lengths > 0
    duration_s[has_actions] = elapsed[(offsets + lengths - 1)[has_actions]] / 1e6

    # whose hand holds the phone: the user's own (varying a little), another person's, or a script
    f: dict[str, np.ndarray] = {}
    traits = users.traits[user] + rng.normal(0, 0.3, (n, 3))
    traits[ato] = rng.normal(0, 1.6, (n_ato, 3))
    f.update(_dynamics(traits, rng.normal(0, 1, (n, len(LOADINGS)))))
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
    device[fresh] = _ids(f"dn{day:%Y%m%d}-", np.flatnonzero(fresh), 8)
    session_id = _ids(f"s{day:%Y%m%d}-", np.arange(n), 8)
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
            "amount": _amounts(rng, codes),
        }
    )
    labels = pd.DataFrame(
        {
            "session_id": session_id,
            "user_id": user_id,
            "is_attack": attack.astype(np.int32),
            "attack_kind": KIND_NAMES[kind],
            "benign_oddity": ODDITY_NAMES[oddity],
        }
    )
    return DayData(sessions, actions, labels)


_ARROW_TYPES = {
    T.StringType(): pa.string(),
    T.TimestampType(): pa.timestamp("us", tz="UTC"),
    T.DoubleType(): pa.float64(),
    T.IntegerType(): pa.int32(),
}


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The pyarrow schema of a contract schema (string, timestamp[us, UTC], float64, int32)."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[f.dataType], nullable=f.nullable) for f in schema.fields])


def _write(frame: pd.DataFrame, schema: T.StructType, root: str, day: dt.date) -> None:
    """Replace ``{root}/dt=day/`` with one Parquet file, swapping a finished folder in."""
    folder = Path(root) / f"dt={day.isoformat()}"
    staging = Path(root) / f".dt={day.isoformat()}.{uuid.uuid4().hex[:8]}.tmp"  # hidden from readers
    staging.mkdir(parents=True)
    try:
        table = pa.Table.from_pandas(frame, schema=arrow_schema(schema), preserve_index=False)
        pq.write_table(table, staging / "part-00000.parquet", coerce_timestamps="us")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


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
    """Generate and write ``days`` days from ``start_date``.

    Returns a summary: days, sessions, actions, attacks, the count of each attack kind and of each
    benign oddity, and the seconds it took.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    summary: dict[str, object] = {"days": days, "sessions": 0, "actions": 0, "attacks": 0}
    kinds = dict.fromkeys(contract.ATTACK_KINDS, 0)
    oddities = dict.fromkeys(ODDITIES, 0)
    clock = time.monotonic()
    for offset in range(days):
        day = start_date + dt.timedelta(days=offset)
        data = generate_day(day, sessions_per_day, attack_rate, seed, users_per_1000_sessions)
        write_day(data, day, sessions_root, actions_root, labels_root)
        summary["sessions"] += len(data.sessions)
        summary["actions"] += len(data.actions)
        summary["attacks"] += int(data.labels["is_attack"].sum())
        for name, count in data.labels["attack_kind"].value_counts().items():
            kinds[name] += int(count)
        for name, count in data.labels["benign_oddity"].value_counts().items():
            oddities[name] += int(count)
        log.info("generated %s: %d sessions, %d actions", day, len(data.sessions), len(data.actions))
    return {**summary, **kinds, "benign_oddities": oddities, "seconds": round(time.monotonic() - clock, 1)}
