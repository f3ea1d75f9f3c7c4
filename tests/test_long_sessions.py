"""A bot session of 100,000 actions: only its last ``scoring.max_windows_per_session`` windows are
scored, it is flagged SEQUENCE_WINDOWS_CAPPED, and a batch's windows go through in bounded groups,
so neither one session nor one batch can take a Python worker's memory."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import factories
import numpy as np
import pandas as pd
import pytest

from raksha import contract
from raksha.config import ConfigError, load_config
from raksha.features.sequences import MAX_WINDOWS_PER_SESSION, encode_actions, pad_tokens
from raksha.models import artifacts
from raksha.scoring import scorers
from raksha.scoring.scorers import SequenceScorer, session_windows

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DAY = dt.date(2026, 5, 6)
BOT_ACTIONS = 100_000
ATTACK = ["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE", "TRANSFER_LARGE"]
BROWSING = ["VIEW_BALANCE", "VIEW_TRANSACTIONS", "TRANSFER_SMALL"]
MB = 1024 * 1024


def bot_session(attack_at: int, n: int = BOT_ACTIONS, seed: int = 7) -> list[int]:
    """``n`` tokens of scripted browsing with the account-takeover pattern from ``attack_at`` (0-based)."""
    rng = np.random.default_rng(seed)
    tokens = rng.choice(np.array(encode_actions(BROWSING)), n)
    tokens[attack_at : attack_at + len(ATTACK)] = encode_actions(ATTACK)
    return tokens.tolist()


def notebook_risks(scorer: SequenceScorer, tokens: list[int], ends: range) -> np.ndarray:
    """The notebook's score of the session had it ended at each j of ``ends`` (its last 10 actions, padded)."""
    windows = [tokens[max(0, j - contract.MAX_SEQ_LENGTH) : j] for j in ends]
    return scorer.risk(pad_tokens(windows)).astype(np.float64)


@pytest.fixture(scope="module")
def scorer() -> SequenceScorer:
    return SequenceScorer(artifacts.load_version(MODELS, contract.SEQ_MODEL), "onnx")


def test_the_cap_is_a_positive_config_key_whose_default_is_the_code_default():
    assert load_config().get("scoring.max_windows_per_session") == MAX_WINDOWS_PER_SESSION == 1000
    assert load_config(sets=["scoring.max_windows_per_session=50"]).get("scoring.max_windows_per_session") == 50
    for bad in ("0", "-5", "abc", "2.5"):
        with pytest.raises(ConfigError, match=r"config key 'scoring\.max_windows_per_session'"):
            load_config(sets=[f"scoring.max_windows_per_session={bad}"])


def test_capped_windows_are_the_last_ones_at_their_positions_in_the_session():
    long = list(range(1, 9)) * 4  # 32 actions
    seqs = [[3, 5], None, long, [], [1, 2, 3, 4, 5]]
    full = session_windows(seqs)
    padded, session, end, offset, first, counts = session_windows(seqs, max_windows_per_session=5)
    assert list(counts) == [2, 1, 5, 1, 5] and list(first) == [0, 2, 3, 8, 9]
    assert list(session) == [0, 0, 1, 2, 2, 2, 2, 2, 3, 4, 4, 4, 4, 4]
    kept = np.r_[0:3, 30:35, 35:41]  # the long session's windows ending at actions 28..32
    np.testing.assert_array_equal(padded, full[0][kept])
    np.testing.assert_array_equal(end, full[2][kept])
    np.testing.assert_array_equal(offset, full[3][kept])
    assert list(end[3:8]) == [28, 29, 30, 31, 32] and list(offset[3:8]) == [18, 19, 20, 21, 22]
    np.testing.assert_array_equal(padded[3:8], pad_tokens([long[j - 10 : j] for j in range(28, 33)]))
    with pytest.raises(ValueError, match="at least 1"):
        session_windows(seqs, max_windows_per_session=0)


