"""``raksha evaluate``: the models against ground truth, beside an IsolationForest, on generated days."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import math
from pathlib import Path

import conftest
import factories
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from raksha import cli, contract, synthetic
from raksha.evaluation import aggregates, metrics, queues
from raksha.evaluation.metrics import (
    attack_kinds,
    frame_metrics,
    kind_counts,
    outcome_by_kind,
    partitioned_ranking,
    precision,
    queue_summary,
    rank_rows,
)
from raksha.evaluation.report import default_report_path
from raksha.evaluation.window import evaluate, queue_precision
from raksha.feedback import verdicts
from raksha.ingest.inputs import InputError
from raksha.pipeline.daily import run

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 3, 2)
DAY2 = DAY + dt.timedelta(days=1)
SCORES = ("ae_error", "seq_risk_max", "risk_score", "isolation_forest")  # every scored session has these


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory):
    """Two generated days (3000 sessions each, 5% attacks) scored by the nightly job with the shipped models."""
    cfg = conftest.test_config(tmp_path_factory.mktemp("evaluation"), f"paths.models={REPO / 'models'}")
    synthetic.generate(DAY, 2, 3000, 0.05, 7, cfg.path("sessions"), cfg.path("actions"), cfg.path("labels"))
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "10000")  # the session's 50 is for the model-loading tests; this is about the numbers
    try:
        for day in (DAY, DAY2):
            run(spark, cfg, day)
    finally:
        spark.conf.set(key, before)
    return cfg


def _truth(cfg, days) -> pd.DataFrame:
    """scored_sessions (through delta-rs) and labels (their Parquet folders) read directly, not through evaluation."""
    frames = []
    for day in days:
        scored = factories.read_table_day(cfg, "scored_sessions", day)
        labels = pd.read_parquet(Path(cfg.path("labels")) / f"dt={day}")
        frames.append(scored.merge(labels.drop(columns=["user_id"]), on="session_id", how="inner").assign(dt=str(day)))
    return pd.concat(frames, ignore_index=True)


def _isolation_forest_outside(cfg, truth: pd.DataFrame, report: dict) -> pd.Series:
    """The baseline computed here from the raw session files: scikit-learn's IsolationForest with the
    report's settings, trained on every evaluated session (dt, session_id order), negated score."""
    from sklearn.ensemble import IsolationForest

    raw = pd.concat([pd.read_parquet(Path(cfg.path("sessions")) / f"dt={d}").assign(dt=str(d)) for d in (DAY, DAY2)])
    raw = raw[raw["session_id"].isin(truth["session_id"])].sort_values(["dt", "session_id"], kind="mergesort")
    x = raw[list(contract.FEATURES)].astype("float64").fillna(0.0).to_numpy()
    info = report["baseline"]
    forest = IsolationForest(n_estimators=info["n_estimators"], random_state=info["random_state"]).fit(x)
    return pd.Series(-forest.score_samples(x), index=raw["session_id"].to_numpy())


