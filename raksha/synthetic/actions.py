"""What a generated session does: its action sequence, when each action happens, and the amounts.

Normal sessions look like the LSTM notebook's normal traffic (LOGIN, mostly VIEW_BALANCE /
VIEW_TRANSACTIONS, sometimes TRANSFER_SMALL, usually LOGOUT), with a few actions outside the
vocabulary (``UNKNOWN_ACTION_NAMES``); account takeover and social engineering follow the
templates of ``ATTACK_SEQUENCES``, often with some browsing before or after. Actions are coded as
``contract.ACTIONS`` while a day is generated; ``ACTION_NAME_TABLE`` turns the codes into the
strings the app sends. Pure numpy/pandas.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from raksha import contract
from raksha.synthetic.labels import ATO, BOT, SE, kind_code

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


def sequences(
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
        chosen = kind == kind_code(name)
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


def gaps_us(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Microseconds from the previous event (or session_start) to each action, by the session's kind."""
    n = len(kind)
    seconds = rng.exponential(8.0, n) + 1.0  # reading, thinking
    is_bot, is_ato, is_se = kind == BOT, kind == ATO, kind == SE
    seconds[is_bot] = rng.uniform(0.3, 0.6, int(is_bot.sum()))  # scripted
    seconds[is_ato] = rng.uniform(2.0, 6.0, int(is_ato.sum()))  # knows what to do
    seconds[is_se] = rng.exponential(25.0, int(is_se.sum())) + 3.0  # on the phone with the "bank"
    return np.maximum(1, np.round(seconds * 1e6)).astype(np.int64)


def action_times(
    rng: np.random.Generator, kind: np.ndarray, lengths: np.ndarray, owner: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index of each session's first action, microseconds from session_start to each action,
    seconds from session_start to each session's last action, 0 without actions)."""
    gaps = gaps_us(rng, kind[owner])
    elapsed = np.cumsum(gaps)
    offsets = np.cumsum(lengths) - lengths
    before = np.concatenate([[0], elapsed])[offsets]  # elapsed before each session's first action
    elapsed -= np.repeat(before, lengths)
    duration_s = np.zeros(len(kind))
    has_actions = lengths > 0
    duration_s[has_actions] = elapsed[(offsets + lengths - 1)[has_actions]] / 1e6
    return offsets, elapsed, duration_s


def amounts(rng: np.random.Generator, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """TRANSFER_SMALL below 500, TRANSFER_LARGE above 10,000, null for every other action."""
    amount = np.zeros(len(codes))
    small, large = codes == TS, codes == TL
    amount[small] = np.round(np.clip(rng.lognormal(math.log(80), 0.9, int(small.sum())), 1.0, 499.99), 2)
    amount[large] = np.round(10_000.01 + np.minimum(rng.lognormal(math.log(9000), 0.8, int(large.sum())), 240_000), 2)
    return pd.arrays.FloatingArray(amount, ~(small | large))