def test_a_bot_session_is_scored_on_its_last_windows_only_where_its_attack_is_found(scorer):
    attack_at = BOT_ACTIONS - 400  # inside the last 1000 windows
    tokens = bot_session(attack_at)
    ran: list[int] = []
    forward = scorer.forward
    scorer._memo = {}
    scorer.forward = lambda rows: ran.append(len(rows)) or forward(rows)
    try:
        out = scorer.score_sessions([tokens])
    finally:
        scorer.forward = forward
    row = out.iloc[0]
    # the windows of the cap's range and the occlusion of the riskiest one: the 99,000 before never ran
    assert sum(ran) <= MAX_WINDOWS_PER_SESSION + contract.MAX_SEQ_LENGTH

    ends = range(BOT_ACTIONS - MAX_WINDOWS_PER_SESSION + 1, BOT_ACTIONS + 1)
    risk = notebook_risks(scorer, tokens, ends)
    assert row["seq_risk"] == pytest.approx(risk[-1], rel=1e-6)  # the notebook's: last 10 actions
    assert row["seq_risk"] == pytest.approx(scorer.score([tokens[-10:]])["seq_risk"][0], rel=1e-6)
    assert row["seq_risk_max"] == pytest.approx(risk.max(), rel=1e-6) and row["seq_risk_max"] > 0.9
    # the action the riskiest window ends on, counted from the session's first action
    assert row["seq_risk_max_at"] == ends[int(np.argmax(risk))]
    assert attack_at + len(ATTACK) <= row["seq_risk_max_at"] < attack_at + contract.MAX_SEQ_LENGTH
    steps = [int(r["value"]) for r in row["seq_reasons"]]
    assert steps and all(attack_at < s <= attack_at + len(ATTACK) for s in steps)
    assert "LOGIN -> ADD_RECIPIENT" in [r["code"] for r in row["seq_reasons"]]

    uncapped = scorer.score_sessions([tokens], max_windows_per_session=None).iloc[0]
    for column in ("seq_risk", "seq_risk_max", "seq_risk_max_at", "seq_surprise"):
        assert row[column] == uncapped[column], column


def test_an_attack_before_the_cap_range_is_not_seen_which_the_flag_says(scorer):
    tokens = bot_session(attack_at=500)
    capped = scorer.score_sessions([tokens], with_reasons=False).iloc[0]
    uncapped = scorer.score_sessions([tokens], with_reasons=False, max_windows_per_session=None).iloc[0]
    assert uncapped["seq_risk_max"] > 0.9 and 504 <= uncapped["seq_risk_max_at"] < 510
    assert capped["seq_risk_max"] < 0.01 and capped["seq_risk_max_at"] > BOT_ACTIONS - MAX_WINDOWS_PER_SESSION
    assert capped["seq_risk"] == uncapped["seq_risk"]


def test_normal_sessions_score_as_without_the_cap(scorer):
    rng = np.random.default_rng(3)
    normal = [encode_actions(["LOGIN", *rng.choice(BROWSING, rng.integers(1, 30)), "LOGOUT"]) for _ in range(60)]
    normal += [[], None, encode_actions(["LOGIN", *ATTACK[1:], *BROWSING * 6])]  # 22 actions, the attack early
    batch = [*normal[:30], bot_session(BOT_ACTIONS - 400), *normal[30:]]
    capped = scorer.score_sessions(batch).drop(index=30).reset_index(drop=True)
    uncapped = scorer.score_sessions(normal, max_windows_per_session=None)
    pd.testing.assert_frame_equal(capped, uncapped)
    for tokens, (_, row) in zip(normal, capped.iterrows(), strict=True):  # and what the notebook would give
        risk = notebook_risks(scorer, list(tokens or []), range(1, max(len(tokens or []), 1) + 1))
        assert row["seq_risk_max_at"] == 1 + int(np.argmax(risk))
        assert row["seq_risk_max"] == pytest.approx(risk.max(), rel=1e-6)
    assert capped["seq_risk_max"].iloc[-1] > 0.9 and capped["seq_risk_max_at"].iloc[-1] < 10


