"""The JVM jars every SparkSession gets through ``spark.jars``: Delta Lake and the PostgreSQL driver.

They are fetched once, at setup (``make setup`` runs ``python -m raksha.platform.jars``), into the
project's ``jars/`` folder (``$RAKSHA_JARS_DIR`` elsewhere), with the Ivy resolver that ships in
the pyspark wheel. Nothing is resolved when Spark starts and nothing is downloaded at run time; on a
cluster the same files are what spark-submit ships to the executors.

Delta 4.4.1 is what the Delta issue asked for, but its Spark 4.2 jars are not served by the
package registry this project reaches; 4.4.0 is the newest Delta built for Spark 4.2 that is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyspark

from raksha.config import REPO_ROOT

DELTA_VERSION = "4.4.0"
SPARK_LINE = "4.2"
# artifact -> Maven coordinates. Only these files go on the classpath: the resolver also brings
# their transitive dependencies (Hadoop, Parquet, Jackson), which Spark already ships.
COORDINATES: dict[str, str] = {
    "delta-spark": f"io.delta:delta-spark_{SPARK_LINE}_2.13:{DELTA_VERSION}",
    "delta-storage": f"io.delta:delta-storage:{DELTA_VERSION}",
    "postgresql": "org.postgresql:postgresql:42.7.14",
}


class JarsMissingError(RuntimeError):
    """The jars were not fetched (run ``make setup``)."""


def jars_dir() -> Path:
    return Path(os.environ.get("RAKSHA_JARS_DIR", REPO_ROOT / "jars"))


def file_name(coordinates: str) -> str:
    """The file Ivy retrieves a module to: ``{org}_{artifact}-{version}.jar``."""
    org, artifact, version = coordinates.split(":")
    return f"{org}_{artifact}-{version}.jar"


def jar_paths(names: tuple[str, ...] = tuple(COORDINATES)) -> list[str]:
    """Absolute paths of the named jars; a missing one is an error that says how to fetch it."""
    folder = jars_dir()
    paths = [folder / file_name(COORDINATES[n]) for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise JarsMissingError(f"jars missing in {folder}: {', '.join(missing)} (run `make setup` once to fetch them)")
    return [str(p) for p in paths]


def fetch(folder: Path | None = None) -> list[Path]:
    """Fetch the jars into ``folder`` unless they are there already; returns their paths."""
    folder = folder or jars_dir()
    wanted = [folder / file_name(c) for c in COORDINATES.values()]
    if all(p.is_file() for p in wanted):
        return wanted
    folder.mkdir(parents=True, exist_ok=True)
    spark_home = Path(pyspark.__file__).parent
    with tempfile.TemporaryDirectory(prefix="raksha-ivy-") as tmp:
        noop = Path(tmp) / "noop.py"
        noop.write_text("pass\n")
        env = {**os.environ, "SPARK_HOME": str(spark_home), "PYSPARK_PYTHON": sys.executable}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        command = [
            str(spark_home / "bin" / "spark-submit"),
            "--master",
            "local[1]",
            "--conf",
            f"spark.jars.ivy={tmp}/ivy",
            "--packages",
            ",".join(COORDINATES.values()),
            str(noop),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        retrieved = Path(tmp) / "ivy" / "jars"
        for target in wanted:
            source = retrieved / target.name
            if not source.is_file():
                tail = "\n".join(done.stderr.splitlines()[-20:])
                raise JarsMissingError(f"could not fetch {target.name} (exit {done.returncode}):\n{tail}")
            shutil.copyfile(source, target)
    return wanted


def main() -> int:
    try:
        for path in fetch():
            print(f"jar {path}")
    except JarsMissingError as exc:
        print(f"raksha jars: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
