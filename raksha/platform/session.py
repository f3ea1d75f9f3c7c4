"""The one place a SparkSession is built from the configuration.

Local mode by default (``spark.master``), any master URL otherwise; ``spark.master: null``
takes the master given to spark-submit. The catalog is Hive-backed, so tables outlive the job: an
embedded Derby metastore under ``paths.metastore`` (shipped in the pyspark wheel), or a shared one
in PostgreSQL (``catalog.metastore``; ``raksha.platform.metastore`` makes its schema before the session).
Every table is a Delta table: the Delta jars (fetched once at setup, ``raksha.platform.jars``) come through
``spark.jars``, Delta's catalog is the session catalog, Delta writes the tables' columns into the
metastore (so JDBC clients see them), and deletion vectors stay off (delta-rs readers).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from pyspark import StorageLevel
from pyspark.sql import SparkSession

from raksha.config import Config
from raksha.platform import jars, jvm_console, metastore

log = logging.getLogger(__name__)

# Environment the Python workers need; local-mode workers inherit the driver's environment,
# cluster executors get it through spark.executorEnv.
WORKER_ENV = {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # the tables' columns go to the metastore too, so JDBC and BI clients see them
    "spark.databricks.delta.catalog.update.enabled": "true",
    # which replaces the placeholder column Spark registers for a Delta table: Hive must allow it
    "spark.hadoop.hive.metastore.disallow.incompatible.col.type.changes": "false",
    # delta-rs readers must keep working
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}

# Where a run keeps a frame as large as the day (the scored day, the users' expectations): on the executors'
# local disk, read back through the OS's page cache. Kept on the heap (MEMORY_AND_DISK), a partition is
# unrolled there before it is found too large and spilled, and again at each later read from disk: at 10M
# sessions, 500 MB partitions of the scored day held the default 2g driver's heap while an aggregation of
# the same tasks failed for want of memory.
DAY_STORAGE = StorageLevel.DISK_ONLY


SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


@contextlib.contextmanager
def shuffle_partitions_for(spark: SparkSession, cfg: Config, sessions: int) -> Iterator[int]:
    """Within this block a day of ``sessions`` shuffles into at least one partition per
    ``spark.sessions_per_shuffle_partition`` sessions (never fewer than configured); the session's
    setting is put back after it, even on an error (a notebook or the tests' shared session scores
    other days after this one). Yields the partitions in use."""
    configured = int(spark.conf.get(SHUFFLE_PARTITIONS))
    per = int(cfg.get("spark.sessions_per_shuffle_partition") or 0)
    wanted = max(configured, math.ceil(sessions / per)) if per > 0 else configured
    if wanted != configured:
        log.info("%d sessions: %d shuffle partitions (configured %d)", sessions, wanted, configured)
    spark.conf.set(SHUFFLE_PARTITIONS, str(wanted))
    try:
        yield wanted
    finally:
        spark.conf.set(SHUFFLE_PARTITIONS, str(configured))


def _conf_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _add_to_running_driver(jar_paths: list[str]) -> None:
    """Under spark-submit the driver JVM started before this code ran: ``spark.jars`` still ships
    the jars to the executors, but the driver loads classes only from what it was launched with.
    Add the jars to its class loader (a ``MutableURLClassLoader``, which is what ``--jars`` adds to),
    unless it was launched with them."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    loader = jvm.org.apache.spark.util.Utils.getContextOrSparkClassLoader()
    try:
        jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension", False, loader)
        return
    except Exception:  # noqa: BLE001 - py4j: ClassNotFoundException
        pass
    for path in jar_paths:
        loader.addURL(jvm.java.io.File(path).toURI().toURL())
    log.debug("added %d jars to the running driver's class loader", len(jar_paths))


