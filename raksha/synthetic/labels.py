"""The ground truth of a generated day: which sessions are attacks of which kind, which normal
sessions carry a benign oddity, and the labels frame (the contract's ``LABELS_SCHEMA``). Pure numpy/pandas.

Kinds and oddities are coded as small integers while a day is generated: kind 0 is "no attack",
kind ``1 + i`` is ``contract.ATTACK_KINDS[i]``; oddity 0 is none, oddity ``1 + i`` is ``ODDITIES[i]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raksha import contract

ODDITIES: tuple[str, ...] = ("new_device", "travel", "low_battery_night", "missing_sensors")
ODDITY_RATE = 0.03  # of normal sessions, for each oddity
ATTACK_MIX: dict[str, float] = {"account_takeover": 0.4, "bot": 0.3, "social_engineering": 0.3}
assert set(ATTACK_MIX) == set(contract.ATTACK_KINDS)
KIND_NAMES = np.array([None, *contract.ATTACK_KINDS], dtype=object)  # code 0 is "no attack"
ODDITY_NAMES = np.array([None, *ODDITIES], dtype=object)
ATO, BOT, SE = (1 + contract.ATTACK_KINDS.index(k) for k in ("account_takeover", "bot", "social_engineering"))
MIX_KIND_CODES = np.array([1 + contract.ATTACK_KINDS.index(k) for k in ATTACK_MIX])


def kind_code(kind: str) -> int:
    """The code of an attack kind (0 is no attack)."""
    return 1 + contract.ATTACK_KINDS.index(kind)


def oddity_code(oddity: str) -> int:
    """The code of a benign oddity (0 is none)."""
    return 1 + ODDITIES.index(oddity)


def draw_truth(rng: np.random.Generator, n: int, attack_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(is attack, kind code, oddity code) of ``n`` sessions: ``attack_rate`` attacks mixed as
    ``ATTACK_MIX``, and ``ODDITY_RATE`` of each oddity among the normal sessions."""
    attack = rng.random(n) < attack_rate
    kind = np.zeros(n, dtype=np.int64)
    mix = np.cumsum(list(ATTACK_MIX.values()))
    kind[attack] = MIX_KIND_CODES[np.searchsorted(mix / mix[-1], rng.random(int(attack.sum())), side="right")]
    oddity = np.minimum(1 + (rng.random(n) // ODDITY_RATE).astype(np.int64), len(ODDITIES) + 1)
    oddity[(oddity > len(ODDITIES)) | attack] = 0
    return attack, kind, oddity


def labels_frame(
    session_id: np.ndarray, user_id: np.ndarray, attack: np.ndarray, kind: np.ndarray, oddity: np.ndarray
) -> pd.DataFrame:
    """The labels of a day: session_id, user_id, is_attack, attack_kind, benign_oddity."""
    return pd.DataFrame(
        {
            "session_id": session_id,
            "user_id": user_id,
            "is_attack": attack.astype(np.int32),
            "attack_kind": KIND_NAMES[kind],
            "benign_oddity": ODDITY_NAMES[oddity],
        }
    )