def test_evaluate_command_against_the_generated_labels(spark, scored, tmp_path, capsys, in_process):
    out = tmp_path / "evaluation.json"
    code = cli.main(
        ["evaluate", "--start-date", str(DAY), "--end-date", str(DAY2), "--out", str(out), *factories.cli_sets(scored)]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    report = json.loads(out.read_text())
    assert "ROC-AUC" in printed.out and "IsolationForest baseline" in printed.out and str(out) in printed.out

    truth = _truth(scored, (DAY, DAY2))
    assert report["sessions"]["evaluated"] == len(truth) == 6000
    assert report["sessions"]["attacks"] == int(truth["is_attack"].sum()) > 200
    for name in SCORES:
        for metric in ("roc_auc", "pr_auc"):
            assert 0.0 <= report["scores"][name][metric] <= 1.0
    truth["isolation_forest"] = truth["session_id"].map(_isolation_forest_outside(scored, truth, report))
    for name in ("ae_error", "seq_risk_max", "risk_score", "isolation_forest"):
        assert report["scores"][name]["roc_auc"] > 0.5, name  # higher is more anomalous: the sign is right
        # the same numbers as scikit-learn's on the files, to the last bits of a double
        exact = {"rel": 1e-12, "abs": 0}
        expected = roc_auc_score(truth["is_attack"], truth[name])
        assert report["scores"][name]["roc_auc"] == pytest.approx(expected, **exact)
        expected = average_precision_score(truth["is_attack"], truth[name])
        assert report["scores"][name]["pr_auc"] == pytest.approx(expected, **exact)
        for kind, group in truth[truth["is_attack"] == 1].groupby("attack_kind"):
            judged = pd.concat([group, truth[truth["is_attack"] == 0]])
            expected = roc_auc_score(judged["is_attack"], judged[name])
            assert report["roc_auc_by_kind"][kind][name] == pytest.approx(expected, **exact), (kind, name)
    assert report["scores"]["seq_risk_max"]["roc_auc"] > 0.75  # the sequence attacks are in the sequences
    by_kind = report["roc_auc_by_kind"]
    assert set(by_kind) == {"account_takeover", "bot", "social_engineering"}
    assert by_kind["account_takeover"]["ae_error"] > 0.6  # a new device, far from home, another hand
    assert by_kind["account_takeover"]["seq_risk_max"] > 0.9
    assert report["baseline"]["training_rows"] == 6000 and report["baseline"]["random_state"] == 0

    # recall at the current decisions, per kind, as counted from the files
    rows = {r["kind"]: r for r in report["by_kind"]}
    flagged = truth["decision"].isin(["REVIEW", "BLOCK"])
    for kind, group in truth[truth["is_attack"] == 1].groupby("attack_kind"):
        assert rows[kind]["sessions"] == len(group)
        assert rows[kind]["flagged"] == int(flagged[group.index].sum())
    assert rows["all attacks"]["sessions"] == report["sessions"]["attacks"]
    assert rows["normal"]["sessions"] == 6000 - report["sessions"]["attacks"]
    # precision at capacity is queue_precision's
    _, summary = queue_precision(spark, scored, DAY, DAY2, 0.01)
    assert report["at_capacity"]["sessions"] == summary["queued"] > 0
    assert report["at_capacity"]["precision"] == pytest.approx(summary["precision"])
    assert report["at_capacity"]["cases_per_day"] == {str(DAY): 30, str(DAY2): 30}

    # each score's queues, per session and per case, as pandas builds them from the files
    truth["kind"] = truth["attack_kind"].fillna("normal")
    for name in ("ae_error", "isolation_forest", "seq_risk_max", "risk_score"):
        for share in (0.01, 0.03):
            numbers = report["queues"]["scores"][name][f"{share:g}"]
            assert numbers["cases_per_day"] == {str(DAY): math.ceil(share * 3000), str(DAY2): math.ceil(share * 3000)}
            for way in ("per_session", "per_case"):
                _assert_queue(numbers[way], _queue_outside(truth, name, share, way))
    # a score the table has no column for (or null everywhere) is reported not available, not a failure
    columns = set(factories.read_table_day(scored, "scored_sessions", DAY).columns)
    for name in metrics.OPTIONAL_SCORES:
        entry = report["scores"][name]
        if name not in columns:
            assert entry == {
                "available": False,
                "sessions": 0,
                "why": "not in scored_sessions",
                "roc_auc": None,
                "pr_auc": None,
            }
        if not entry["available"]:
            assert report["queues"]["scores"][name] is None and f"({name})" in printed.out
    # benign oddities: normal sessions flagged, by oddity, as counted from the files
    normal = truth[truth["is_attack"] == 0]
    oddities = {row["oddity"]: row for row in report["benign_oddities"]["rows"]}
    assert set(oddities) == {"none", "new_device", "travel", "low_battery_night", "missing_sensors"}
    base = normal["benign_oddity"].isna()
    for oddity, row in oddities.items():
        group = normal[base] if oddity == "none" else normal[normal["benign_oddity"] == oddity]
        assert row["sessions"] == len(group) > 0 and row["flagged"] == int(flagged[group.index].sum())
        expected = (row["flagged"] / row["sessions"]) / (oddities["none"]["flagged"] / oddities["none"]["sessions"])
        assert row["flagged_ratio"] == pytest.approx(expected)
    assert "benign oddities" in printed.out and "queues of 1% and 3%" in printed.out


def _load_job():
    spec = importlib.util.spec_from_file_location("evaluate_job", REPO / "jobs" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_job_writes_the_default_report_with_a_capped_deterministic_baseline(spark, scored, in_process):
    job = _load_job()
    args = ["--start-date", str(DAY), "--end-date", str(DAY), "--baseline-rows", "1000", *factories.cli_sets(scored)]
    assert job.main(args) == 0
    path = Path(default_report_path(scored, DAY, DAY, "labels"))
    assert path.parent == Path(scored.path("warehouse")).parent / "reports"
    first = json.loads(path.read_text())
    assert first["baseline"]["training_rows"] == 1000 and first["baseline"]["training_pool"] == 3000
    assert first["sessions"]["evaluated"] == 3000

    assert job.main(args) == 0  # a rerun replaces the report with the same numbers
    again = json.loads(path.read_text())
    assert again["scores"] == first["scores"]


def test_evaluate_against_the_analysts_verdicts(spark, scored, tmp_path):
    truth = _truth(scored, (DAY,))
    unsure = truth.index % 40 == 0
    rows = pd.DataFrame(
        {
            "session_id": truth["session_id"],
            "dt": str(DAY),
            "verdict": np.where(unsure, "unsure", np.where(truth["is_attack"] == 1, "fraud", "legit")),
            "analyst": "asha",
            "reviewed_at": f"{DAY2}T09:00:00Z",
        }
    )
    path = tmp_path / "verdicts.csv"
    rows.to_csv(path, index=False)
    landed = verdicts.label(spark, scored, str(path))
    assert landed.rejected == [] and landed.new == 3000

    report = evaluate(spark, scored, DAY, DAY, truth="verdicts")
    reviewed = truth[~unsure]
    assert report["sessions"]["evaluated"] == len(reviewed) and report["sessions"]["unsure_left_out"] == unsure.sum()
    assert set(report["roc_auc_by_kind"]) == {"fraud"}
    for name in ("ae_error", "seq_risk_max", "risk_score"):
        expected = roc_auc_score(reviewed["is_attack"], reviewed[name])
        assert report["scores"][name]["roc_auc"] == pytest.approx(expected)
    assert 0.0 <= report["scores"]["isolation_forest"]["roc_auc"] <= 1.0


def test_a_day_of_the_window_not_scored_is_an_error(spark, scored):
    with pytest.raises(InputError, match=r"scored_sessions 2026-03-04: no rows \(score the day first\)"):
        evaluate(spark, scored, DAY, DAY2 + dt.timedelta(days=1))
    with pytest.raises(ValueError, match=r"capacity share must lie in \(0, 1\]"):
        evaluate(spark, scored, DAY, DAY2, capacity_share=0.0)
    with pytest.raises(ValueError, match="truth must be one of labels, verdicts"):
        evaluate(spark, scored, DAY, DAY2, truth="rumours")


def _small_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "is_attack": [0, 0, 0, 1, 1, 0],
            "kind": ["normal", "normal", "normal", "bot", "account_takeover", "normal"],
            "decision": ["ALLOW", "REVIEW", "ALLOW", "BLOCK", "ALLOW", "ALLOW"],
            "queued": [False, True, False, True, False, False],
            "good": [0.1, 0.2, 0.3, 0.9, 0.8, 0.0],
            "bad": [0.9, 0.8, 0.7, 0.1, 0.2, 1.0],
        }
    )


