"""``raksha export-retraining``: retraining exports from scored, reviewed days, and training from them."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import os
import shutil
from pathlib import Path

import conftest
import factories
import numpy as np
import pandas as pd
import pytest
from delta.tables import DeltaTable

from raksha import cli, contract, synthetic
from raksha.decide import privacy
from raksha.features.sequences import pad_tokens
from raksha.feedback import export_rules, exports, verdicts
from raksha.ingest.inputs import InputError
from raksha.models import artifacts
from raksha.models.architectures import model_from_bytes
from raksha.pipeline.daily import run
from raksha.training.fit import SequenceParams, fit_sequence_model

REPO = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 4, 6)
DAY2 = DAY + dt.timedelta(days=1)
DAYS = (DAY, DAY2)
KEY = "export-test-key"
AUDIT_RATE = 0.05
CUT = 50.0


def _day_frames(cfg, table: str) -> pd.DataFrame:
    """A table's published days read directly through delta-rs (not through Spark), with dt."""
    frames = []
    for day in DAYS:
        frame = factories.read_table_day(cfg, table, day)
        frames.append(frame.assign(dt=str(day)))
    return pd.concat(frames, ignore_index=True)


def _commits(spark, cfg, table: str) -> list[tuple[int, str | None]]:
    """(version, run_id in its metadata) for every commit of the table, oldest first (none: no table)."""
    name = f"{cfg.get('catalog.database')}.{table}"
    if not spark.catalog.tableExists(name):
        return []
    history = DeltaTable.forName(spark, name).history()
    out = []
    for row in history.select("version", "userMetadata").orderBy("version").collect():
        meta = json.loads(row["userMetadata"]) if row["userMetadata"] else {}
        out.append((int(row["version"]), meta.get("run_id")))
    return out


def _inputs(cfg, dataset: str) -> pd.DataFrame:
    return pd.concat(
        [pd.read_parquet(Path(cfg.path(dataset)) / f"dt={day}").assign(dt=str(day)) for day in DAYS],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def reviewed(spark, tmp_path_factory):
    """Two generated days (800 sessions each) scored with the shipped models, audited at 5%, with verdicts.

    Verdicts: every attack fraud; three unflagged low-score normal sessions fraud anyway (an analyst
    may know better than the models); three more unsure; some flagged and some allowed normal
    sessions legit; the audit sample labelled by the truth except three left unlabelled and one unsure.
    """
    root = tmp_path_factory.mktemp("exports")
    shutil.copytree(REPO / "models", root / "models")  # training tests write versions: never into the repo
    cfg = conftest.test_config(root, f"review.audit_rate={AUDIT_RATE}", f"exports.behavior_max_risk_score={CUT}")
    synthetic.generate(DAY, 2, 800, 0.05, 11, cfg.path("sessions"), cfg.path("actions"), cfg.path("labels"))
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "10000")
    try:
        for day in DAYS:
            run(spark, cfg, day)
    finally:
        spark.conf.set(key, before)

    scored = _day_frames(cfg, "scored_sessions").merge(_inputs(cfg, "labels")[["session_id", "is_attack"]])
    queue = _day_frames(cfg, "review_queue")
    audited = set(queue.loc[queue["audit"], "session_id"])
    assert len(audited) > 40
    low = scored[
        (scored["decision"] == "ALLOW")
        & (scored["ae_is_anomaly"] == 0)
        & (scored["risk_score"] < CUT)
        & (scored["is_attack"] == 0)
        & ~scored["session_id"].isin(audited)
    ]
    picks = {
        "fraud": list(scored.loc[scored["is_attack"] == 1, "session_id"]) + list(low["session_id"][:3]),
        "unsure": list(low["session_id"][3:6]),
        "legit": list(scored.loc[(scored["is_attack"] == 0) & (scored["decision"] != "ALLOW"), "session_id"][:20])
        + list(low["session_id"][6:26]),
    }
    audit_sorted = sorted(audited)
    unlabelled, audit_unsure = set(audit_sorted[:3]), audit_sorted[3]
    for sid in audit_sorted[4:]:
        attack = bool(scored.loc[scored["session_id"] == sid, "is_attack"].iloc[0])
        picks["fraud" if attack else "legit"].append(sid)
    picks["unsure"].append(audit_unsure)
    picks["legit"] = [s for s in dict.fromkeys(picks["legit"]) if s not in picks["fraud"]]
    day_of = dict(zip(scored["session_id"], scored["dt"], strict=True))
    rows = [
        (sid, day_of[sid], verdict, "asha", f"{DAY2 + dt.timedelta(days=1)}T09:00:00Z")
        for verdict, ids in picks.items()
        for sid in ids
    ]
    path = root / "verdicts.csv"
    pd.DataFrame(rows, columns=["session_id", "dt", "verdict", "analyst", "reviewed_at"]).to_csv(path, index=False)
    landed = verdicts.label(spark, cfg, str(path))
    assert landed.rejected == [] and landed.new == len(rows)
    return {
        "cfg": cfg,
        "scored": scored,
        "audited": audited,
        "unlabelled": unlabelled,
        "verdicts": {sid: v for v, ids in picks.items() for sid in ids},
        "fraud_unflagged": list(low["session_id"][:3]),
        "unsure": list(low["session_id"][3:6]),
    }


