"""What each ``raksha`` command does: a ``cmd_*`` function per command (``COMMANDS``) that calls one
function of a package and prints its summary. Imports are inside the functions, so a command loads
only what it needs (``raksha config show`` starts no JVM and imports no TensorFlow)."""

from __future__ import annotations

import argparse

from raksha.config import Config


def cmd_generate(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.synthetic import generate

    summary = generate(
        start_date=args.start_date,
        days=args.days,
        sessions_per_day=args.sessions_per_day,
        attack_rate=cfg.get("generate.attack_rate") if args.attack_rate is None else args.attack_rate,
        seed=cfg.get("generate.seed") if args.seed is None else args.seed,
        sessions_root=cfg.path("sessions"),
        actions_root=cfg.path("actions"),
        labels_root=cfg.path("labels"),
        users_per_1000_sessions=int(cfg.get("generate.users_per_1000_sessions")),
    )
    print(f"generated {summary}")
    print(f"  sessions: {cfg.path('sessions')}\n  actions:  {cfg.path('actions')}\n  labels:   {cfg.path('labels')}")
    return 0


def with_spark(cfg: Config, app: str, body):
    from raksha.platform.session import build_session

    spark = build_session(cfg, app)
    try:
        return body(spark)
    finally:
        spark.stop()


def cmd_train(cfg: Config, args: argparse.Namespace) -> int:
    """``train-autoencoder`` / ``train-sequence``: a new version from a date window (promoted unless told)."""
    from raksha.training.commands import train_autoencoder, train_sequence

    train = train_autoencoder if args.command == "train-autoencoder" else train_sequence
    version = with_spark(
        cfg,
        f"raksha-{args.command}",
        lambda spark: train(
            spark, cfg, args.start_date, args.end_date, promote=not args.no_promote, from_export=args.from_export
        ),
    )
    if args.command == "train-autoencoder":
        detail = f"threshold {version.threshold:.6f}"
    else:
        detail = f"held-out ROC-AUC {version.manifest.get('metrics', {}).get('roc_auc')}"
    print(f"wrote {version.name}/{version.version} ({detail}){'' if args.no_promote else ', promoted'}")
    return 0


def cmd_import_legacy(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.models.legacy import import_legacy

    ae, seq = import_legacy(args.from_dir, cfg.path("models"), promote=True)
    print(f"imported and promoted {ae.name}/{ae.version} (threshold {ae.threshold:.6f}) and {seq.name}/{seq.version}")
    return 0


def cmd_score(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.pipeline.daily import run
    from raksha.pipeline.summary import print_run_summary

    def body(spark):
        result = run(spark, cfg, args.date)
        print_run_summary(spark, cfg, result)
        return result

    with_spark(cfg, f"raksha-score-{args.date}", body)
    return 0


def cmd_baseline(cfg: Config, args: argparse.Namespace) -> int:
    """``raksha baseline build --start-date D1 --end-date D2``."""
    from raksha.baselines.nightly import build

    built = with_spark(cfg, "raksha-baseline-build", lambda spark: build(spark, cfg, args.start_date, args.end_date))
    days = built["built"]
    print(f"user baselines {built['run_id']}: {len(days)} snapshots, {days[0]} .. {days[-1]}")
    print(f"  users in the snapshot of {days[-1]}: {built['users']}")
    print(f"  table: {cfg.get('catalog.database')}.user_baselines ({cfg.path('warehouse')}/user_baselines)")
    return 0


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    """``raksha report --date D``: the nightly report of a published day, rebuilt from the tables."""
    from raksha.pipeline.report import rebuild

    doc, paths = with_spark(cfg, f"raksha-report-{args.date}", lambda spark: rebuild(spark, cfg, args.date))
    print(f"report of {args.date} (run {doc['run_id']}): {len(doc['warnings'])} warnings")
    for warning in doc["warnings"]:
        print(f"  {warning}")
    for kind in ("html", "png", "json"):
        print(f"  {kind}: {paths[kind]}")
    return 0


def cmd_queue_precision(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.evaluation.report import print_queue_precision
    from raksha.evaluation.window import queue_precision

    def body(spark):
        by_kind, summary = queue_precision(spark, cfg, args.start_date, args.end_date, args.capacity_share)
        print_queue_precision(by_kind, summary, args.start_date, args.end_date)

    with_spark(cfg, "raksha-queue-precision", body)
    return 0


def cmd_label(cfg: Config, args: argparse.Namespace) -> int:
    """Exit 0 when every row landed; 2 when some rows were rejected (the valid ones landed)."""
    from raksha.feedback.reports import print_label_report, write_rejections
    from raksha.feedback.verdicts import label

    report = with_spark(cfg, "raksha-label", lambda spark: label(spark, cfg, args.file))
    print_label_report(report)
    if args.rejects:
        write_rejections(report, args.rejects)
        print(f"  rejected rows written to {args.rejects}")
    return 2 if report.rejected else 0


def evaluate_window(spark, cfg: Config, args: argparse.Namespace):
    """``raksha evaluate`` on a session (``jobs/evaluate.py`` runs it as its body): evaluate, write, print."""
    from raksha.evaluation.report import run_evaluation

    return run_evaluation(
        spark,
        cfg,
        args.start_date,
        args.end_date,
        out=args.out,
        capacity_share=args.capacity_share,
        truth=args.truth,
        baseline_max_rows=args.baseline_rows,
        queue_shares=args.queue_shares,
    )


def cmd_evaluate(cfg: Config, args: argparse.Namespace) -> int:
    with_spark(cfg, "raksha-evaluate", lambda spark: evaluate_window(spark, cfg, args))
    return 0


def cmd_promote(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.models.artifacts import promote
    from raksha.platform.uris import local_path

    models = cfg.path("models")
    if local_path(models) is None:  # hdfs:, s3a:, ...: through Spark's Hadoop FileSystem
        from raksha.platform.storage import Storage

        with_spark(cfg, "raksha-promote", lambda spark: promote(models, args.model, args.version, Storage(spark)))
    else:
        promote(models, args.model, args.version)
    print(f"promoted {args.model}/{args.version}")
    return 0


def cmd_calibrate(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.feedback.alert_budget import calibrate
    from raksha.feedback.reports import print_calibration

    truth = None if args.truth == "none" else args.truth
    result = with_spark(
        cfg,
        "raksha-calibrate",
        lambda spark: calibrate(
            spark, cfg, args.start_date, args.end_date, args.capacity, truth=truth, promote=args.promote
        ),
    )
    print_calibration(result)
    return 0


def cmd_export_retraining(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.feedback.exports import export_retraining
    from raksha.feedback.reports import print_export

    result = with_spark(
        cfg, "raksha-export-retraining", lambda spark: export_retraining(spark, cfg, args.start_date, args.end_date)
    )
    print_export(result)
    return 0


def cmd_history(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.platform.history import history, print_history

    print_history(args.date, with_spark(cfg, "raksha-history", lambda spark: history(spark, cfg, args.date)))
    return 0


def cmd_restore(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.platform.history import restore

    run = with_spark(cfg, "raksha-restore", lambda spark: restore(spark, cfg, args.date, args.run))
    print(f"restore {run.run_id}: {args.date} republished as run {args.run} wrote it")
    for table, version in sorted(run.versions.items()):
        print(f"  {table:<18} version {version:<5} {run.rows.get(table, 0)} rows")
    return 0


def cmd_vacuum(cfg: Config, args: argparse.Namespace) -> int:
    from raksha.platform.history import print_vacuum, vacuum

    print_vacuum(with_spark(cfg, "raksha-vacuum", lambda spark: vacuum(spark, cfg)))
    return 0


def cmd_sql(cfg: Config, args: argparse.Namespace) -> int:
    def body(spark):
        spark.sql(args.statement).show(100, truncate=False)

    with_spark(cfg, "raksha-sql", body)
    return 0


def cmd_server(cfg: Config, args: argparse.Namespace) -> int:
    """``sql-server`` / ``connect-server``: run until Ctrl-C or SIGTERM (raksha.platform.servers)."""
    from raksha.platform.servers import run_command

    return run_command(cfg, "sql" if args.command == "sql-server" else "connect", args.port)


def cmd_config(cfg: Config, args: argparse.Namespace) -> int:
    import yaml

    print(f"# effective configuration (checked; config_hash {cfg.digest()}, as run_log records it)")
    print(yaml.safe_dump(cfg.data, sort_keys=False, default_flow_style=False).rstrip())
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "train-autoencoder": cmd_train,
    "train-sequence": cmd_train,
    "import-legacy": cmd_import_legacy,
    "score": cmd_score,
    "report": cmd_report,
    "baseline": cmd_baseline,
    "queue-precision": cmd_queue_precision,
    "label": cmd_label,
    "evaluate": cmd_evaluate,
    "calibrate": cmd_calibrate,
    "promote": cmd_promote,
    "export-retraining": cmd_export_retraining,
    "history": cmd_history,
    "restore": cmd_restore,
    "vacuum": cmd_vacuum,
    "sql": cmd_sql,
    "sql-server": cmd_server,
    "connect-server": cmd_server,
    "config": cmd_config,
}
