from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from raksha import contract
from raksha.sequences import encode_actions, pad_tokens, session_sequences


@pytest.mark.parametrize(
    "seqs",
    [
        [[1, 2, 3]],
        [list(range(1, 9)) + [1, 2, 3, 4, 5]],  # 13 actions: keep the last 10
        [[]],
        [[1, 0, 8], [5] * 10, [7] * 11],
    ],
)
def test_pad_tokens_equals_keras_pad_sequences(seqs):
    from keras.utils import pad_sequences

    expected = pad_sequences(seqs, maxlen=contract.MAX_SEQ_LENGTH, padding="post")
    np.testing.assert_array_equal(pad_tokens(seqs), expected)


def test_encode_actions_maps_unknown_to_zero():
    assert encode_actions(["LOGIN", "SCAN_QR", "LOGOUT"]) == [1, 0, 8]


def test_session_sequences_orders_by_time_then_seq_no(spark):
    t = dt.datetime(2026, 1, 1, 10, 0, 0)
    rows = [
        ("s1", "u", t + dt.timedelta(seconds=2), 3, "LOGOUT", None),
        ("s1", "u", t, 2, "ADD_RECIPIENT", None),  # same event_ts as LOGIN: seq_no decides
        ("s1", "u", t, 1, "LOGIN", None),
        ("s1", "u", t + dt.timedelta(seconds=1), 9, "SCAN_QR", None),
        ("s2", "u", t, 1, "LOGIN", None),
    ]
    actions = spark.createDataFrame(rows, contract.ACTIONS_SCHEMA)
    out = {r["session_id"]: r for r in session_sequences(actions).collect()}
    assert out["s1"]["action_tokens"] == [1, 7, 0, 8]
    assert out["s1"]["action_count"] == 4 and out["s1"]["unknown_action_count"] == 1
    assert out["s2"]["action_tokens"] == [1]