@pytest.fixture(scope="module")
def exported(spark, reviewed):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAKSHA_PSEUDONYM_KEY", KEY)
        result = exports.export_retraining(spark, reviewed["cfg"], DAY, DAY2)
    return result


def test_staged_counts_reconcile_or_the_export_refuses():
    """The summaries, the expected counts and the reconciliation, from counts alone (no Spark)."""
    behavior_table, sequences_table = exports.BEHAVIOR_TABLE, exports.SEQUENCES_TABLE
    groups = pd.DataFrame(
        {
            "dt": [str(DAY), str(DAY), str(DAY2)],
            "label": [1, 0, 0],
            "source": ["verdict", "audit", "audit"],
            "ae_model_version": ["v2", "v2", "v1"],
            "seq_model_version": ["s1"] * 3,
            "rows": [2, 3, 1],
            "weight": [2.0, 60.0, 20.0],
        }
    )
    later = DAY2 + dt.timedelta(days=1)
    sequences = export_rules.summary(groups, 6, [DAY, DAY2, later], ["label", "source"])
    assert sequences == {
        "rows": 6,
        "sessions": 6,
        "per_day": {str(DAY): 5, str(DAY2): 1, str(later): 0},
        "by_label": {"0": 4, "1": 2},
        "by_source": {"audit": 4, "verdict": 2},
        "weight_by_source": {"audit": 80.0, "verdict": 2.0},
    }
    assert export_rules.model_versions(groups) == {"ae_model_version": ["v1", "v2"], "seq_model_version": ["s1"]}

    expected = export_rules.expected_counts({"fraud": 2, "legit": 4, "unsure": 1}, {"legit": 4, "none": 2}, 7)
    assert expected == {
        behavior_table: {"legit_verdict": 4, "unflagged_low_score": 7},
        sequences_table: {"audit": 4, "verdict": 2},
    }
    behavior = {"rows": 11, "sessions": 11, "by_selection_reason": {"legit_verdict": 4, "unflagged_low_score": 7}}
    export_rules.reconcile({behavior_table: behavior, sequences_table: sequences}, expected, DAY, DAY2)
    with pytest.raises(
        export_rules.ExportReconciliationError, match="retrain_sequences .*: a session was exported twice"
    ):
        export_rules.reconcile(
            {behavior_table: behavior, sequences_table: {**sequences, "sessions": 5}}, expected, DAY, DAY2
        )
    fewer = {**behavior, "by_selection_reason": {"legit_verdict": 4, "unflagged_low_score": 6}}
    with pytest.raises(
        export_rules.ExportReconciliationError, match="retrain_behavior 2026-04-06 .. 2026-04-07: staged"
    ):
        export_rules.reconcile({behavior_table: fewer, sequences_table: sequences}, expected, DAY, DAY2)
    export_rules.check_audit_weight(expected, AUDIT_RATE)
    with pytest.raises(export_rules.ExportError, match="review.audit_rate is 0"):
        export_rules.check_audit_weight(expected, 0.0)