def spark_conf(cfg: Config) -> dict[str, str]:
    """Every Spark setting of a raksha session, from the configuration (the one place that turns it
    into Spark settings): the Delta jars and catalog, ``spark.conf``, the Python workers' environment,
    loopback for a local master, the Hive catalog with its warehouse and metastore. ``build_session``
    gives them to the builder; ``raksha.platform.servers`` gives them to spark-submit (the JDBC and
    Spark Connect servers). A later entry wins over an earlier one, as it would in the builder."""
    conf = {"spark.jars": ",".join(jars.jar_paths()), **DELTA_CONF}
    conf.update({key: _conf_value(value) for key, value in (cfg.get("spark.conf") or {}).items()})
    conf.update({f"spark.executorEnv.{key}": value for key, value in WORKER_ENV.items()})
    master = cfg.get("spark.master", None)
    if master and str(master).startswith("local"):
        # a laptop run listens on loopback only
        conf.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
    conf.update({"spark.sql.catalogImplementation": "hive", "spark.sql.warehouse.dir": cfg.path("warehouse")})
    conf["spark.hadoop.hive.downloaded.resources.dir"] = hive_resources_dir()
    conf.update(metastore.spark_conf(cfg))
    return conf


# The driver's garbage collector when nothing chooses one: the throughput collector. A nightly run is a batch,
# and on two cores G1's (the JVM's default) concurrent threads take CPU from the tasks: the 1M bench's day, two
# cold runs each, 165.8/165.3 s with G1 against 146.9/152.7 s (JVM CPU 298 s against 266 s, peak 2.9 GB
# against 2.4-2.6 GB). The SQL servers, which answer analysts, keep the JVM's default.
BATCH_COLLECTOR = "-XX:+UseParallelGC"
COLLECTOR_OPTION = re.compile(r"-XX:\+Use\w+GC\b")
JVM_OPTIONS_ENV = ("SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")


def collector_conf(conf: dict[str, str]) -> dict[str, str]:
    """``spark.driver.extraJavaOptions`` with ``BATCH_COLLECTOR`` added, unless the configured options or
    the environment's JVM options name a collector (two would stop the JVM from starting)."""
    options = conf.get("spark.driver.extraJavaOptions", "")
    if any(COLLECTOR_OPTION.search(o) for o in (options, *(os.environ.get(k, "") for k in JVM_OPTIONS_ENV))):
        return {}
    return {"spark.driver.extraJavaOptions": f"{options} {BATCH_COLLECTOR}".strip()}


def hive_resources_dir() -> str:
    """Where the Hive client of a session would put what it downloads (``ADD JAR``, which raksha never runs):
    one folder per OS user in the temporary folder. Hive's default is a new ``<session id>_resources`` folder
    there for each session, which Spark's client never removes: one was left behind by every run."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (a container's arbitrary user)
        user = str(os.getuid())
    return os.path.join(tempfile.gettempdir(), f"raksha-hive-resources-{user}")


def build_session(cfg: Config, app_name: str | None = None) -> SparkSession:
    """A SparkSession with the configured master, Spark settings and the raksha catalog."""
    # Without these the Python workers start the system python, which lacks our packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)

    builder = SparkSession.builder.appName(app_name or cfg.get("spark.app_name"))
    master = cfg.get("spark.master", None)
    launching = "PYSPARK_GATEWAY_PORT" not in os.environ  # this process starts the driver's JVM (not spark-submit)
    # Under spark-submit the JVM already has the master it was given: keep it.
    if master and launching:
        builder = builder.master(master)
    if master and str(master).startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = spark_conf(cfg)
    if not launching:
        _add_to_running_driver(jars.jar_paths())
    # Derby: its folder; PostgreSQL: the database and the Hive schema, once, before any session
    metastore.ensure_schema(cfg)
    conf.update(jvm_console.console_conf(conf))
    if launching:
        conf.update(collector_conf(conf))
        launch = {**conf, "spark.app.name": app_name or cfg.get("spark.app_name")}
        jvm_console.launch_gateway({**launch, **({"spark.master": str(master)} if master else {})})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("SparkSession on %s (Spark %s)", spark.sparkContext.master, spark.version)
    return spark