def test_a_batch_goes_through_in_bounded_groups_and_model_calls_with_the_same_results(monkeypatch):
    version = artifacts.load_version(MODELS, contract.SEQ_MODEL)
    rng = np.random.default_rng(5)
    batch = [rng.integers(0, 9, int(k)).tolist() for k in rng.integers(0, 300, 40)] + [None, []]
    expected = SequenceScorer(version).score_sessions(batch)
    monkeypatch.setattr(scorers, "WINDOW_GROUP", 250)
    monkeypatch.setattr(scorers, "FORWARD_ROWS", 64)
    built: list[int] = []
    windows = scorers.session_windows

    def counted(*args, **kwargs):
        out = windows(*args, **kwargs)
        built.append(len(out[0]))
        return out

    monkeypatch.setattr(scorers, "session_windows", counted)
    scorer = SequenceScorer(version)
    calls: list[int] = []
    forward = scorer.forward
    scorer.forward = lambda rows: calls.append(len(rows)) or forward(rows)
    out = scorer.score_sessions(batch, max_windows_per_session=200)
    assert len(built) > 1 and max(built) <= 250  # groups of whole sessions, none over the limit
    assert len(calls) > 1 and max(calls) <= 64
    longest = max(len(s or []) for s in batch)
    assert longest > 200  # some sessions were capped: those differ from the uncapped expectation
    fits = [i for i, s in enumerate(batch) if len(s or []) <= 200]
    pd.testing.assert_frame_equal(out.iloc[fits], expected.iloc[fits])
    np.testing.assert_array_equal(out["seq_risk"], expected["seq_risk"])
    pd.testing.assert_frame_equal(SequenceScorer(version).score_sessions(batch, max_windows_per_session=200), out)


MEMORY_SCRIPT = """
import json, sys
import numpy as np
from raksha import contract
from raksha.models import artifacts
from raksha.scoring.scorers import SequenceScorer
sessions, actions = int(sys.argv[1]), int(sys.argv[2])
scorer = SequenceScorer(artifacts.load_version(sys.argv[3], contract.SEQ_MODEL), "onnx")
scorer.score_sessions([[1, 2, 3]])
rng = np.random.default_rng(0)
batch = [rng.integers(1, 9, actions).tolist() for _ in range(sessions)]  # random: nearly every window distinct
def peak_kb():  # this process's own peak RSS (ru_maxrss would count the parent's at the fork)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
before = peak_kb()
out = scorer.score_sessions(batch)
after = peak_kb()
print(json.dumps({"before_kb": before, "after_kb": after, "rows": len(out)}))
"""