def test_retrain_behavior_holds_legit_and_unflagged_low_score_sessions_never_fraud_or_unsure(reviewed, exported):
    cfg, scored, given = reviewed["cfg"], reviewed["scored"], reviewed["verdicts"]
    behavior = _day_frames(cfg, exports.BEHAVIOR_TABLE)
    assert list(behavior.columns[:2]) == ["session_id", "user_id"]
    assert list(behavior.columns[2:32]) == list(contract.FEATURES)
    assert list(behavior.columns[32:]) == ["selection_reason", "run_id", "dt"]

    verdict = scored["session_id"].map(given)
    unflagged = (
        verdict.isna() & (scored["decision"] == "ALLOW") & (scored["ae_is_anomaly"] == 0) & (scored["risk_score"] < CUT)
    )
    expected = pd.Series(
        np.where(verdict == "legit", "legit_verdict", np.where(unflagged, "unflagged_low_score", None)),
        index=scored["session_id"],
    ).dropna()
    got = behavior.set_index("session_id")["selection_reason"]
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    assert (got == "legit_verdict").sum() == sum(v == "legit" for v in given.values()) > 40
    assert (got == "unflagged_low_score").sum() > 500
    # an analyst's fraud verdict keeps a session out even though the models let it through quietly
    quiet = scored[(scored["decision"] == "ALLOW") & (scored["ae_is_anomaly"] == 0) & (scored["risk_score"] < CUT)]
    for sid in reviewed["fraud_unflagged"] + reviewed["unsure"]:
        assert sid in set(quiet["session_id"]) and sid not in got.index
    assert not set(got.index) & {s for s, v in given.items() if v != "legit"}
    # flagged sessions with a legit verdict are in, with that reason
    flagged_legit = scored.loc[(verdict == "legit") & (scored["decision"] != "ALLOW"), "session_id"]
    assert len(flagged_legit) > 0 and (got[flagged_legit] == "legit_verdict").all()

    # features as the input held them; location rounded, network ids dropped; user ids pseudonymised
    raw = _inputs(cfg, "sessions").set_index("session_id").loc[behavior["session_id"]]
    for name in contract.FEATURES:
        if name in privacy.LOCATION_FEATURES:
            np.testing.assert_allclose(behavior[name], raw[name].round(1).to_numpy(), atol=1e-12)
        elif name in privacy.NETWORK_FEATURES:
            assert behavior[name].isna().all()
        else:
            np.testing.assert_array_equal(behavior[name].to_numpy(), raw[name].to_numpy(), err_msg=name)
    expected_ids = [hmac.new(KEY.encode(), u.encode(), hashlib.sha256).hexdigest() for u in raw["user_id"]]
    assert behavior["user_id"].tolist() == expected_ids
    assert not set(behavior["user_id"]) & set(raw["user_id"])
    assert set(behavior["run_id"]) == {exported.run_id}


def test_retrain_sequences_holds_labelled_sessions_and_the_weighted_audit_sample(reviewed, exported):
    cfg, given, audited = reviewed["cfg"], reviewed["verdicts"], reviewed["audited"]
    sequences = _day_frames(cfg, exports.SEQUENCES_TABLE)
    assert list(sequences.columns) == ["session_id", "action_tokens", "label", "weight", "source", "run_id", "dt"]
    labelled = {s: v for s, v in given.items() if v in ("fraud", "legit")}
    assert sorted(sequences["session_id"]) == sorted(labelled)
    assert sequences["session_id"].is_unique
    by_id = sequences.set_index("session_id")
    for sid, v in labelled.items():
        row = by_id.loc[sid]
        assert row["label"] == (1 if v == "fraud" else 0)
        if sid in audited:
            assert (row["source"], row["weight"]) == ("audit", pytest.approx(1 / AUDIT_RATE))
        else:
            assert (row["source"], row["weight"]) == ("verdict", 1.0)
    assert (sequences["source"] == "audit").sum() == len(audited) - 4  # 3 unlabelled, 1 unsure
    assert not set(sequences["session_id"]) & (reviewed["unlabelled"] | set(reviewed["unsure"]))

    # the action tokens are the day's actions, ordered by event_ts then seq_no, encoded
    actions = _inputs(cfg, "actions").sort_values(["session_id", "event_ts", "seq_no"])
    encoded = actions.groupby("session_id")["action"].agg(
        lambda a: [contract.ACTIONS.get(x, contract.UNKNOWN_ACTION) for x in a]
    )
    for sid, tokens in zip(sequences["session_id"], sequences["action_tokens"], strict=True):
        assert list(tokens) == encoded.get(sid, []), sid


