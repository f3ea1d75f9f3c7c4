from __future__ import annotations

import datetime as dt

import pytest

from raksha import contract
from raksha.config import ConfigError
from raksha.decide import decisions, review
from raksha.decide.decisions import decision, validate_policy

DAY = dt.date(2026, 4, 5)


def _scored(spark, rows):
    data = [(sid, uid, "d", None, dec, risk, 0.0, 0.0, 0.0, []) for sid, uid, dec, risk in rows]
    schema = (
        "session_id string, user_id string, device_id string, session_start timestamp, decision string, "
        "risk_score double, ae_risk_percent double, seq_risk double, seq_risk_max double, "
        f"reasons array<{contract.REASON_TYPE.simpleString()}>"
    )
    return spark.createDataFrame(data, schema)


def test_queue_groups_a_users_sessions_into_one_case_and_respects_capacity(spark):
    rows = [(f"s{u}-{k}", f"u{u:02d}", "REVIEW", float(u + k / 10)) for u in range(30) for k in range(3)]
    rows += [(f"a{i}", f"u{i:02d}", "ALLOW", 1.0) for i in range(200)]
    rows += [("t1", "tie", "BLOCK", 29.15), ("t2", None, "BLOCK", 29.15)]  # ties: broken by the case key
    queue = review.review_queue(_scored(spark, rows), DAY, capacity=10, audit_rate=0.0, run_id="r").toPandas()
    assert queue["case_id"].nunique() == 10 and set(queue["case_rank"]) == set(range(1, 11))
    assert (queue.groupby("case_id")["user_id"].nunique() <= 1).all()
    first = queue[queue["case_rank"] == 1]
    assert set(first["user_id"]) == {"u29"} and list(first.sort_values("rank_in_case")["session_id"]) == [
        "s29-2",
        "s29-1",
        "s29-0",
    ]
    tied = queue.set_index("case_rank").loc[[2, 3], "session_id"].tolist()
    assert tied == ["t2", "t1"]  # "session:t2" < "tie"
    assert review.overflow_cases(_scored(spark, rows), 10) == 32 - 10


def _expected_cases(rows, capacity):
    """The queue's cases as the contract ranks them, in plain Python: (case_rank, key, sessions, case risk).

    A case's sessions are its flagged sessions scored at least the queue's cut (its last case's risk) when
    more cases were flagged than fit, else all of them."""
    risk: dict[str, float] = {}
    scores: dict[str, list[float]] = {}
    for sid, uid, dec, score in rows:
        if dec in contract.FLAGGED_DECISIONS:
            key = uid if uid is not None else f"session:{sid}"
            risk[key] = max(risk.get(key, score), score)
            scores.setdefault(key, []).append(score)
    ordered = sorted(risk, key=lambda k: (-risk[k], k))
    ranked = ordered[:capacity]
    cut = min(risk[k] for k in ranked) if len(ordered) > capacity and ranked else -float("inf")
    return [(rank, key, sum(s >= cut for s in scores[key]), risk[key]) for rank, key in enumerate(ranked, start=1)]


def test_a_queued_case_holds_only_its_sessions_that_rank_with_the_queue(spark):
    # u1's first session is the day's worst, its others are mild: below the last queued case's score
    rows = [("s1-0", "u1", "BLOCK", 95.0), ("s1-1", "u1", "REVIEW", 40.0), ("s1-2", "u1", "REVIEW", 71.0)]
    rows += [(f"s{u}-0", f"u{u}", "REVIEW", 80.0 - u) for u in range(2, 6)]  # u2..u5: 78 .. 75
    rows += [("s9-0", "u9", "REVIEW", 60.0)]  # a case beyond the capacity
    queue = review.review_queue(_scored(spark, rows), DAY, capacity=4, audit_rate=0.0, run_id="r").toPandas()
    assert sorted(queue["session_id"]) == ["s1-0", "s2-0", "s3-0", "s4-0"]  # cut 76: u1's 40 and 71 stay out
    assert queue.set_index("session_id").loc["s1-0", "case_sessions"] == 1
    assert review.overflow_cases(_scored(spark, rows), 4) == 2
    # when every flagged case fits, a case holds all its flagged sessions
    everything = review.review_queue(_scored(spark, rows), DAY, capacity=10, audit_rate=0.0, run_id="r").toPandas()
    assert len(everything) == len(rows) and everything.set_index("session_id").loc["s1-0", "case_sessions"] == 3


