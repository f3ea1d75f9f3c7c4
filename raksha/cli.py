"""The ``raksha`` command line (DESIGN.md section 9).

Every command takes ``--conf FILE`` (overlays on conf/base.yaml, in order) and ``--set
key=value`` (applied last). Exit code 0 only on success; a failure prints one line saying
what and where.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence

from raksha.config import Config, load_config

log = logging.getLogger("raksha")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): '{text}'") from None


def date_window_args(parser: argparse.ArgumentParser) -> None:
    """--start-date and --end-date (inclusive), for every command over a window of days."""
    parser.add_argument("--start-date", type=_date, required=True)
    parser.add_argument("--end-date", type=_date, required=True)


def common_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--conf", action="append", default=[], metavar="FILE", help="config overlay (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    parser = argparse.ArgumentParser(prog="raksha", description="Nightly fraud scoring of mobile-banking sessions.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", parents=[common], help="write synthetic sessions, actions and labels")
    p.add_argument("--start-date", type=_date, required=True)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--sessions-per-day", type=int, required=True)
    p.add_argument("--attack-rate", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)

    for name, what in (("train-autoencoder", "autoencoder"), ("train-sequence", "sequence model")):
        p = sub.add_parser(name, parents=[common], help=f"train a new {what} version from a date window")
        date_window_args(p)
        p.add_argument("--no-promote", action="store_true", help="write the version without promoting it")
        p.add_argument(
            "--from-export",
            action="store_true",
            help="train on the window's retraining export (raksha export-retraining) instead of the raw input",
        )

    p = sub.add_parser("import-legacy", parents=[common], help="import the notebooks' model files")
    p.add_argument("--from", dest="from_dir", required=True, metavar="DIR")

    p = sub.add_parser("score", parents=[common], help="the nightly job: score one day")
    p.add_argument("--date", type=_date, required=True)

    p = sub.add_parser(
        "report",
        parents=[common],
        help="write a scored day's nightly report again (report.html, report.png, report.json) from the tables",
    )
    p.add_argument("--date", type=_date, required=True)

    p = sub.add_parser(
        "queue-precision", parents=[common], help="precision of the review queue against the generated ground truth"
    )
    date_window_args(p)
    p.add_argument("--capacity-share", type=float, default=0.01, help="queue capacity as a share of sessions")

    p = sub.add_parser("label", parents=[common], help="land analysts' verdicts (CSV or Parquet) in the verdicts table")
    p.add_argument("--file", required=True, help="verdicts: session_id, dt, verdict, analyst, reviewed_at[, note]")
    p.add_argument("--rejects", metavar="FILE", help="also write the rejected rows and their reasons to this CSV")

    p = sub.add_parser(
        "evaluate", parents=[common], help="ROC-AUC, PR-AUC, precision and recall against ground truth, with a baseline"
    )
    evaluate_args(p)

    p = sub.add_parser(
        "calibrate",
        parents=[common],
        help="autoencoder threshold and risk_score cut for a review capacity; writes a new autoencoder version",
    )
    date_window_args(p)
    p.add_argument("--capacity", type=int, required=True, help="review cases a day the team can handle")
    p.add_argument(
        "--truth",
        choices=("labels", "verdicts", "none"),
        default="labels",
        help="ground truth for precision and recall (none: leave them out)",
    )
    p.add_argument("--promote", action="store_true", help="promote the new version")

    p = sub.add_parser("promote", parents=[common], help="promote a model version")
    p.add_argument("--model", required=True)
    p.add_argument("--version", required=True)

    p = sub.add_parser(
        "export-retraining",
        parents=[common],
        help="export a window's sessions and labelled sequences for retraining (retrain_behavior, retrain_sequences)",
    )
    date_window_args(p)

    p = sub.add_parser("history", parents=[common], help="the runs that wrote a date: table versions, rows, models")
    p.add_argument("--date", type=_date, required=True)

    p = sub.add_parser(
        "restore", parents=[common], help="republish a date in every table exactly as an earlier run wrote it"
    )
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--run", required=True, metavar="RUN_ID", help="a run id from `raksha history --date D`")

    sub.add_parser(
        "vacuum", parents=[common], help="remove table files replaced longer ago than publish.retention_days"
    )

    p = sub.add_parser("sql", parents=[common], help="run one SQL statement against the catalog")
    p.add_argument("statement")

    derby_note = (
        "With the default Derby metastore the server holds the catalog while it runs (embedded Derby "
        "allows one process): stop it before `raksha score` on the same catalog, or use "
        "catalog.metastore: postgres. Ctrl-C or SIGTERM stops it."
    )
    p = sub.add_parser(
        "sql-server",
        parents=[common],
        help="serve the catalog over JDBC/ODBC (Spark's Thrift server; beeline, impyla) on servers.sql.host",
        description="Start Spark's Thrift JDBC/ODBC server over the raksha catalog and print its "
        "jdbc:hive2:// URL when it is ready. No authentication: it binds to servers.sql.host "
        f"(127.0.0.1). {derby_note}",
    )
    p.add_argument("--port", type=int, default=None, help="TCP port (default: servers.sql.port, 10000)")
    p = sub.add_parser(
        "connect-server",
        parents=[common],
        help="serve the catalog to SparkSession.builder.remote (Spark Connect) on 127.0.0.1, with a token",
        description="Start the Spark Connect server over the raksha catalog on 127.0.0.1 and print its "
        "sc:// URL when it is ready. Clients must give the token held in the environment variable "
        f"servers.connect.token_env names ($RAKSHA_CONNECT_TOKEN); without it the server does not start. {derby_note}",
    )
    p.add_argument("--port", type=int, default=None, help="TCP port (default: servers.connect.port, 15002)")

    sub.add_parser(
        "submit",
        add_help=False,
        help="run a command on a Spark cluster: raksha submit --master URL [spark-submit options] -- COMMAND ...",
    )
    p = sub.add_parser("config", parents=[common], help="print the effective configuration (base, overlays, --set)")
    p.add_argument("action", choices=["show"])
    return parser


def setup_logging(verbose: bool) -> None:
    """Default: raksha's own progress (INFO, time and message) and other libraries' warnings.
    ``--verbose``: everything at DEBUG with its level and logger (Spark's too: ``raksha.platform.jvm_console``)."""
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("py4j").setLevel(logging.INFO)  # every gateway call otherwise
    else:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        logging.getLogger("raksha").setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["submit"]:  # its own options, spark-submit's, then the command after --
        from raksha.platform import submit

        return submit.main(argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.conf, args.set)
        return COMMANDS[args.command](cfg, args)
    except KeyboardInterrupt:
        print("raksha: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line: what and where
        log.debug("failure", exc_info=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"raksha {args.command}: error: {first}", file=sys.stderr)
        return 1


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


def evaluate_args(p: argparse.ArgumentParser) -> None:
    """The options of ``raksha evaluate``, which ``jobs/evaluate.py`` takes too."""
    date_window_args(p)
    p.add_argument("--capacity-share", type=float, default=0.01, help="queue capacity as a share of sessions")
    p.add_argument("--truth", choices=("labels", "verdicts"), default="labels", help="generated labels or verdicts")
    p.add_argument("--out", metavar="FILE.json", help="report path (default: {paths.warehouse}/../reports/...)")
    p.add_argument("--baseline-rows", type=int, default=200_000, help="most sessions the IsolationForest trains on")


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


if __name__ == "__main__":
    sys.exit(main())
