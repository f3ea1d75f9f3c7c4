"""spark-submit jobs/calibrate.py --start-date D1 --end-date D2 --capacity K [--truth labels|verdicts|none]
[--promote] [--conf FILE] [--set key=value]"""

from __future__ import annotations

import sys

from raksha.entrypoints import date_window_args, run_job
from raksha.feedback.alert_budget import calibrate
from raksha.feedback.reports import print_calibration


def calibrate_args(parser) -> None:
    date_window_args(parser)
    parser.add_argument("--capacity", type=int, required=True)
    parser.add_argument("--truth", choices=("labels", "verdicts", "none"), default="labels")
    parser.add_argument("--promote", action="store_true")


def main(argv: list[str] | None = None) -> int:
    def body(spark, cfg, args):
        truth = None if args.truth == "none" else args.truth
        print_calibration(
            calibrate(spark, cfg, args.start_date, args.end_date, args.capacity, truth=truth, promote=args.promote)
        )

    return run_job("calibrate", argv, calibrate_args, body)


if __name__ == "__main__":
    sys.exit(main())