def test_ties_and_the_capacity_cut_hold_on_a_multi_partition_input(spark):
    # 192 cases (128 users, 64 user-less sessions) over 8 risk levels: ties of 20 and more, across partitions
    rows = []
    for c in range(160):
        uid = None if c % 5 == 0 else f"u{(c * 37) % 1000:03d}"
        for k in range(1 + c % 3):
            rows.append((f"s{c:03d}-{k}", uid, "BLOCK" if k else "REVIEW", float(c % 4 * 10 + (k == 1))))
    rows += [(f"a{i}", f"u{i:03d}", "ALLOW", 99.0) for i in range(50)]
    scored = _scored(spark, rows).repartition(5)
    assert scored.rdd.getNumPartitions() == 5
    everything = _expected_cases(rows, 1000)
    assert len(everything) == 192 and everything[56][3] == everything[57][3]  # capacity 57 cuts a tie
    for capacity in (0, 57):
        queue = review.review_queue(scored, DAY, capacity, audit_rate=0.0, run_id="r").toPandas()
        queue["key"] = [
            u if u is not None else f"session:{s}" for u, s in zip(queue["user_id"], queue["session_id"], strict=True)
        ]
        risk = queue.groupby("case_rank")["risk_score"].max()
        got = sorted({(int(r.case_rank), r.key, int(r.case_sessions), risk[r.case_rank]) for r in queue.itertuples()})
        assert got == _expected_cases(rows, capacity), capacity
        assert (queue["case_id"] == [f"{DAY.isoformat()}-{r:05d}" for r in queue["case_rank"]]).all()
        for _, case in queue.groupby("case_rank"):
            order = case.sort_values(["risk_score", "session_id"], ascending=[False, True])["rank_in_case"]
            assert list(order) == list(range(1, len(case) + 1))
    assert review.overflow_cases(scored, 57) == 192 - 57


def test_many_queues_at_once_hold_what_each_queue_holds_alone(spark):
    """review.queued_sessions_by (the evaluation's queues: one ranking per group, cut at each capacity) gives
    each group's queue the sessions queued_sessions gives it alone: ties, a cut inside a tie, NaN risks
    (ranked first), user-less sessions, every case fitting (no cut), across partitions."""
    rows = []
    for c in range(160):
        uid = None if c % 5 == 0 else f"u{(c * 37) % 1000:03d}"
        for k in range(1 + c % 3):
            risk = float("nan") if c in (7, 90) and k == 0 else float(c % 4 * 10 + (k == 1))
            rows.append((f"s{c:03d}-{k}", uid, "REVIEW", risk))
    by_group = {"a": rows, "b": [(s, u, d, -r) for s, u, d, r in rows[::3]]}
    flagged = (
        spark.createDataFrame(
            [(g, s, u, r) for g, group in by_group.items() for s, u, _, r in group],
            "g string, session_id string, user_id string, risk_score double",
        )
        .withColumn("case_key", review.case_key())
        .repartition(5)
    )
    capacities = [("a", "small", 1), ("a", "tie", 57), ("a", "all", 500), ("b", "small", 3), ("b", "tie", 20)]
    frame = spark.createDataFrame(capacities, "g string, q string, capacity int")
    queued = review.queued_sessions_by(flagged, frame, ["g"], ["q"]).toPandas()
    for group, queue, capacity in capacities:
        alone = review.queued_sessions(_scored(spark, by_group[group]), capacity).toPandas()
        got = queued[(queued["g"] == group) & (queued["q"] == queue)]
        assert sorted(got["session_id"]) == sorted(alone["session_id"]), (group, queue)
        assert len(alone) > 0 and (capacity < 500 or len(alone) == len(rows))


def _physical_nodes(df):
    """Every node of ``df``'s physical plan (into adaptive plans too), as JVM objects."""
    found, todo = [], [df._jdf.queryExecution().executedPlan()]
    while todo:
        node = todo.pop()
        found.append(node)
        if node.nodeName() == "AdaptiveSparkPlan":
            todo.append(node.executedPlan())
        children = node.children()
        todo.extend(children.apply(i) for i in range(children.size()))
    return found


@pytest.mark.parametrize("capacity", [10, 1500])  # 1500: above spark.sql.optimizer.windowGroupLimitThreshold
def test_ranking_is_a_distributed_top_k_not_a_single_partition_window(spark, capacity):
    rows = [(f"s{i}", f"u{i}", "REVIEW", float(i % 7)) for i in range(20)]
    nodes = _physical_nodes(review.review_queue(_scored(spark, rows), DAY, capacity, 0.01, "r"))
    top_k = [n for n in nodes if n.nodeName() == "TakeOrderedAndProject"]
    assert [n.limit() for n in top_k] == [capacity + 1]  # one more: were more cases flagged than fit?
    windows = [n for n in nodes if n.nodeName() == "Window"]
    assert windows, "rank_in_case is a window per case"
    assert all(not w.partitionSpec().isEmpty() for w in windows), "a window without partitionBy: one partition"