def test_metrics_on_a_small_frame():
    frame = _small_frame()
    counts = kind_counts(frame)
    kinds = attack_kinds(counts)
    assert kinds == ["account_takeover", "bot"]
    good = partitioned_ranking([rank_rows(frame, "good", kinds)], kinds)
    perfect = {"account_takeover": 1.0, "bot": 1.0}
    assert good == {"roc_auc": 1.0, "pr_auc": 1.0, "roc_auc_by_kind": perfect, "pr_auc_by_kind": perfect}
    bad = partitioned_ranking([rank_rows(frame, "bad", kinds)], kinds)
    assert bad["roc_auc"] == 0.0
    # each kind's one attack ranks below the four negatives (the other kind left out): precision 1/5
    assert bad["pr_auc_by_kind"] == {"account_takeover": 1 / 5, "bot": 1 / 5}
    one_class = frame[frame["is_attack"] == 0]
    undefined = {"roc_auc": None, "pr_auc": None, "roc_auc_by_kind": {}, "pr_auc_by_kind": {}}
    assert partitioned_ranking([rank_rows(one_class, "good", [])], []) == undefined  # not a number
    rows = {r["kind"]: r for r in outcome_by_kind(counts)}
    assert rows["bot"] == {
        "kind": "bot",
        "sessions": 1,
        "flagged": 1,
        "blocked": 1,
        "queued": 1,
        "recall_at_decisions": 1.0,
        "recall_blocked": 1.0,
        "recall_at_capacity": 1.0,
    }
    assert rows["all attacks"]["flagged"] == 1 and rows["all attacks"]["recall_at_decisions"] == 0.5
    assert rows["normal"]["flagged"] == 1 and rows["normal"]["queued"] == 1
    assert precision(counts, "queued") == {"sessions": 2, "attacks": 1, "precision": 0.5}


