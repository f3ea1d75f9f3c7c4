"""What the driver's JVM prints on the console: Spark's warnings and errors, not its start-up noise.

A command's console is its own progress and summary (issue: the console reads clean). The JVM
pyspark starts for a local session prints on stderr

- Spark's log, which ``log4j2.properties`` (shipped beside this module) cuts to warnings and
  errors, without the ones every Delta table in the Hive catalog raises by design; it is given to
  the JVM as ``-Dlog4j2.configurationFile`` (``spark.driver.extraJavaOptions``);
- one line of the JVM itself, ``WARNING: Using incubator modules: jdk.incubator.vector`` (Spark's
  launcher adds the module; no JVM option silences it). ``launch_gateway`` starts the JVM the way
  pyspark does, with its stderr through a pipe that drops that line and passes everything else.

``--verbose`` (debug logging) leaves both alone: Spark's own defaults, every line.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO

LOG_SETTINGS = Path(__file__).with_name("log4j2.properties")
LOG_OPTION = f"-Dlog4j2.configurationFile=file:{LOG_SETTINGS}"
DROPPED = ("WARNING: Using incubator modules:",)  # whole lines the JVM prints at start, never news


def verbose() -> bool:
    """Whether the command runs with ``--verbose`` (debug logging on raksha's loggers)."""
    return logging.getLogger("raksha").isEnabledFor(logging.DEBUG)


def console_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """Spark settings for the console: ``spark.driver.extraJavaOptions`` with the shipped log4j2
    settings in front (unless the configuration names its own, or ``--verbose``), and Spark's stage
    progress bar when stderr is a terminal (a log file gets no carriage returns)."""
    out = {}
    options = conf.get("spark.driver.extraJavaOptions", "")
    if not verbose() and "log4j2.configurationFile" not in options:
        out["spark.driver.extraJavaOptions"] = f"{LOG_OPTION} {options}".strip()
    if "spark.ui.showConsoleProgress" not in conf:
        out["spark.ui.showConsoleProgress"] = str(sys.stderr.isatty()).lower()
    return out


def pump_stderr(source: IO[bytes]) -> None:
    """Copy a JVM's stderr to this process's (file descriptor 2, which the JVM would have had), without
    the lines of ``DROPPED`` (the local session's JVM; the servers of ``raksha.platform.servers``)."""
    for line in iter(source.readline, b""):
        if not line.decode("utf-8", "replace").startswith(DROPPED):
            os.write(2, line)
    source.close()


def launch_gateway(conf: Mapping[str, str]) -> None:
    """Start the driver's JVM for a local session now, with ``conf``, its stderr filtered (see the
    module's docstring); the SparkSession built next uses it. Nothing to do under spark-submit (the
    JVM is already there), with ``--verbose``, or when this process has a JVM already."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway as pyspark_launch

    if verbose() or SparkContext._gateway is not None:
        return
    spark_conf = SparkConf(loadDefaults=False)
    for key, value in conf.items():
        spark_conf.set(key, value)
    with SparkContext._lock:
        if SparkContext._gateway is not None:
            return
        gateway = pyspark_launch(spark_conf, popen_kwargs={"stderr": subprocess.PIPE})
        threading.Thread(target=pump_stderr, args=(gateway.proc.stderr,), daemon=True).start()
        SparkContext._gateway = gateway
        SparkContext._jvm = gateway.jvm