def test_audit_sample_is_the_same_on_a_rerun_and_about_the_rate(spark):
    rows = [(f"s{i}", f"u{i}", "ALLOW", 1.0) for i in range(5000)]
    scored = _scored(spark, rows)
    first = review.review_queue(scored, DAY, 10, 0.02, "r1").toPandas()
    again = review.review_queue(scored, DAY, 10, 0.02, "r2").toPandas()
    other_day = review.review_queue(scored, DAY + dt.timedelta(days=1), 10, 0.02, "r3").toPandas()
    assert first["audit"].all() and 60 < len(first) < 140
    assert sorted(first["session_id"]) == sorted(again["session_id"])
    assert sorted(first["session_id"]) != sorted(other_day["session_id"])


def test_the_days_candidates_hold_the_queue_and_the_overflow_of_the_whole_day(spark):
    # flagged sessions in a tie at the cut, ALLOW sessions of queued users, an audit sample: what the nightly
    # job's queue reads (review.candidate) gives the queue and the overflow that the whole day gives
    rows = [
        (f"s{c}-{k}", f"u{c % 40:02d}", "BLOCK" if k else "REVIEW", float(c % 7)) for c in range(90) for k in (0, 1)
    ]
    rows += [(f"a{i}", f"u{i % 60:02d}", "ALLOW", 50.0) for i in range(3000)]
    rows += [("n1", None, "REVIEW", 6.0), ("n2", "u01", None, 99.0)]  # a user-less case; a session without a decision
    scored = _scored(spark, rows).repartition(3)
    candidates = scored.where(review.candidate(DAY, 0.05))
    kept = candidates.count()
    assert 180 < kept < 180 + 3000 * 0.1  # the flagged ones and about 5% of the ALLOW ones
    for capacity in (0, 7, 500):
        whole = review.review_queue(scored, DAY, capacity, 0.05, "r").toPandas()
        part = review.review_queue(candidates, DAY, capacity, 0.05, "r").toPandas()
        columns = sorted(whole.columns)
        order = ["audit", "session_id"]
        assert (
            whole[columns]
            .sort_values(order)
            .reset_index(drop=True)
            .equals(part[columns].sort_values(order).reset_index(drop=True))
        ), capacity
        assert whole["audit"].any() and (capacity == 0 or not whole["audit"].all())
        assert review.overflow_cases(candidates, capacity) == review.overflow_cases(scored, capacity)


def test_default_policy_blocks_the_notebooks_sequences_and_reviews_a_high_risk_score(spark, cfg):
    """BLOCK when the LSTM's risk is above 0.8 (the notebook; seq_is_block is what the scorer writes for the
    version's block_threshold), else REVIEW when risk_score (all the evidence combined) is 65 or more, else
    ALLOW: the notebook autoencoder's anomaly flag alone does not flag a session."""
    rows = [(0.85, 1, 10.0, 0), (0.79, 0, 65.0, 0), (0.1, 0, 64.9, 1), (0.81, 1, 99.0, 1)]
    df = spark.createDataFrame(rows, "seq_risk double, seq_is_block int, risk_score double, ae_is_anomaly int")
    assert [r[0] for r in df.select(decision(cfg)).collect()] == ["BLOCK", "REVIEW", "ALLOW", "BLOCK"]


def test_rules_are_editable_in_config(spark, cfg):
    custom = cfg.with_overrides(
        [
            'decision.rules=[{when: "risk_score >= 90", decision: BLOCK}, '
            '{when: "seq_risk_max > 0.5 or ae_is_anomaly = 1", decision: REVIEW}]'
        ]
    )
    validate_policy(spark, custom)
    df = spark.createDataFrame(
        [(95.0, 0.0, 0), (50.0, 0.6, 0), (50.0, 0.1, 0)], "risk_score double, seq_risk_max double, ae_is_anomaly int"
    )
    assert [r[0] for r in df.select(decision(custom)).collect()] == ["BLOCK", "REVIEW", "ALLOW"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('[{when: "seq_rsk > 0.8", decision: BLOCK}]', r"decision.rules\[0\] 'seq_rsk > 0.8'"),
        ('[{when: "seq_risk > 0.8", decision: BLOK}]', r"decision 'BLOK' is not one of"),
        ('[{when: "seq_risk >", decision: BLOCK}]', r"decision.rules\[0\]"),
        ('[{if: "seq_risk > 0.8", decision: BLOCK}]', r"exactly the keys"),
    ],
)
def test_a_typo_in_a_rule_is_an_error_at_start(spark, cfg, rules, message):
    with pytest.raises(ConfigError, match=message):
        validate_policy(spark, cfg.with_overrides([f"decision.rules={rules}"]))


def test_rule_columns_are_the_scored_columns():
    names = {f.name for f in decisions.RULE_COLUMNS}
    assert {"seq_risk", "seq_risk_max", "ae_is_anomaly", "risk_score", "action_count"} <= names