def test_report_numbers_on_a_small_frame():
    frame = _small_frame()
    for name in ("ae_error", "seq_risk_max", "isolation_forest"):
        frame[name] = frame["good"]
    frame["risk_score"] = frame["bad"]
    frame["user_baseline_score"] = [None, 0.5, 0.1, 0.7, None, 0.2]  # a score on some sessions only
    frame["ae_std_error"] = np.nan  # on none
    numbers = frame_metrics(frame, {str(DAY2): 1, str(DAY): 250}, 0.01)
    assert list(numbers) == ["scores", "roc_auc_by_kind", "pr_auc_by_kind", "at_decisions", "at_capacity", "by_kind"]
    assert list(numbers["scores"]) == list(metrics.SCORES)
    for name in SCORES:
        assert numbers["scores"][name] == {
            "available": True,
            "sessions": 6,
            "roc_auc": roc_auc_score(frame["is_attack"], frame[name]),
            "pr_auc": average_precision_score(frame["is_attack"], frame[name]),
        }
    assert numbers["scores"]["risk_score"]["roc_auc"] == 0.0 and numbers["scores"]["isolation_forest"]["pr_auc"] == 1.0
    assert numbers["roc_auc_by_kind"]["bot"] == {
        **{name: 0.0 if name == "risk_score" else 1.0 for name in SCORES},
        "user_baseline_score": 1.0,  # bot 0.7 above the three negatives that have the score
        "ae_std_error": None,
    }
    assert numbers["roc_auc_by_kind"]["account_takeover"]["user_baseline_score"] is None  # its attack has no score
    # ranked on the four sessions that have it: the bot first, then 0.5 (a negative)
    assert numbers["scores"]["user_baseline_score"] == {"available": True, "sessions": 4, "roc_auc": 1.0, "pr_auc": 1.0}
    assert numbers["scores"]["ae_std_error"] == {
        "available": False,
        "sessions": 0,
        "why": "null on every evaluated session",
        "roc_auc": None,
        "pr_auc": None,
    }
    absent = frame_metrics(frame.drop(columns=["ae_std_error"]), {str(DAY): 6}, 0.01)["scores"]["ae_std_error"]
    assert absent["available"] is False and absent["why"] == "not in scored_sessions"
    assert numbers["at_decisions"] == {"sessions": 2, "attacks": 1, "precision": 0.5}  # REVIEW or BLOCK
    assert numbers["at_capacity"] == {
        "cases_per_day": {str(DAY): 3, str(DAY2): 1},  # 1% of the day's sessions, at least one, by day
        "sessions": 2,
        "attacks": 1,
        "precision": 0.5,
    }
    assert numbers["by_kind"] == outcome_by_kind(kind_counts(frame))


def _sessions_with_ties(seed: int, n: int) -> pd.DataFrame:
    """Sessions with three attack kinds and two scores: ``coarse`` (a handful of values, long runs of
    ties holding both classes) and ``fine`` (ties here and there), sorted by ``coarse`` descending."""
    rng = np.random.default_rng(seed)
    is_attack = (rng.random(n) < 0.15).astype("int64")
    kind = np.where(is_attack == 1, rng.choice(["account_takeover", "bot", "social_engineering"], n), "normal")
    signal = rng.normal(size=n) + is_attack
    frame = pd.DataFrame(
        {"is_attack": is_attack, "kind": kind, "coarse": np.round(signal), "fine": np.round(signal, 2)}
    )
    return frame.sort_values("coarse", ascending=False, kind="mergesort").reset_index(drop=True)


def _sklearn_ranking(frame: pd.DataFrame, score: str) -> dict:
    negatives = frame["is_attack"] == 0
    by_kind = {}
    for kind in sorted(frame.loc[~negatives, "kind"].unique()):
        judged = frame[negatives | (frame["kind"] == kind)]
        by_kind[kind] = roc_auc_score(judged["is_attack"], judged[score])
    return {
        "roc_auc": roc_auc_score(frame["is_attack"], frame[score]),
        "pr_auc": average_precision_score(frame["is_attack"], frame[score]),
        "roc_auc_by_kind": by_kind,
        "pr_auc_by_kind": {
            kind: average_precision_score(judged["is_attack"], judged[score])
            for kind in by_kind
            for judged in [frame[negatives | (frame["kind"] == kind)]]
        },
    }