def test_manifests_count_what_the_tables_hold(spark, reviewed, exported):
    cfg = reviewed["cfg"]
    behavior = _day_frames(cfg, exports.BEHAVIOR_TABLE)
    sequences = _day_frames(cfg, exports.SEQUENCES_TABLE)
    shipped = {
        "ae_model_version": [artifacts.current_version(REPO / "models", contract.AE_MODEL)],
        "seq_model_version": [artifacts.current_version(REPO / "models", contract.SEQ_MODEL)],
    }
    for table, frame in ((exports.BEHAVIOR_TABLE, behavior), (exports.SEQUENCES_TABLE, sequences)):
        path = Path(exports.manifest_path(cfg, table, DAY, DAY2))
        assert path.parent == Path(cfg.path("warehouse")) / table / "_manifests"  # outside every dt= folder
        assert Path(exported.manifest_paths[table]) == path
        manifest = json.loads(path.read_text())
        assert manifest == exported.manifests[table]
        assert (manifest["start_date"], manifest["end_date"], manifest["run_id"]) == (
            str(DAY),
            str(DAY2),
            exported.run_id,
        )
        assert manifest["rows"] == len(frame) == spark.table(f"{cfg.get('catalog.database')}.{table}").count()
        assert manifest["per_day"] == frame.groupby("dt").size().to_dict()
        assert manifest["model_versions"] == shipped
        assert manifest["created_at"]
    b = exported.manifests[exports.BEHAVIOR_TABLE]
    assert b["by_selection_reason"] == behavior["selection_reason"].value_counts().sort_index().to_dict()
    assert b["selection"]["exports.behavior_max_risk_score"] == CUT
    assert b["left_out"] == {
        "fraud_verdicts": sum(v == "fraud" for v in reviewed["verdicts"].values()),
        "unsure_verdicts": sum(v == "unsure" for v in reviewed["verdicts"].values()),
    }
    s = exported.manifests[exports.SEQUENCES_TABLE]
    assert s["by_source"] == sequences["source"].value_counts().sort_index().to_dict()
    assert s["by_label"] == {str(k): v for k, v in sequences["label"].value_counts().sort_index().items()}
    assert s["weight_by_source"]["audit"] == pytest.approx(
        sequences.loc[sequences["source"] == "audit", "weight"].sum()
    )
    assert s["selection"]["review.audit_rate"] == AUDIT_RATE and s["selection"]["audit_weight"] == pytest.approx(20)
    assert s["left_out"]["audit_unlabelled"] == 3 and s["left_out"]["audit_unsure"] == 1
    assert s["audit_sessions"] == len(reviewed["audited"])


def _stable(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in ("run_id", "created_at")}


def test_a_rerun_publishes_the_same_rows(spark, reviewed, exported, monkeypatch):
    cfg = reviewed["cfg"]
    before = {t: _day_frames(cfg, t) for t in exports.EXPORT_TABLES}
    history = {t: _commits(spark, cfg, t) for t in exports.EXPORT_TABLES}
    monkeypatch.setenv("RAKSHA_PSEUDONYM_KEY", KEY)
    again = exports.export_retraining(spark, cfg, DAY, DAY2)
    assert again.run_id != exported.run_id
    for table in exports.EXPORT_TABLES:
        after = _day_frames(cfg, table)
        assert set(after["run_id"]) == {again.run_id}
        key = ["dt", "session_id"]
        old = before[table].drop(columns="run_id").sort_values(key).reset_index(drop=True)
        new = after.drop(columns="run_id").sort_values(key).reset_index(drop=True)
        if "action_tokens" in old:
            old["action_tokens"] = old["action_tokens"].map(list)
            new["action_tokens"] = new["action_tokens"].map(list)
        pd.testing.assert_frame_equal(new, old)
        assert _stable(again.manifests[table]) == _stable(exported.manifests[table])
        # the window replaced by exactly one new version of the table, tagged with the rerun
        after = _commits(spark, cfg, table)
        assert after[:-1] == history[table] and after[-1] == (history[table][-1][0] + 1, again.run_id)


