"""The whole loop through the commands: score, label, export, retrain, calibrate, promote, next night's
score, evaluate. Each step is the command as the ``raksha`` script runs it (``cli.main``: its arguments,
its configuration from ``--set``, its summary on stdout), on the test session (``in_process``): that a
command runs as its own process with its own JVM is test_cli's, test_faults' and test_servers'. What
the commands leave is read as outside tools read it (delta-rs, the model folders)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import conftest
import factories
import pandas as pd

from raksha import cli, contract, synthetic
from raksha.models import artifacts

REPO = Path(__file__).resolve().parent.parent
DAY1 = dt.date(2026, 6, 1)
DAY2 = DAY1 + dt.timedelta(days=1)
NEXT = DAY2 + dt.timedelta(days=1)
CAPACITY = 40


def _day(cfg, table: str, day: dt.date) -> pd.DataFrame:
    return factories.read_table_day(cfg, table, day)


def test_score_label_export_retrain_calibrate_promote_score_evaluate(tmp_path, in_process, capsys, monkeypatch):
    root = tmp_path
    shutil.copytree(REPO / "models", root / "models")
    cfg = conftest.test_config(root, "review.audit_rate=0.05")
    synthetic.generate(DAY1, 3, 600, 0.05, 5, cfg.path("sessions"), cfg.path("actions"), cfg.path("labels"))
    sets = [a for k in cfg.get("paths") for a in ("--set", f"paths.{k}={cfg.path(k)}")]
    sets += ["--set", f"catalog.database={cfg.get('catalog.database')}", "--set", "review.audit_rate=0.05"]
    sets += ["--set", "training.autoencoder.epochs=3", "--set", "training.sequence.epochs=3"]
    sets += ["--set", "report.enabled=false"]  # the nightly report is test_nightly_report's (3-5 s a night here)
    window = ["--start-date", str(DAY1), "--end-date", str(DAY2)]
    models = Path(cfg.path("models"))
    shipped = {m: artifacts.current_version(models, m) for m in (contract.AE_MODEL, contract.SEQ_MODEL)}

    monkeypatch.setenv("RAKSHA_PSEUDONYM_KEY", "cycle-test-key")
    monkeypatch.chdir(root)

    def raksha(*args: str) -> str:
        capsys.readouterr()
        code = cli.main([*args, *sets])
        out, err = capsys.readouterr()
        assert code == 0, f"raksha {args[0]}: {err[-3000:]}"
        return out

    # 1. two nights scored with the shipped models
    for day in (DAY1, DAY2):
        raksha("score", "--date", str(day))

    # 2. analysts review both days' queues (the audit sample included) and say what each session was
    truth = pd.concat([pd.read_parquet(Path(cfg.path("labels")) / f"dt={d}") for d in (DAY1, DAY2, NEXT)])
    truth = truth.set_index("session_id")["is_attack"]
    reviewed = pd.concat([_day(cfg, "review_queue", d).assign(dt=str(d)) for d in (DAY1, DAY2)])
    verdicts = pd.DataFrame(
        {
            "session_id": reviewed["session_id"],
            "dt": reviewed["dt"],
            "verdict": ["fraud" if truth[s] else "legit" for s in reviewed["session_id"]],
            "analyst": "meera",
            "reviewed_at": f"{NEXT}T08:30:00Z",
        }
    )
    assert (verdicts["verdict"] == "fraud").sum() > 10 and (verdicts["verdict"] == "legit").sum() > 10
    path = root / "verdicts.csv"
    verdicts.to_csv(path, index=False)
    assert f"{len(verdicts)} rows read, {len(verdicts)} valid, 0 rejected" in raksha("label", "--file", str(path))

    # 3. the retraining exports of the window
    raksha("export-retraining", *window)
    manifests = Path(cfg.path("warehouse")) / "retrain_sequences" / "_manifests"
    manifest = json.loads((manifests / f"{DAY1}_{DAY2}.json").read_text())
    assert manifest["rows"] == len(verdicts)
    assert manifest["model_versions"]["seq_model_version"] == [shipped[contract.SEQ_MODEL]]

    # 4. both models retrained from the exports (and promoted)
    raksha("train-autoencoder", "--from-export", *window)
    raksha("train-sequence", "--from-export", *window)
    retrained = {m: artifacts.load_version(models, m) for m in shipped}
    for name, version in retrained.items():
        assert version.version != shipped[name]
        assert version.manifest["training"]["source"] == "export"

    # 5. the window rescored with them, then thresholds set for the team's capacity against the verdicts
    for day in (DAY1, DAY2):
        raksha("score", "--date", str(day))
    out = raksha("calibrate", *window, "--capacity", str(CAPACITY), "--truth", "verdicts")
    assert "not promoted" in out
    calibrated = [
        v
        for v in (models / contract.AE_MODEL).iterdir()
        if v.name not in (shipped[contract.AE_MODEL], retrained[contract.AE_MODEL].version, "CURRENT")
    ]
    assert len(calibrated) == 1
    version = artifacts.load_version(models, contract.AE_MODEL, calibrated[0].name)
    assert version.manifest["alert_budget"]["source_version"] == retrained[contract.AE_MODEL].version
    assert version.manifest["alert_budget"]["truth"] == "verdicts"
    assert [h["version"] for h in version.manifest["threshold_history"]] == [retrained[contract.AE_MODEL].version]
    assert version.files == retrained[contract.AE_MODEL].files

    # 6. promoted, and the next night is scored with it
    raksha("promote", "--model", contract.AE_MODEL, "--version", version.version)
    raksha("score", "--date", str(NEXT))
    scored = _day(cfg, "scored_sessions", NEXT)
    assert set(scored["ae_model_version"]) == {version.version}
    assert set(scored["seq_model_version"]) == {retrained[contract.SEQ_MODEL].version}
    assert set(scored["ae_threshold"]) == {version.threshold}
    run_log = _day(cfg, "run_log", NEXT).iloc[-1]
    assert run_log["ae_model_version"] == version.version and run_log["ae_threshold"] == version.threshold
    checksums = dict(run_log["model_checksums"])
    assert checksums[f"{contract.AE_MODEL}/model.keras"] == version.checksums["model.keras"]
    counts = dict(run_log["counts"])
    assert counts["sessions_read"] == counts["sessions_scored"] + counts["sessions_quarantined"] == 600

    # 7. the three nights evaluated against the generated labels, from the catalog
    report_path = root / "evaluation.json"
    out = raksha("evaluate", "--start-date", str(DAY1), "--end-date", str(NEXT), "--out", str(report_path))
    assert f"written: {report_path}" in out
    report = json.loads(report_path.read_text())
    assert report["sessions"]["per_day"] == {str(d): len(_day(cfg, "scored_sessions", d)) for d in (DAY1, DAY2, NEXT)}
    assert report["model_versions"]["ae_model_version"] == sorted(
        {retrained[contract.AE_MODEL].version, version.version}
    )
    assert report["model_versions"]["seq_model_version"] == [retrained[contract.SEQ_MODEL].version]
