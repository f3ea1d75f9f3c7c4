"""``raksha submit``: run a raksha command on a Spark cluster through spark-submit.

    raksha submit --master URL [--deploy-mode client|cluster] [spark-submit options] -- COMMAND ARGS

Ships what executors need and nothing else: the packed environment (``raksha.platform.ship``,
``--archives ENV#environment``, executors run ``./environment/bin/python``), the Delta and
PostgreSQL JDBC jars (``--jars``), and every ``--conf`` overlay of the command (``--files``; in
cluster deploy mode the driver reads them by name from its working directory). Models are read on
the driver, by URI, and broadcast (``raksha.models.artifacts``); executors never open a path.

It prints the spark-submit line before running it, so operators can put that line in their
scheduler; ``--print-only`` prints it without running. Any option before ``--`` that is not one
of ours goes to spark-submit as given (``--executor-memory 4g``, ``--conf spark.x=y``, ...).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pyspark

from raksha.config import load_config
from raksha.platform import jars, jvm_console, ship

ENTRY = Path(__file__).with_name("submitted.py")  # the main file spark-submit runs: raksha.cli.main
ENV_LINK = "environment"
EXECUTOR_PYTHON = f"./{ENV_LINK}/bin/python"

USAGE = "raksha submit --master URL [--deploy-mode client|cluster] [spark-submit options] -- COMMAND [ARGS]"


class SubmitError(ValueError):
    """The submit line cannot be built (no command, an unknown deploy mode, a missing overlay)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raksha submit", usage=USAGE, description=__doc__.split("\n\n")[0])
    parser.add_argument("--master", required=True, help="spark://HOST:PORT, yarn, k8s://https://HOST:PORT, ...")
    parser.add_argument("--deploy-mode", choices=["client", "cluster"], default="client")
    parser.add_argument("--env-cache", type=Path, default=None, help="where packed environments are kept")
    parser.add_argument(
        "--worker-python",
        default=None,
        help="the Python 3.11 every worker has (default: this environment's base interpreter, same path)",
    )
    parser.add_argument("--print-only", action="store_true", help="print the spark-submit line, do not run it")
    return parser


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(submit's own and spark-submit's options, the raksha command after ``--``)."""
    argv = list(argv)
    if "--" not in argv:
        raise SubmitError(f"give the raksha command after '--' (usage: {USAGE})")
    cut = argv.index("--")
    command = argv[cut + 1 :]
    if not command:
        raise SubmitError(f"no raksha command after '--' (usage: {USAGE})")
    if command[0] == "submit":
        raise SubmitError("'raksha submit -- submit' makes no sense")
    return argv[:cut], command


def command_options(command: Sequence[str]) -> argparse.Namespace:
    """The command's ``--conf`` and ``--set`` (what the job will load), without parsing the rest."""
    from raksha.cli import common_parser

    known, _ = common_parser().parse_known_args(list(command[1:]))
    return known


def _shipped_command(command: Sequence[str], overlays: Sequence[str], deploy_mode: str) -> list[str]:
    """The command as the driver runs it: in cluster mode each overlay is read by its shipped name."""
    if deploy_mode == "client":
        return list(command)
    names = {o: Path(o).name for o in overlays}
    out, it = [], iter(command)
    for arg in it:
        if arg == "--conf":
            out += [arg, names.get(value := next(it, ""), value)]
        elif arg.startswith("--conf="):
            out.append("--conf=" + names.get(arg[len("--conf=") :], arg[len("--conf=") :]))
        else:
            out.append(arg)
    return out


def spark_submit_line(
    master: str,
    deploy_mode: str,
    env_archive: Path,
    command: Sequence[str],
    spark_options: Sequence[str] = (),
    overlays: Sequence[str] = (),
) -> list[str]:
    """The spark-submit command line that runs ``raksha COMMAND`` with the shipped environment."""
    spark_home = Path(pyspark.__file__).parent
    line = [str(spark_home / "bin" / "spark-submit"), "--master", master, "--deploy-mode", deploy_mode]
    line += ["--name", f"raksha-{command[0]}"]
    line += ["--jars", ",".join(jars.jar_paths())]
    line += ["--archives", f"{env_archive}#{ENV_LINK}"]
    line += ["--conf", f"spark.pyspark.python={EXECUTOR_PYTHON}"]
    if deploy_mode == "client":  # the driver runs here, in this environment
        line += ["--conf", f"spark.pyspark.driver.python={sys.executable}"]
        line += ["--driver-java-options", jvm_console.LOG_OPTION]  # the driver's console: warnings, not INFO
    if overlays:
        line += ["--files", ",".join(str(Path(o).resolve()) for o in overlays)]
    line += list(spark_options)
    line += [str(ENTRY), *_shipped_command(command, overlays, deploy_mode)]
    return line


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    try:
        own, command = split_argv(argv)
    except SubmitError as exc:
        if {"-h", "--help"} & set(argv):
            parser.print_help()
            return 0
        print(f"raksha submit: error: {exc}", file=sys.stderr)
        return 2
    args, spark_options = parser.parse_known_args(own)
    try:
        options = command_options(command)
        for overlay in options.conf:
            if not Path(overlay).is_file():
                raise SubmitError(f"config overlay {overlay} does not exist")
        cfg = load_config(options.conf, options.set)  # a bad overlay or --set fails here, not on the cluster
        keras = cfg.get("scoring.runtime") == "keras"
        env = ship.pack(args.env_cache, with_tensorflow=keras, python=args.worker_python)
        what = "reused" if env.reused else "packed"
        print(f"environment {what}: {env.path} ({env.size_bytes / 1e6:.0f} MB, {len(env.distributions)} distributions)")
        line = spark_submit_line(args.master, args.deploy_mode, env.path, command, spark_options, options.conf)
    except (SubmitError, ship.ShipError, jars.JarsMissingError, ValueError) as exc:
        print(f"raksha submit: error: {exc}", file=sys.stderr)
        return 2
    print("spark-submit line:")
    print("  " + shlex.join(line))
    sys.stdout.flush()
    if args.print_only:
        return 0
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    environment["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
    # spark-submit's own scripts find this Python first (find-spark-home, the pyspark launcher)
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(line, env=environment, check=False).returncode
