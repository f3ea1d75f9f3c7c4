"""spark-submit jobs/evaluate.py --start-date D1 --end-date D2 [--capacity-share 0.01] [--truth labels|verdicts]
[--out FILE.json] [--baseline-rows N] [--conf FILE] [--set key=value]

The options and the body are ``raksha evaluate``'s (``raksha.cli.evaluate_args``, ``evaluate_window``)."""

from __future__ import annotations

import sys

from raksha.cli import evaluate_args, evaluate_window
from raksha.entrypoints import run_job


def main(argv: list[str] | None = None) -> int:
    return run_job("evaluate", argv, evaluate_args, evaluate_window)


if __name__ == "__main__":
    sys.exit(main())
