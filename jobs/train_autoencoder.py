"""spark-submit jobs/train_autoencoder.py --start-date D1 --end-date D2 [--from-export] [--conf FILE] [--set k=v]"""

from __future__ import annotations

import sys

from raksha.entrypoints import date_window_args, run_job
from raksha.training.commands import train_autoencoder


def train_args(parser) -> None:
    date_window_args(parser)
    parser.add_argument("--from-export", action="store_true", help="train on the window's retrain_behavior rows")


def main(argv: list[str] | None = None) -> int:
    def body(spark, cfg, args):
        version = train_autoencoder(
            spark, cfg, args.start_date, args.end_date, promote=True, from_export=args.from_export
        )
        print(f"wrote and promoted {version.name}/{version.version}")

    return run_job("train_autoencoder", argv, train_args, body)


if __name__ == "__main__":
    sys.exit(main())
