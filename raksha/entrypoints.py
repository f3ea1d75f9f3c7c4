"""What every spark-submit entry point in ``jobs/`` shares: arguments, config, one session."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from raksha.cli import _date, common_parser, date_window_args, setup_logging  # noqa: F401 - jobs/ import date_window_args from here
from raksha.config import Config, load_config
from raksha.errors import first_line


def run_job(
    name: str,
    argv: Sequence[str] | None,
    add_args: Callable[[argparse.ArgumentParser], None],
    body: Callable[[Any, Config, argparse.Namespace], Any],
) -> int:
    """Parse ``argv``, load the config, build one SparkSession, call ``body``, stop the session."""
    from raksha.platform.session import build_session

    parser = argparse.ArgumentParser(prog=name, parents=[common_parser()])
    add_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        cfg = load_config(args.conf, args.set)
        spark = build_session(cfg, name)
    except Exception as exc:
        print(f"{name}: error: {first_line(exc)}", file=sys.stderr)
        return 1
    try:
        body(spark, cfg, args)
        return 0
    except Exception as exc:
        print(f"{name}: error: {first_line(exc)}", file=sys.stderr)
        return 1
    finally:
        spark.stop()


def day_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", type=_date, required=True)