def test_a_day_not_scored_is_an_error_naming_it_and_nothing_is_published(spark, reviewed, monkeypatch):
    cfg = reviewed["cfg"]
    monkeypatch.setenv("RAKSHA_PSEUDONYM_KEY", KEY)
    later = DAY2 + dt.timedelta(days=1)
    history = {t: _commits(spark, cfg, t) for t in exports.EXPORT_TABLES}
    with pytest.raises(InputError, match=rf"^scored_sessions {later}: not scored \(run `raksha score --date {later}`"):
        exports.export_retraining(spark, cfg, DAY2, later)
    assert not Path(exports.manifest_path(cfg, exports.BEHAVIOR_TABLE, DAY2, later)).exists()
    assert {t: _commits(spark, cfg, t) for t in exports.EXPORT_TABLES} == history
    with pytest.raises(ValueError, match="end date 2026-04-06 is before start date 2026-04-07"):
        exports.export_retraining(spark, cfg, DAY2, DAY)


def test_without_a_pseudonym_key_the_export_refuses(spark, reviewed, monkeypatch):
    monkeypatch.delenv("RAKSHA_PSEUDONYM_KEY", raising=False)
    with pytest.raises(privacy.PrivacyError, match=r"environment variable RAKSHA_PSEUDONYM_KEY .* holds no key"):
        exports.export_retraining(spark, reviewed["cfg"], DAY, DAY2)


def _cli_sets(cfg) -> list[str]:
    return factories.cli_sets(cfg, f"review.audit_rate={AUDIT_RATE}", f"exports.behavior_max_risk_score={CUT}")


