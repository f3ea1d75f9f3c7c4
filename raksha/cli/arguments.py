"""The ``raksha`` command line's arguments: one sub-parser per command (``build_parser``) and the
options several commands (and ``jobs/``) share."""

from __future__ import annotations

import argparse
import datetime as dt


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

    p = sub.add_parser(
        "baseline",
        parents=[common],
        help="build each user's behavioural baseline (user_baselines) from a window of input days",
        description="raksha baseline build --start-date D1 --end-date D2: one snapshot per day of the window, "
        "each day folded into the snapshot before it (its sessions not blocked and without a fraud verdict); "
        "snapshots of later dates are rebuilt on them. The nightly job then scores day D against the newest "
        "snapshot before D and keeps the baselines up to date itself.",
    )
    p.add_argument("action", choices=["build"])
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


def evaluate_args(p: argparse.ArgumentParser) -> None:
    """The options of ``raksha evaluate``, which ``jobs/evaluate.py`` takes too."""
    date_window_args(p)
    p.add_argument("--capacity-share", type=float, default=0.01, help="queue capacity as a share of sessions")
    p.add_argument("--truth", choices=("labels", "verdicts"), default="labels", help="generated labels or verdicts")
    p.add_argument("--out", metavar="FILE.json", help="report path (default: {paths.warehouse}/../reports/...)")
    p.add_argument("--baseline-rows", type=int, default=200_000, help="most sessions the IsolationForest trains on")
    p.add_argument(
        "--queue-shares",
        type=float,
        nargs="+",
        default=[0.01, 0.03],
        metavar="SHARE",
        help="each score's queues per session and per case at these shares of each day's sessions (smallest: oddities)",
    )
