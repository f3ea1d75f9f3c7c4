"""spark-submit jobs/score_daily.py --date YYYY-MM-DD [--conf FILE] [--set key=value]"""

from __future__ import annotations

import sys

from raksha.entrypoints import day_arg, run_job
from raksha.pipeline.daily import run
from raksha.pipeline.summary import print_run_summary


def main(argv: list[str] | None = None) -> int:
    def body(spark, cfg, args):
        print_run_summary(spark, cfg, run(spark, cfg, args.date))

    return run_job("score_daily", argv, day_arg, body)


if __name__ == "__main__":
    sys.exit(main())