def _assert_same_numbers(got: dict, expected: dict) -> None:
    """Equal up to the last bits of a double (scikit-learn sums floats; the ranking sums integers)."""
    assert set(got) == set(expected) and set(got["roc_auc_by_kind"]) == set(expected["roc_auc_by_kind"])
    assert got["roc_auc"] == pytest.approx(expected["roc_auc"], rel=1e-12, abs=0)
    assert got["pr_auc"] == pytest.approx(expected["pr_auc"], rel=1e-12, abs=0)
    for kind, value in expected["roc_auc_by_kind"].items():
        assert got["roc_auc_by_kind"][kind] == pytest.approx(value, rel=1e-12, abs=0), kind
        assert got["pr_auc_by_kind"][kind] == pytest.approx(expected["pr_auc_by_kind"][kind], rel=1e-12, abs=0), kind


def test_ranking_in_partitions_equals_sklearn_wherever_the_partitions_are_cut():
    frame = _sessions_with_ties(5, 400)
    kinds = sorted(frame.loc[frame["is_attack"] == 1, "kind"].unique())
    for score in ("coarse", "fine"):
        rows = rank_rows(frame, score, kinds)
        assert len(rows) == frame[score].nunique() < len(frame)  # one row per distinct score
        expected = _sklearn_ranking(frame, score)
        for cut in range(len(rows) + 1):  # every boundary, empty partitions at either end included
            thirds = [rows[: cut // 2], rows[cut // 2 : cut], rows[cut:]]
            _assert_same_numbers(partitioned_ranking(thirds, kinds), expected)
    # a run of equal scores cut by a partition boundary (not one row per score) is refused, not mis-summed
    rows = rank_rows(frame, "coarse", kinds)
    top, negatives, *positives = rows[0]
    split = [(top, negatives, *positives)], [(top, 0, *[0] * len(kinds)), *rows[1:]]
    with pytest.raises(ValueError, match="partitions out of order"):
        partitioned_ranking(split, kinds)


def test_distributed_ranking_equals_sklearn_on_a_multi_partition_frame_with_ties(spark):
    from pyspark.sql import functions as F

    sessions = _sessions_with_ties(11, 3000)
    rows = [(int(a), str(k), float(c), float(f)) for a, k, c, f in sessions.itertuples(index=False)]
    # six slices of the sessions sorted by score: the input partitions cut runs of equal scores
    frame = spark.createDataFrame(
        spark.sparkContext.parallelize(rows, 6), "is_attack int, kind string, coarse double, fine double"
    ).cache()
    spread = frame.withColumn("part", F.spark_partition_id()).groupBy("coarse").agg(F.countDistinct("part").alias("n"))
    assert spread.where("n > 1").count() >= 3
    kinds = sorted(sessions.loc[sessions["is_attack"] == 1, "kind"].unique())
    for score in ("coarse", "fine"):
        sizes = aggregates.rank_partitions(frame, score, kinds, 4).glom().map(len).collect()
        assert len(sizes) == 4 and sum(sizes) == sessions[score].nunique()  # one rank row per distinct score
        assert sum(1 for size in sizes if size) >= 2, sizes  # the ranking does span partitions
        _assert_same_numbers(aggregates.ranking(frame, score, kinds, 4), _sklearn_ranking(sessions, score))


@pytest.fixture
def driver_intake(monkeypatch):
    """The records of each result this Python process reads from the JVM, one number per result.

    Every DataFrame or RDD collect, toPandas, take, tail... reads its result through
    ``pyspark.util._load_from_socket`` (imported by the modules patched here); Arrow batches count
    their rows. A local iterator (a whole frame streamed to the driver) fails the test.
    """
    import pyspark.util
    from pyspark.sql.pandas.serializers import ArrowCollectSerializer

    real = pyspark.util._load_from_socket
    intake: list[int] = []

    @contextlib.contextmanager
    def counting(sock_info, serializer):
        arrow = isinstance(serializer, ArrowCollectSerializer)
        with real(sock_info, serializer) as stream:
            intake.append(0)
            index = len(intake) - 1

            def records():
                for item in stream:
                    intake[index] += (item.num_rows if hasattr(item, "num_rows") else 0) if arrow else 1
                    yield item

            yield records()

    def refused(*args, **kwargs):
        raise AssertionError("a local iterator streams a whole frame to the driver")

    for module in ("pyspark.sql.classic.dataframe", "pyspark.sql.pandas.conversion", "pyspark.core.rdd"):
        monkeypatch.setattr(f"{module}._load_from_socket", counting)
    monkeypatch.setattr("pyspark.core.context._load_from_socket", counting)
    for module in ("pyspark.sql.classic.dataframe", "pyspark.core.rdd"):
        monkeypatch.setattr(f"{module}._local_iterator_from_socket", refused)
    return intake


def test_evaluate_brings_no_session_rows_to_the_driver_but_the_baseline_sample(spark, scored, driver_intake):
    # the counter sees what reaches the driver, whichever way it is collected
    spark.range(500).toPandas()
    spark.range(300).collect()
    spark.range(200).rdd.map(lambda row: row[0]).collect()
    spark.range(100).take(7)
    assert driver_intake == [500, 300, 200, 7]
    driver_intake.clear()

    report = evaluate(spark, scored, DAY, DAY, baseline_max_rows=40)
    assert report["sessions"]["evaluated"] == 3000 and report["baseline"]["training_rows"] == 40
    assert 40 in driver_intake  # the IsolationForest's sample, bounded by baseline_max_rows
    # all else is a few rows a day, a kind or a partition (4 shuffle partitions here), never a session each
    assert max(driver_intake) == 40, driver_intake
    assert sum(driver_intake) < 200, driver_intake


def test_queue_summary_on_counts_by_day_and_kind():
    counts = pd.DataFrame(
        {
            "dt": [str(DAY)] * 3 + [str(DAY2)] * 3,
            "kind": ["normal", "bot", "account_takeover", "normal", "bot", "account_takeover"],
            "sessions": [90, 6, 5, 95, 4, 0],
            "queued": [1, 1, 1, 0, 1, 0],
        }
    )
    by_kind, summary = queue_summary(counts, 0.02)
    assert summary == {"sessions": 200, "queued": 4, "precision": 0.75, "capacity_share": 0.02}
    rows = by_kind.set_index("kind")
    assert list(rows.index) == ["account_takeover", "bot", "normal"]
    assert rows.loc["bot"].to_dict() == {"sessions": 10, "queued": 2, "recall": 0.2, "share_of_queue": 0.5}
    assert rows.loc["account_takeover", "recall"] == 0.2 and rows.loc["normal", "share_of_queue"] == 0.25
    # no normal session queued, none at all: precision 1 and 0, not a division by zero
    assert queue_summary(counts[counts["kind"] != "normal"], 0.02)[1]["precision"] == 1.0
    assert queue_summary(counts.assign(queued=0), 0.02)[1]["precision"] == 0.0


# --- queues per session and per case, benign oddities ---


def _queue_outside(frame: pd.DataFrame, score: str, share: float, way: str) -> dict:
    """A score's queue computed here with pandas, as ``raksha.evaluation.queues`` describes it: per day,
    the top ceil(share x sessions with the score) sessions, or that many cases (one per user, ranked by
    their highest score, ties by the user) holding their sessions scored at least the last case's."""
    held = []
    for day, sessions in frame[frame[score].notna()].groupby("dt"):
        capacity = max(1, math.ceil(share * len(sessions)))
        if way == "per_session":
            top = sessions.sort_values([score, "session_id"], ascending=[False, True]).head(capacity)
            held.append(top.assign(case=top["session_id"], day=day))
            continue
        sessions = sessions.assign(case=sessions["user_id"].fillna("session:" + sessions["session_id"]), day=day)
        cases = sessions.groupby("case", as_index=False)[score].max()
        cases = cases.sort_values([score, "case"], ascending=[False, True]).head(capacity)
        cut = cases[score].iloc[-1]
        held.append(sessions[sessions["case"].isin(cases["case"]) & (sessions[score] >= cut)])
    queue = pd.concat(held)
    attack_case = queue.groupby(["day", "case"])["is_attack"].max()
    attacks = frame[(frame["is_attack"] == 1) & frame[score].notna()]
    return {
        "cases": len(attack_case),
        "attack_cases": int(attack_case.sum()),
        "sessions": len(queue),
        "attacks": int(queue["is_attack"].sum()),
        "recall_by_kind": {
            kind: int(((queue["is_attack"] == 1) & (queue["kind"] == kind)).sum()) / n
            for kind, n in attacks.groupby("kind").size().items()
        },
    }


def _assert_queue(got: dict, expected: dict) -> None:
    for key in ("cases", "attack_cases", "sessions", "attacks"):
        assert got[key] == expected[key], key
    assert got["precision"] == pytest.approx(expected["attack_cases"] / expected["cases"])
    assert got["session_precision"] == pytest.approx(expected["attacks"] / expected["sessions"])
    for kind, recall in expected["recall_by_kind"].items():
        assert got["recall_by_kind"][kind] == pytest.approx(recall), kind


def _two_small_days() -> pd.DataFrame:
    """Day 1, 100 sessions: user u1 holds two bot attacks (risk 0.99, 0.97) and a normal session (0.98),
    u2 an account takeover (0.96), u3 a normal session (0.95), 95 normal users below 0.5. Day 2, 50
    sessions of one user each: a bot and a social-engineering attack scored low by risk_score. Normal
    sessions: travel 10 (4 flagged), new_device 15 (none flagged), none 120 (12 flagged). ae_std_error is
    absent; user_baseline_score null on day 1."""
    rng = np.random.default_rng(3)
    day1 = pd.DataFrame(
        {
            "dt": str(DAY),
            "session_id": [f"a{i:03d}" for i in range(100)],
            "user_id": ["u1", "u1", "u1", "u2", "u3", *[f"v{i}" for i in range(95)]],
            "is_attack": [1, 0, 1, 1, *[0] * 96],
            "kind": ["bot", "normal", "bot", "account_takeover", *["normal"] * 96],
            "oddity": [None] * 5 + ["travel"] * 10 + ["new_device"] * 8 + [None] * 77,
            "risk_score": [0.99, 0.98, 0.97, 0.96, 0.95, *np.linspace(0.5, 0.01, 95)],
            "user_baseline_score": np.nan,
        }
    )
    # flagged: the attacks, 4 of the 10 travellers, 7 of the 79 normal sessions without an oddity
    day1["decision"] = "ALLOW"
    day1.loc[[0, 2, 3], "decision"] = "BLOCK"
    day1.loc[[5, 7, 9, 11], "decision"] = "REVIEW"
    day1.loc[[1, 4, 30, 40, 50, 60, 70], "decision"] = "REVIEW"
    day2 = pd.DataFrame(
        {
            "dt": str(DAY2),
            "session_id": [f"b{i:03d}" for i in range(50)],
            "user_id": [f"w{i}" for i in range(50)],
            "is_attack": [1, 1, *[0] * 48],
            "kind": ["bot", "social_engineering", *["normal"] * 48],
            "oddity": [None] * 43 + ["new_device"] * 7,
            "risk_score": [0.02, 0.01, *np.linspace(0.9, 0.1, 48)],
            "user_baseline_score": [0.9, 0.3, *rng.random(48).round(1)],  # ties
            "decision": ["ALLOW", "ALLOW", *["REVIEW"] * 5, *["ALLOW"] * 43],
        }
    )
    frame = pd.concat([day1, day2], ignore_index=True)
    frame["ae_error"] = rng.random(len(frame))
    frame["seq_risk_max"] = rng.random(len(frame)).round(1)  # many ties
    frame["isolation_forest"] = rng.random(len(frame)) + frame["is_attack"]
    frame["queued"] = None
    return frame


def _as_spark(spark, frame: pd.DataFrame):
    schema = (
        "dt string, session_id string, user_id string, is_attack int, kind string, oddity string, risk_score double, "
        "user_baseline_score double, decision string, ae_error double, seq_risk_max double, "
        "isolation_forest double, queued boolean"
    )
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False)
    return spark.createDataFrame(list(rows), schema)


def test_queues_and_oddities_on_two_small_days(spark):
    frame = _two_small_days()
    sessions = _as_spark(spark, frame).cache()
    counts = aggregates.kind_counts(sessions)
    report = aggregates.evaluated_metrics(sessions, counts, {str(DAY): 100, str(DAY2): 50}, 0.01)

    assert report["scores"]["ae_std_error"] == {
        "available": False,
        "sessions": 0,
        "why": "not in scored_sessions",
        "roc_auc": None,
        "pr_auc": None,
    }
    assert report["queues"]["scores"]["ae_std_error"] is None
    assert report["scores"]["user_baseline_score"]["sessions"] == 50  # day 2 only
    assert set(report["queues"]["scores"]["user_baseline_score"]) == {"0.01", "0.03"}
    assert report["queues"]["scores"]["user_baseline_score"]["0.03"]["cases_per_day"] == {str(DAY2): 2}

    # known answers for risk_score: u1's three sessions (two attacks) and u2's attack on top of day 1
    risk = report["queues"]["scores"]["risk_score"]
    assert risk["0.01"]["cases_per_day"] == {str(DAY): 1, str(DAY2): 1}
    assert risk["0.03"]["cases_per_day"] == {str(DAY): 3, str(DAY2): 2}
    # 1%: the bot session on day 1, a normal one on day 2 (u1's other sessions rank below the cut 0.99)
    assert risk["0.01"]["per_session"]["sessions"] == 2 and risk["0.01"]["per_session"]["attacks"] == 1
    assert (risk["0.01"]["per_case"]["cases"], risk["0.01"]["per_case"]["sessions"]) == (2, 2)
    # 3% per session: u1's three sessions on day 1 (two attacks), two normal ones on day 2
    session3 = risk["0.03"]["per_session"]
    assert (session3["sessions"], session3["attacks"], session3["precision"]) == (5, 2, 0.4)
    assert session3["recall_by_kind"] == {
        "account_takeover": 0.0,
        "bot": pytest.approx(2 / 3),
        "social_engineering": 0.0,
    }
    # 3% per case: u1 (3 sessions, two attacks: one attack case), u2 (an attack), u3 on day 1; two normal
    # users on day 2: 2 of 5 cases hold an attack, 3 of their 7 sessions are attacks
    case3 = risk["0.03"]["per_case"]
    assert (case3["cases"], case3["attack_cases"], case3["sessions"], case3["attacks"]) == (5, 2, 7, 3)
    assert case3["precision"] == 0.4 and case3["session_precision"] == pytest.approx(3 / 7)
    assert case3["recall_by_kind"] == {"account_takeover": 1.0, "bot": pytest.approx(2 / 3), "social_engineering": 0.0}
    assert case3["recall"] == 0.6

    # every available score, both shares, both ways: as pandas computes them from the rows
    for name in ("ae_error", "user_baseline_score", "isolation_forest", "seq_risk_max", "risk_score"):
        for share in (0.01, 0.03):
            for way in ("per_session", "per_case"):
                got = report["queues"]["scores"][name][f"{share:g}"][way]
                _assert_queue(got, _queue_outside(frame, name, share, way))
        have = frame[frame[name].notna()]
        assert report["scores"][name]["roc_auc"] == pytest.approx(roc_auc_score(have["is_attack"], have[name]))

    # travellers flagged at 4x the base rate; the 1% per-case queue of risk_score holds one normal session
    oddities = {row["oddity"]: row for row in report["benign_oddities"]["rows"]}
    assert list(oddities) == ["none", "new_device", "travel"]
    assert oddities["none"] == {
        "oddity": "none",
        "sessions": 120,
        "flagged": 12,
        "flagged_share": 0.1,
        "queued": 1,
        "queued_share": 1 / 120,
        "flagged_ratio": 1.0,
        "queued_ratio": 1.0,
        "above_limit": False,
    }
    assert oddities["travel"]["flagged_ratio"] == pytest.approx(4.0) and oddities["travel"]["above_limit"]
    assert oddities["new_device"]["flagged_ratio"] == 0.0 and oddities["new_device"]["queued_ratio"] == 0.0


def test_oddity_ratios_and_queue_numbers_from_counts():
    counts = pd.DataFrame(
        {
            "kind": ["normal", "normal", "normal", "bot"],
            "is_attack": [0, 0, 0, 1],
            "oddity": [None, "travel", "low_battery_night", None],
            "sessions": [1000, 50, 40, 10],
            "flagged": [20, 4, 0, 9],
            "blocked": [0, 0, 0, 5],
            "queued": [0, 0, 0, 0],
        }
    )
    held = pd.DataFrame(
        [["risk_score", "0.01", "per_case", 12, 9, 15, 10, 10, 5, 1, 0]],
        columns=["score", "share", "way", *queues.HELD, "kind=bot", "oddity=none", "oddity=travel", "oddity=x"],
    )
    report = queues.oddity_report(counts, held)
    rows = {row["oddity"]: row for row in report["rows"]}
    assert list(rows) == ["none", "low_battery_night", "travel"]
    assert rows["travel"]["flagged_share"] == 0.08 and rows["travel"]["flagged_ratio"] == pytest.approx(4.0)
    assert rows["travel"]["above_limit"] and not rows["low_battery_night"]["above_limit"]
    assert rows["none"]["queued_share"] == 0.005 and rows["travel"]["queued_ratio"] == pytest.approx(4.0)
    assert rows["low_battery_night"]["queued"] == 0 and rows["low_battery_night"]["queued_ratio"] == 0.0
    no_base = queues.oddity_report(counts, held.assign(**{"oddity=none": 0}))["rows"]
    assert [row["queued_ratio"] for row in no_base] == [None, None, None]  # no base rate: no ratio, not a division by 0
    assert queues.oddity_report(counts.assign(oddity=None), held) is None  # verdicts name no oddity

    numbers = queues.queue_numbers(held.iloc[0].to_dict(), {"bot": 10, "account_takeover": 4})
    assert numbers == {
        "cases": 12,
        "attack_cases": 9,
        "precision": 0.75,
        "sessions": 15,
        "attacks": 10,
        "session_precision": 10 / 15,
        "recall": 10 / 14,
        "recall_by_kind": {"bot": 1.0, "account_takeover": 0.0},
    }
