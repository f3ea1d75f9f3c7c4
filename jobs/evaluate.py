"""spark-submit jobs/evaluate.py --start-date D1 --end-date D2 [--capacity-share 0.01] [--truth labels|verdicts]
[--out FILE.json] [--conf FILE] [--set key=value]"""

from __future__ import annotations

import sys

from raksha.entrypoints import date_window_args, run_job
from raksha.evaluation import BASELINE_MAX_ROWS, TRUTHS, run_evaluation


def evaluate_args(parser) -> None:
    date_window_args(parser)
    parser.add_argument("--capacity-share", type=float, default=0.01)
    parser.add_argument("--truth", choices=TRUTHS, default="labels")
    parser.add_argument("--out", metavar="FILE.json")
    parser.add_argument("--baseline-rows", type=int, default=BASELINE_MAX_ROWS)


def main(argv: list[str] | None = None) -> int:
    def body(spark, cfg, args):
        run_evaluation(
            spark,
            cfg,
            args.start_date,
            args.end_date,
            capacity_share=args.capacity_share,
            truth=args.truth,
            out=args.out,
            baseline_max_rows=args.baseline_rows,
        )

    return run_job("evaluate", argv, evaluate_args, body)


if __name__ == "__main__":
    sys.exit(main())
