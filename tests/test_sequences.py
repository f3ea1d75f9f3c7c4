from __future__ import annotations

import datetime as dt

import factories
import numpy as np
import pytest

from raksha import contract
from raksha.features.sequences import encode_actions, pad_tokens, session_sequences


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


def test_events_tied_on_time_and_seq_no_give_one_sequence_whatever_their_order_in_the_log(spark):
    t = dt.datetime(2026, 1, 1, 10, 0, 0)
    tied = [("LOGOUT", 8), ("LOGIN", 1), ("SCAN_QR", 0), ("VIEW_BALANCE", contract.ACTIONS["VIEW_BALANCE"])]
    found = set()
    for order in (tied, tied[::-1], tied[1:] + tied[:1]):
        rows = [("s1", "u", t, 1, action, None) for action, _ in order]
        found.add(
            tuple(session_sequences(spark.createDataFrame(rows, contract.ACTIONS_SCHEMA)).first()["action_tokens"])
        )
    assert found == {tuple(sorted(token for _, token in tied))}


def test_session_windows_are_what_the_notebook_would_score_at_each_action():
    from raksha.scoring.scorers import session_windows

    long = list(range(1, 9)) * 3  # 24 actions
    padded, session, end, offset, first, counts = session_windows([[3, 5], None, long, []])
    assert list(counts) == [2, 1, 24, 1] and list(first) == [0, 2, 3, 27]
    assert list(session) == [0, 0, 1] + [2] * 24 + [3]
    expected = [[3], [3, 5], []] + [long[max(0, j - 10) : j] for j in range(1, 25)] + [[]]
    np.testing.assert_array_equal(padded, pad_tokens(expected))
    assert list(end) == [1, 2, 1, *range(1, 25), 1]
    assert list(offset[3:]) == [max(0, j - 10) for j in range(1, 25)] + [0]


def test_scoring_sessions_takes_the_earliest_riskiest_window():
    from raksha.models import artifacts
    from raksha.scoring.scorers import SequenceScorer

    scorer = SequenceScorer(artifacts.load_version("models", contract.SEQ_MODEL))
    attack = encode_actions(["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE", "TRANSFER_LARGE"])
    calm = encode_actions(["VIEW_BALANCE", "VIEW_TRANSACTIONS"])
    session = calm * 2 + attack + calm * 8 + attack + calm * 6  # the attack twice, the second after 20 calm steps
    out = scorer.score_sessions([session, calm, [], None])
    windows = [session[max(0, j - 10) : j] for j in range(1, len(session) + 1)]
    risk = scorer.score(windows, with_reasons=False)["seq_risk"].to_numpy()
    row = out.iloc[0]
    assert row["seq_risk_max"] == pytest.approx(risk.max(), rel=1e-5) and row["seq_risk_max"] > 0.8
    assert row["seq_risk"] == pytest.approx(risk[-1], rel=1e-5) and row["seq_risk"] < row["seq_risk_max"]
    assert row["seq_risk_max_at"] == 1 + int(np.argmax(risk))  # the first of the riskiest windows
    codes = " ".join(r["code"] for r in row["seq_reasons"])
    assert "ADD_RECIPIENT" in codes and all(1 <= r["value"] <= 8 for r in row["seq_reasons"])
    assert list(out["seq_risk_max_at"][2:]) == [1, 1]  # sessions without actions: one empty window
    assert out["seq_risk"][2] == out["seq_risk"][3]


def test_sequence_reasons_name_the_step_before_or_start_or_earlier():
    """Each sequence reason is ``<step before> -> <step>``: ``START ->`` for the session's first action,
    ``EARLIER ->`` for the first action of a window that started after the session did (the step
    before it lies outside the window the model saw)."""
    from raksha.models import artifacts
    from raksha.scoring.scorers import SequenceScorer

    scorer = SequenceScorer(artifacts.load_version("models", contract.SEQ_MODEL))
    short = ["ADD_RECIPIENT", "TRANSFER_LARGE", "TRANSFER_LARGE"]
    long = ["VIEW_BALANCE", "TRANSFER_SMALL", "CHANGE_PASSWORD", "TRANSFER_LARGE", "VIEW_BALANCE", "TRANSFER_SMALL"]
    long += ["ADD_RECIPIENT", "TRANSFER_LARGE", "TRANSFER_LARGE", "CHANGE_PASSWORD", "LOGIN", "LOGOUT", "LOGOUT"]
    out = scorer.score_sessions([encode_actions(short), encode_actions(long)])
    codes = []
    for actions, (_, row) in zip((short, long), out.iterrows(), strict=True):
        start = max(0, int(row["seq_risk_max_at"]) - contract.MAX_SEQ_LENGTH)  # actions before the riskiest window
        assert row["seq_risk_max"] > 0.9 and row["seq_reasons"]
        for reason in row["seq_reasons"]:
            at = int(reason["value"])  # 1-based position of the step in the session
            assert start < at <= int(row["seq_risk_max_at"])
            before = "START" if at == 1 else "EARLIER" if at == start + 1 else actions[at - 2]
            assert reason["code"] == f"{before} -> {actions[at - 1]}"
        codes.append([r["code"] for r in row["seq_reasons"]])
    assert "START -> ADD_RECIPIENT" in codes[0]
    assert len(long) > contract.MAX_SEQ_LENGTH and out["seq_risk_max_at"][1] > contract.MAX_SEQ_LENGTH
    assert "EARLIER -> CHANGE_PASSWORD" in codes[1] and not any(c.startswith("START") for c in codes[1])


@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_a_sequence_model_giving_nan_gives_nan_scores_not_an_error(tmp_path, runtime):
    from raksha.models import artifacts
    from raksha.scoring.scorers import SequenceScorer

    factories.write_untrained_models(tmp_path, broken_sequence=True)
    scorer = SequenceScorer(artifacts.load_version(tmp_path, contract.SEQ_MODEL), runtime)
    long = encode_actions(["LOGIN", "VIEW_BALANCE", "ADD_RECIPIENT", "TRANSFER_LARGE"] * 4)
    out = scorer.score_sessions([long, encode_actions(["LOGIN"]), []])
    # NaN where the job looks (quality.MODEL_OUTPUTS), so each session is quarantined, not scored
    assert out["seq_risk"].isna().all() and out["seq_risk_max"].isna().all()
    assert (out["seq_is_block"] == 0).all()