def _peak_growth(sessions: int, actions: int) -> tuple[float, float]:
    """(peak RSS before scoring, its growth while scoring), in MB, of a fresh Python process scoring
    ``sessions`` random sessions of ``actions`` actions with the default cap: a worker's batch."""
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(sessions), str(actions), str(MODELS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == sessions
    return figures["before_kb"] / 1024, (figures["after_kb"] - figures["before_kb"]) / 1024


def test_a_worker_scoring_a_100000_action_session_stays_small():
    """Scoring one random session of 100,000 actions took a worker about 1.3 GB more before the cap
    (100,000 windows through ONNX Runtime in one call; about 180 MB in calls of FORWARD_ROWS); with
    the cap about 15 MB."""
    before, growth = _peak_growth(1, BOT_ACTIONS)
    print(f"\n100,000-action session: worker peak RSS {before:,.0f} MB before scoring, +{growth:,.0f} MB scoring it")
    assert growth < 100  # uncapped: about 180 MB in bounded model calls, 1.3 GB in one


def test_a_worker_scoring_a_batch_of_many_long_sessions_stays_bounded():
    """150 random sessions of 1,000 actions (not capped): 150,000 distinct windows in one batch. In one
    group and one model call that took about 2 GB; in bounded groups and calls, under a few hundred MB."""
    before, growth = _peak_growth(150, MAX_WINDOWS_PER_SESSION)
    print(
        f"\n150 sessions of 1,000 actions: worker peak RSS {before:,.0f} MB before scoring, "
        f"+{growth:,.0f} MB scoring them"
    )
    assert growth < 512  # in one group and one model call: about 2 GB


def test_dq_flags_flag_a_session_with_more_actions_than_the_cap(spark):
    from raksha.ingest import quality

    counts = [0, 5, 11, 1000, 1001, BOT_ACTIONS]
    rows = [(f"s{i}", n, 0, *([0.5] * len(contract.FEATURES))) for i, n in enumerate(counts)]
    frame = spark.createDataFrame(rows, ["session_id", "action_count", "unknown_action_count", *contract.FEATURES])
    flags = {
        r["session_id"]: r["f"] for r in frame.select("session_id", quality.session_dq_flags().alias("f")).collect()
    }
    capped = [s for s, f in sorted(flags.items()) if "SEQUENCE_WINDOWS_CAPPED" in f]
    assert capped == ["s4", "s5"]  # 1001 and 100,000 actions, not 1000
    assert flags["s5"] == ["SEQUENCE_TRUNCATED", "SEQUENCE_WINDOWS_CAPPED"]
    low = frame.select("session_id", quality.session_dq_flags(10).alias("f")).collect()
    assert sorted(r["session_id"] for r in low if "SEQUENCE_WINDOWS_CAPPED" in r["f"]) == ["s2", "s3", "s4", "s5"]


def bot_actions(session: pd.Series, tokens: list[int]) -> pd.DataFrame:
    """Action-log rows of a scripted session (two actions a second) with these tokens."""
    return pd.DataFrame(
        {
            "session_id": session["session_id"],
            "user_id": session["user_id"],
            "event_ts": session["session_start"] + pd.to_timedelta(np.arange(len(tokens)) * 500, unit="ms"),
            "seq_no": np.arange(1, len(tokens) + 1, dtype="int32"),
            "action": [contract.ACTION_NAMES[t] for t in tokens],
            "amount": np.nan,
        }
    )


def test_the_nightly_job_scores_bot_sessions_capped_and_flags_them(spark, tmp_path, scorer):
    """The job as scheduled (its scoring UDF given no cap: the default): a bot of 100,000 actions with its
    attack in the cap's range is found where it is; a bot of 1,500 actions whose attack lies before the
    range is scored on its last 1,000 windows only; both flagged, the other sessions not."""
    from conftest import test_config

    from raksha.pipeline.daily import run
    from raksha.platform import tables

    cfg = test_config(tmp_path, f"paths.models={MODELS}")
    sessions = factories.sessions_frame(DAY, 20, seed=6)
    late, early = sessions["session_id"].iloc[0], sessions["session_id"].iloc[1]
    attack_at = BOT_ACTIONS - 400
    tokens = {late: bot_session(attack_at), early: bot_session(100, n=1500, seed=8)}
    actions = [factories.actions_frame(sessions.iloc[2:], seed=6)]
    actions += [bot_actions(sessions.iloc[i], tokens[sessions["session_id"].iloc[i]]) for i in (0, 1)]
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(pd.concat(actions, ignore_index=True), cfg.path("actions"), DAY)

    result = run(spark, cfg, DAY)
    assert result.counts["sessions_scored"] == 20 and result.counts["sessions_quarantined"] == 0
    scored = spark.table(tables.table_name(cfg, "scored_sessions")).toPandas().set_index("session_id")
    expected = scorer.score_sessions([tokens[late], tokens[early]], with_reasons=False).set_axis([late, early])
    for sid in (late, early):
        row = scored.loc[sid]
        assert row["action_count"] == len(tokens[sid])
        assert list(row["dq_flags"]) == ["SEQUENCE_TRUNCATED", "SEQUENCE_WINDOWS_CAPPED"]
        assert row["seq_risk_max_at"] == expected.loc[sid, "seq_risk_max_at"]
        assert row["seq_risk_max"] == pytest.approx(expected.loc[sid, "seq_risk_max"], rel=1e-6)
        assert row["seq_risk"] == pytest.approx(expected.loc[sid, "seq_risk"], rel=1e-6)
    assert attack_at + len(ATTACK) <= scored.loc[late, "seq_risk_max_at"] < attack_at + contract.MAX_SEQ_LENGTH
    assert scored.loc[late, "seq_risk_max"] > 0.9
    # the early attack is outside the last 1,000 windows: the job did not score it (uncapped it would)
    assert scored.loc[early, "seq_risk_max"] < 0.01 and scored.loc[early, "seq_risk_max_at"] > 500
    uncapped = scorer.score_sessions([tokens[early]], with_reasons=False, max_windows_per_session=None)
    assert uncapped["seq_risk_max"][0] > 0.8
    others = scored.drop(index=[late, early])
    assert not any("SEQUENCE_WINDOWS_CAPPED" in flags for flags in others["dq_flags"])
