"""spark-submit jobs/export_retraining.py --start-date D1 --end-date D2 [--conf FILE] [--set key=value]"""

from __future__ import annotations

import sys

from raksha.entrypoints import date_window_args, run_job
from raksha.feedback.exports import export_retraining
from raksha.feedback.reports import print_export


def main(argv: list[str] | None = None) -> int:
    def body(spark, cfg, args):
        print_export(export_retraining(spark, cfg, args.start_date, args.end_date))

    return run_job("export_retraining", argv, date_window_args, body)


if __name__ == "__main__":
    sys.exit(main())
