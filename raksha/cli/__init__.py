"""The ``raksha`` command line (DESIGN.md section 9).

Every command takes ``--conf FILE`` (overlays on conf/base.yaml, in order) and ``--set
key=value`` (applied last). Exit code 0 only on success; a failure prints one line saying
what and where.

The parser is ``arguments``, what each command does is ``commands``; this module parses, sets up
logging, loads the configuration and runs the command, turning a failure into one line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from raksha.cli.arguments import _date, build_parser, common_parser, date_window_args, evaluate_args
from raksha.cli.commands import COMMANDS, evaluate_window
from raksha.config import load_config
from raksha.errors import first_line

__all__ = [
    "COMMANDS",
    "_date",
    "build_parser",
    "common_parser",
    "date_window_args",
    "evaluate_args",
    "evaluate_window",
    "main",
    "setup_logging",
]

log = logging.getLogger("raksha")


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
        print(f"raksha {args.command}: error: {first_line(exc)}", file=sys.stderr)
        return 1
