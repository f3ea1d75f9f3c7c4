"""The user population of a seed, and the touch and motion dynamics of a hand.

User ``i``'s habits depend only on the seed and ``i``: users are drawn in blocks of
``USER_BLOCK``, each block from ``SeedSequence([seed, USER_STREAM, block])``, so a day of 20k
sessions and a day of 1M sessions share their first users. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

USER_BLOCK = 1024
USER_STREAM = 0x05E7  # separates the users' random stream from the days' ([seed, ordinal])

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


def numbered_ids(prefix: str, numbers: np.ndarray, width: int, suffix: str = "") -> np.ndarray:
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
        user_id=numbered_ids("u", idx, 7),
        device_id=numbered_ids("d", idx, 7, "a"),
        second_device_id=numbered_ids("d", idx, 7, "b"),
        **habits,
    )


def dynamics(latent: np.ndarray, noise: np.ndarray) -> dict[str, np.ndarray]:
    """Touch and motion features from latent traits (n, 3) and per-feature noise (n, features)."""
    means = {**TOUCH_MEANS, **MOTION_MEANS}
    out = {}
    for j, (name, loading) in enumerate(LOADINGS.items()):
        weight = np.asarray(loading)
        own = np.sqrt(max(0.0, 1.0 - float(weight @ weight)))
        mean, sd = means[name]
        out[name] = mean + sd * (latent @ weight + own * noise[:, j])
    return out
