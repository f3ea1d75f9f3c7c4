"""The stress day: every session flagged, its reasons computed.

``stress_day`` draws N sessions whose 30 features are uniformly random within the contract's ranges
(``contract.feature_range``: [0, 1], time of day in [-1, 1]; binaries 0 or 1; no nulls), so the
autoencoder finds every session anomalous, and whose action sequences are uniformly random over the
LSTM notebook's eight actions (``STRESS_LENGTHS`` actions each): about a third of the sessions have a
window risky enough (0.5) for its occlusion reasons to be computed, and few windows repeat (the scorer's
memo helps little). Sessions and
action log are written as the contract says (DESIGN.md section 3, ``raksha.contract``) by raksha's own
writer (``raksha.synthetic.write.write_table``): one Parquet file per dataset under ``{root}/dt=YYYY-MM-DD/``,
typed by ``raksha.synthetic.write.arrow_schema`` (timestamps UTC, microseconds). No labels: nothing here
is an attack or normal, it is load.

Pure numpy and pyarrow, deterministic for (day, sessions, seed); about 10 s for 1M sessions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

STRESS_SEED = 17
STRESS_LENGTHS = (2, 12)  # actions per session: uniform in this closed range (mean 7; the generated day's is 5.5)
USERS_PER_1000_SESSIONS = 250  # as generate.users_per_1000_sessions: 500 review cases are a small share
GAP_S = (0.5, 30.0)  # seconds between two actions of a session, uniform


def stress_frames(day: dt.date, sessions: int, seed: int = STRESS_SEED):
    """(sessions, actions) as pyarrow Tables typed by the contract's input schemas."""
    import pyarrow as pa

    from raksha import contract
    from raksha.synthetic.users import numbered_ids
    from raksha.synthetic.write import arrow_schema

    n = int(sessions)
    rng = np.random.default_rng(np.random.SeedSequence([seed, day.toordinal(), n]))
    day_start_us = (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * 86_400_000_000
    users = max(1, -(-n * USERS_PER_1000_SESSIONS // 1000))
    session_id = numbered_ids(f"x{day:%Y%m%d}-", np.arange(n), 8)
    user_id = numbered_ids("xu", rng.integers(0, users, n), 8)
    device_id = numbered_ids("xd", rng.integers(0, 10 * users, n), 8)
    start_us = day_start_us + rng.integers(0, 86_400_000_000 - 3_600_000_000, n)

    columns: dict[str, object] = {
        "session_id": session_id,
        "user_id": user_id,
        "device_id": device_id,
        "session_start": pa.array(start_us, pa.timestamp("us", tz="UTC")),
    }
    for name in contract.CONTINUOUS_FEATURES:
        low, high = contract.feature_range(name)
        columns[name] = rng.uniform(low, high, n)
    for name in contract.BINARY_FEATURES:
        columns[name] = rng.integers(0, 2, n).astype(np.int32)
    session_table = pa.Table.from_pydict(columns, schema=arrow_schema(contract.SESSIONS_SCHEMA))

    low, high = STRESS_LENGTHS
    lengths = rng.integers(low, high + 1, n)
    owner = np.repeat(np.arange(n), lengths)
    first = np.cumsum(lengths) - lengths
    position = np.arange(len(owner)) - first[owner]  # 0-based within the session
    gaps = np.round(rng.uniform(*GAP_S, len(owner)) * 1e6).astype(np.int64)
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[first] - gaps[first], lengths)  # restart at each session's first action
    names = np.array(list(contract.ACTIONS), dtype=object)
    codes = rng.integers(0, len(names), len(owner))
    amount = np.full(len(owner), np.nan)
    small, large = names[codes] == "TRANSFER_SMALL", names[codes] == "TRANSFER_LARGE"
    amount[small] = np.round(rng.uniform(1.0, 499.99, int(small.sum())), 2)
    amount[large] = np.round(rng.uniform(10_000.01, 250_000.0, int(large.sum())), 2)
    action_table = pa.Table.from_pydict(
        {
            "session_id": pa.array(session_id, pa.string()).take(owner),
            "user_id": pa.array(user_id, pa.string()).take(owner),
            "event_ts": pa.array(start_us[owner] + elapsed, pa.timestamp("us", tz="UTC")),
            "seq_no": (position + 1).astype(np.int32),
            "action": pa.array(names, pa.string()).take(codes),
            "amount": pa.array(amount, pa.float64(), mask=~(small | large)),
        },
        schema=arrow_schema(contract.ACTIONS_SCHEMA),
    )
    return session_table, action_table


def write_stress_day(day: dt.date, sessions: int, sessions_root: str, actions_root: str) -> dict[str, int]:
    """Write the stress day's sessions and action log (``raksha.synthetic.write.write_table``, as ``raksha
    generate`` writes a day: one Parquet file, a finished folder swapped in); their row counts."""
    from raksha.synthetic.write import write_table

    session_table, action_table = stress_frames(day, sessions)
    write_table(session_table, sessions_root, day)
    write_table(action_table, actions_root, day)
    return {"sessions": session_table.num_rows, "actions": action_table.num_rows}