def _load_job(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_job", REPO / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_command_and_job_exit_codes(spark, reviewed, exported, in_process, monkeypatch, capsys):
    cfg = reviewed["cfg"]
    monkeypatch.setenv("RAKSHA_PSEUDONYM_KEY", KEY)
    window = ["--start-date", str(DAY), "--end-date", str(DAY2)]
    assert cli.main(["export-retraining", *window, *_cli_sets(cfg)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(Path(exports.manifest_path(cfg, exports.BEHAVIOR_TABLE, DAY, DAY2)).read_text())["rows"]
    assert f"retrain_behavior: {rows} sessions" in out and "_manifests" in out

    later = str(DAY2 + dt.timedelta(days=1))
    assert cli.main(["export-retraining", "--start-date", str(DAY), "--end-date", later, *_cli_sets(cfg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"raksha export-retraining: error: scored_sessions {later}: not scored "
        f"(run `raksha score --date {later}` before exporting)"
    )

    job = _load_job("export_retraining")
    assert job.main([*window, *_cli_sets(cfg)]) == 0
    monkeypatch.delenv("RAKSHA_PSEUDONYM_KEY")
    assert job.main([*window, *_cli_sets(cfg)]) == 1
    assert "export_retraining: error: exports: environment variable RAKSHA_PSEUDONYM_KEY" in capsys.readouterr().err


def test_sample_weights_change_what_the_sequence_model_learns():
    rng = np.random.default_rng(3)
    tokens = [list(rng.integers(1, 9, rng.integers(2, 8))) for _ in range(120)]
    labels = np.array([int(5 in t) for t in tokens])
    params = SequenceParams(epochs=1, batch_size=32)
    plain = fit_sequence_model(tokens, labels, params)
    weights = np.where(labels == 1, 10.0, 1.0)
    weighted = fit_sequence_model(tokens, labels, params, sample_weight=weights)
    # same data, same seed: only the weights differ, and what is learned follows them (the .keras
    # bytes always differ, Keras writes a save date into them, so compare what the models predict)
    padded = pad_tokens(tokens)
    plain_risk, weighted_risk = (
        model_from_bytes(m.files["model.keras"], contract.SEQ_MODEL).predict(padded, verbose=0).ravel()
        for m in (plain, weighted)
    )
    assert weighted_risk[labels == 1].mean() > plain_risk[labels == 1].mean() + 0.01  # positives weigh 10x
    assert np.abs(weighted_risk - plain_risk).max() > 0.01
    assert weighted.manifest_fields["metrics"]["sample_weighted"] is True
    assert "sample_weighted" not in plain.manifest_fields["metrics"]
    assert weighted.manifest_fields["metrics"]["train_weight_sum"] > plain.manifest_fields["metrics"]["n_train"]
    with pytest.raises(ValueError, match="one sample weight per sequence"):
        fit_sequence_model(tokens, labels, params, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        fit_sequence_model(tokens, labels, params, sample_weight=-np.ones(len(labels)))


def test_training_from_the_export(spark, reviewed, exported, in_process, capsys):
    cfg = reviewed["cfg"]
    models = Path(cfg.path("models"))
    window = ["--start-date", str(DAY), "--end-date", str(DAY2)]
    sequences = _day_frames(cfg, exports.SEQUENCES_TABLE)
    behavior = _day_frames(cfg, exports.BEHAVIOR_TABLE)

    shipped_seq = artifacts.current_version(models, contract.SEQ_MODEL)
    code = cli.main(
        ["train-sequence", "--from-export", "--no-promote", *window, "--set", "training.sequence.epochs=1"]
        + _cli_sets(cfg)
    )
    assert code == 0, capsys.readouterr().err
    assert artifacts.current_version(models, contract.SEQ_MODEL) == shipped_seq  # --no-promote
    new = [v for v in os.listdir(models / contract.SEQ_MODEL) if v.startswith("v") and v != shipped_seq]
    assert len(new) == 1
    manifest = artifacts.load_version(models, contract.SEQ_MODEL, new[0]).manifest
    training = manifest["training"]
    assert training["source"] == "export"
    assert training["export_table"] == f"{cfg.get('catalog.database')}.retrain_sequences"
    assert training["export_run_ids"] == sorted(set(sequences["run_id"]))
    assert training["rows"] == len(sequences) and training["positives"] == int(sequences["label"].sum())
    assert training["rows_by_source"] == sequences["source"].value_counts().sort_index().to_dict()
    assert training["sample_weight"]["used"] is True
    assert training["sample_weight"]["sum"] == pytest.approx(sequences["weight"].sum())
    assert training["sample_weight"]["max"] == pytest.approx(1 / AUDIT_RATE)
    assert manifest["metrics"]["sample_weighted"] is True and manifest["metrics"]["epochs_run"] == 1
    assert (training["start_date"], training["end_date"]) == (str(DAY), str(DAY2))

    job = _load_job("train_autoencoder")
    assert job.main([*window, "--from-export", "--set", "training.autoencoder.epochs=1", *_cli_sets(cfg)]) == 0
    ae = artifacts.load_version(models, contract.AE_MODEL)  # the job promotes
    assert ae.version != artifacts.current_version(REPO / "models", contract.AE_MODEL)
    training = ae.manifest["training"]
    assert training["source"] == "export" and training["rows"] == len(behavior)
    assert training["rows_by_selection_reason"] == behavior["selection_reason"].value_counts().sort_index().to_dict()
    # the export shows rounded locations and no wifi ids; the model learns them exact, from the input
    assert training["features_from_input"] == ["wifi_id_hash", "gps_latitude", "gps_longitude"]
    raw = _inputs(cfg, "sessions").set_index("session_id").loc[behavior["session_id"]]
    scaler = json.loads(ae.files["scaler.json"])
    for name in training["features_from_input"]:
        i = scaler["features"].index(name)
        exact = raw[name].fillna(0.0)  # missing sensors read as 0, as in training from the input
        assert scaler["mean"][i] == pytest.approx(exact.mean(), rel=1e-9), name
        assert scaler["scale"][i] == pytest.approx(exact.std(ddof=0), rel=1e-9), name

    # a window the export does not cover is an error naming the day
    later = str(DAY2 + dt.timedelta(days=1))
    code = cli.main(["train-sequence", "--from-export", "--start-date", str(DAY), "--end-date", later] + _cli_sets(cfg))
    assert code == 1
    assert f"retrain_sequences {later}: not exported" in capsys.readouterr().err
