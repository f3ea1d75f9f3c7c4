"""spark-submit jobs/train_sequence_model.py --start-date D1 --end-date D2 [--from-export] [--conf FILE] [--set k=v]"""

from __future__ import annotations

import sys

from raksha.entrypoints import date_window_args, run_job
from raksha.training.commands import train_sequence


def train_args(parser) -> None:
    date_window_args(parser)
    parser.add_argument("--from-export", action="store_true", help="train on the window's retrain_sequences rows")


def main(argv: list[str] | None = None) -> int:
    def body(spark, cfg, args):
        version = train_sequence(spark, cfg, args.start_date, args.end_date, promote=True, from_export=args.from_export)
        print(f"wrote and promoted {version.name}/{version.version}")

    return run_job("train_sequence_model", argv, train_args, body)


if __name__ == "__main__":
    sys.exit(main())
