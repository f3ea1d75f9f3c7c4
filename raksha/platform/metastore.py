"""The Hive metastore behind the catalog: embedded Derby (the default) or PostgreSQL (shared).

``catalog.metastore: derby`` keeps the catalog in an embedded Derby database under
``paths.metastore``: nothing to set up, but one process at a time (a second session fails to boot
Derby while the first holds it). ``catalog.metastore: postgres`` keeps it in the PostgreSQL database
of ``catalog.postgres.url``, so analysts' sessions and the nightly job share one catalog while the
job writes; the password comes from the environment variable ``catalog.postgres.password_env``.

The Hive client inside Spark (Hive 2.3.10) would create its tables itself with
``datanucleus.schema.autoCreateAll``, but on an empty PostgreSQL database that deadlocked once (an
``ALTER TABLE ... ADD CONSTRAINT`` waiting on another pooled connection's idle ``INSERT``). So
``ensure_schema`` creates the database and the whole schema once, up front, before the first
session, in one transaction, under an advisory lock (two processes starting at once: one creates,
the other waits and finds it); sessions then run with ``autoCreateAll`` off and Hive's schema
verification on, so a missing or foreign schema fails at start with a clear message.

The schema is ``raksha/sql/hive-schema-2.3.0.postgres.sql``: the DDL DataNucleus derives from the
metastore's own mapping (``package.jdo`` in the wheel's ``hive-metastore-2.3.10.jar``) for
PostgreSQL, which is exactly what ``autoCreateAll`` would have created, plus DataNucleus' id table and
Hive's version row. ``python -m raksha.platform.metastore generate-ddl`` regenerates it from the installed
jars (a test checks that the shipped file matches them).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyspark

from raksha.config import Config, ConfigError
from raksha.platform import jars

log = logging.getLogger(__name__)

KINDS = ("derby", "postgres")
JDBC_DRIVER = "org.postgresql.Driver"
SCHEMA_FILE = "hive-schema-2.3.0.postgres.sql"
SCHEMA_VERSION = "2.3.0"  # what Hive 2.3.10's MetaStoreSchemaInfo expects in "VERSION"
HIVE_METASTORE_JAR = "hive-metastore-2.3.10.jar"
# pg_advisory_xact_lock key of the schema creation: "raksha" + 0x0001
SCHEMA_LOCK_KEY = 0x72616B736861_0001
_TABLE = re.compile(r'^CREATE TABLE "([A-Z0-9_]+)"', re.MULTILINE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MetastoreError(RuntimeError):
    """The configured metastore cannot be reached or its schema cannot be made ready."""


class _MissingDatabaseError(MetastoreError):
    """The server answers, the database is not there (yet)."""


@dataclass(frozen=True)
class PostgresSettings:
    """``catalog.postgres.*``, resolved: where the metastore database is and who connects."""

    url: str
    host: str
    port: int
    database: str
    user: str
    password_env: str
    password: str | None
    options: dict[str, str]  # psycopg keywords from the URL's query (sslmode, connect_timeout, options)

    def conninfo(self, database: str | None = None) -> dict[str, object]:
        """Keyword arguments for ``psycopg.connect``."""
        info: dict[str, object] = {"host": self.host, "port": self.port, "dbname": database or self.database}
        info["user"] = self.user
        if self.password is not None:
            info["password"] = self.password
        return {**info, **self.options}

    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.database} as {self.user}"


def kind(cfg: Config) -> str:
    """``catalog.metastore``: derby or postgres."""
    value = cfg.get("catalog.metastore", "derby")
    if value not in KINDS:
        raise ConfigError(f"catalog.metastore: expected one of {', '.join(KINDS)}, got {value!r}")
    return value


def postgres_settings(cfg: Config) -> PostgresSettings:
    """``catalog.postgres.*`` checked: a ``jdbc:postgresql://host[:port]/database`` URL, a user, an env var name."""
    url = cfg.get("catalog.postgres.url")
    if not isinstance(url, str) or not url.startswith("jdbc:postgresql://"):
        raise ConfigError(f"catalog.postgres.url: expected jdbc:postgresql://HOST[:PORT]/DATABASE, got {url!r}")
    parts = urlsplit(url[len("jdbc:") :])
    database = parts.path.lstrip("/")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ConfigError(f"catalog.postgres.url: bad port in {url!r}") from None
    if not parts.hostname or "," in parts.netloc or not database or "/" in database:
        raise ConfigError(f"catalog.postgres.url: expected jdbc:postgresql://HOST[:PORT]/DATABASE, got {url!r}")
    if parts.username or parts.password:
        raise ConfigError("catalog.postgres.url: no user or password in the URL (catalog.postgres.user, .password_env)")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query):
        if key == "sslmode":
            options["sslmode"] = value
        elif key == "ssl" and value.lower() == "true":
            options.setdefault("sslmode", "require")
        elif key == "connectTimeout":
            options["connect_timeout"] = value
        elif key == "currentSchema":
            options["options"] = f"-c search_path={value}"
        elif key in ("user", "password"):
            raise ConfigError(f"catalog.postgres.url: no {key} in the URL (catalog.postgres.user, .password_env)")
    user = cfg.get("catalog.postgres.user")
    if not isinstance(user, str) or not user:
        raise ConfigError(f"catalog.postgres.user: expected a PostgreSQL role name, got {user!r}")
    password_env = cfg.get("catalog.postgres.password_env")
    if not isinstance(password_env, str) or not _ENV_NAME.match(password_env):
        raise ConfigError(f"catalog.postgres.password_env: expected an environment variable name, got {password_env!r}")
    password = os.environ.get(password_env)
    return PostgresSettings(url, parts.hostname, port, database, user, password_env, password, options)


def spark_conf(cfg: Config) -> dict[str, str]:
    """The SparkSession builder settings of the configured metastore.

    PostgreSQL: the JDBC driver jar also goes on ``spark.driver.extraClassPath`` (after any the
    configuration gives), because the Hive client's DataNucleus loads the driver from the JVM's
    class path, where ``spark.jars`` is not. That setting only takes effect when this process starts
    the JVM; under spark-submit pass ``--driver-class-path`` with the jar instead.
    """
    if kind(cfg) == "derby":
        metastore = cfg.path("metastore")
        derby_url = f"jdbc:derby:;databaseName={metastore}/metastore_db;create=true"
        given = str((cfg.get("spark.conf") or {}).get("spark.driver.extraJavaOptions") or "")
        return {  # the configuration's own JVM options kept, Derby's log file added
            "spark.hadoop.javax.jdo.option.ConnectionURL": derby_url,
            "spark.driver.extraJavaOptions": f"{given} -Dderby.stream.error.file={metastore}/derby.log".strip(),
        }
    settings = postgres_settings(cfg)
    driver_jar = jars.jar_paths(("postgresql",))[0]
    given = str((cfg.get("spark.conf") or {}).get("spark.driver.extraClassPath") or "")
    class_path = [p for p in given.split(os.pathsep) if p and p != driver_jar] + [driver_jar]
    conf = {
        "spark.hadoop.javax.jdo.option.ConnectionURL": settings.url,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": JDBC_DRIVER,
        "spark.hadoop.javax.jdo.option.ConnectionUserName": settings.user,
        # ensure_schema made the schema: never let DataNucleus create tables (see the module docstring)
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
        "spark.hadoop.datanucleus.fixedDatastore": "true",
        # Hive checks "VERSION" against its own 2.3.0 at start: a missing or foreign schema fails loudly
        "spark.hadoop.hive.metastore.schema.verification": "true",
        "spark.driver.extraClassPath": os.pathsep.join(class_path),
    }
    if settings.password is not None:
        # Spark redacts *password* keys in its UI and logs
        conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = settings.password
    return conf


def schema_sql() -> str:
    """The shipped DDL of the Hive 2.3 metastore on PostgreSQL."""
    return resources.files("raksha.platform").joinpath("sql", SCHEMA_FILE).read_text(encoding="utf-8")


def schema_tables(sql: str) -> set[str]:
    return set(_TABLE.findall(sql))


def ensure_schema(cfg: Config) -> bool:
    """Make the configured metastore ready for a first session; True when this call created its schema.

    Derby: the folder under ``paths.metastore`` (Derby creates its database itself). PostgreSQL: the
    database of ``catalog.postgres.url`` if missing, then, once, the Hive schema (idempotent, safe
    when several processes start at once). A database holding only part of the schema is an error.
    """
    if kind(cfg) == "derby":
        metastore = cfg.path("metastore")
        if "://" not in metastore:
            os.makedirs(metastore, exist_ok=True)
        return False
    return _ensure_postgres_schema(postgres_settings(cfg))


def _connect(settings: PostgresSettings, database: str | None = None, **kwargs: object):
    import psycopg

    try:
        return psycopg.connect(**settings.conninfo(database), **kwargs)
    except psycopg.OperationalError as exc:
        detail = " ".join(str(exc).split())
        if settings.password is None:
            detail += f" (no password: ${settings.password_env} is not set)"
        missing = f'database "{database or settings.database}" does not exist' in detail
        raise (_MissingDatabaseError if missing else MetastoreError)(
            f"metastore database {settings.where()}: {detail}"
        ) from None


def _ensure_database(settings: PostgresSettings) -> None:
    """Create the metastore database unless it exists (a concurrent creator's win is fine)."""
    import psycopg
    from psycopg import errors, sql

    try:
        _connect(settings).close()
        return
    except _MissingDatabaseError:
        pass
    log.info("creating metastore database %s on %s:%s", settings.database, settings.host, settings.port)
    with _connect(settings, "postgres", autocommit=True) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass  # created meanwhile by another process
        except psycopg.Error as exc:
            raise MetastoreError(f"cannot create metastore database {settings.where()}: {exc}") from None


def _ensure_postgres_schema(settings: PostgresSettings) -> bool:
    import psycopg

    _ensure_database(settings)
    ddl = schema_sql()
    expected = schema_tables(ddl)
    with _connect(settings) as conn:
        try:
            # one creator at a time; the lock ends with this transaction
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
            present = {name for (name,) in rows} & expected
            if present == expected:
                log.debug("metastore schema present in %s", settings.where())
                return False
            if present:
                missing = sorted(expected - present)
                raise MetastoreError(
                    f"metastore database {settings.where()} holds part of a Hive schema "
                    f"({len(present)} of {len(expected)} tables; missing {', '.join(missing[:5])}"
                    f"{', ...' if len(missing) > 5 else ''}): repair it or use an empty database"
                )
            log.info("creating the Hive %s metastore schema in %s", SCHEMA_VERSION, settings.where())
            conn.execute(ddl)
            conn.commit()
            return True
        except psycopg.Error as exc:
            raise MetastoreError(f"metastore schema in {settings.where()}: {' '.join(str(exc).split())}") from None


# --- the shipped DDL, regenerated from the wheel's jars --------------------------------------------

_HEADER = """\
-- The Hive 2.3 metastore schema (schema version {version}) for PostgreSQL, as raksha ships it.
--
-- Generated by `python -m raksha.platform.metastore generate-ddl`: DataNucleus SchemaTool (the one in the
-- pyspark wheel) run over the metastore's JDO mapping, package.jdo in {jar}, with
-- Hive's DataNucleus settings, against PostgreSQL. That is the DDL datanucleus.schema.autoCreateAll
-- would run, all of it up front. Added below the generated part: DataNucleus' id table and the
-- VERSION row Hive's schema verification reads. Not Apache Hive's hive-schema-2.3.0.postgres.sql
-- (no ACID transaction tables: Spark does not use them).
--
-- The mapping it derives from is Apache Hive's (Apache License 2.0, https://hive.apache.org/).
-- raksha.platform.metastore.ensure_schema runs this file once, in one transaction. Do not edit by hand.
"""

_FOOTER = """
-- DataNucleus' value-generation table (useLegacyNativeValueStrategy); it would create it lazily
CREATE TABLE "SEQUENCE_TABLE"
(
    "SEQUENCE_NAME" varchar(255) NOT NULL,
    "NEXT_VAL" int8 NOT NULL,
    CONSTRAINT "SEQUENCE_TABLE_PK" PRIMARY KEY ("SEQUENCE_NAME")
);

-- Record the schema version; hive.metastore.schema.verification compares it with Hive's own
INSERT INTO "VERSION" ("VER_ID", "SCHEMA_VERSION", "VERSION_COMMENT")
    VALUES (1, '{version}', 'Hive release version {version}');
"""

# Hive's own DataNucleus settings (HiveConf defaults of Hive 2.3.10) that shape the DDL
_DATANUCLEUS_PROPS = {
    "javax.jdo.PersistenceManagerFactoryClass": "org.datanucleus.api.jdo.JDOPersistenceManagerFactory",
    "datanucleus.storeManagerType": "rdbms",
    "datanucleus.identifierFactory": "datanucleus1",
    "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
    "datanucleus.rdbms.initializeColumnInfo": "NONE",
    "datanucleus.transactionIsolation": "read-committed",
    "datanucleus.cache.level2": "false",
    "datanucleus.cache.level2.type": "none",
    "datanucleus.plugin.pluginRegistryBundleCheck": "LOG",
}


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise MetastoreError("java not found (set JAVA_HOME)")
    return found


def generate_schema_sql(jdbc_url: str, user: str, password: str) -> str:
    """The schema DDL from the wheel's jars; ``jdbc_url`` names a scratch PostgreSQL database."""
    spark_jars = Path(pyspark.__file__).parent / "jars"
    class_path = [str(p) for p in sorted(spark_jars.glob("*.jar"))] + jars.jar_paths(("postgresql",))
    with tempfile.TemporaryDirectory(prefix="raksha-ddl-") as tmp:
        with zipfile.ZipFile(spark_jars / HIVE_METASTORE_JAR) as jar:
            jar.extract("package.jdo", tmp)
        props = {
            **_DATANUCLEUS_PROPS,
            "javax.jdo.option.ConnectionURL": jdbc_url,
            "javax.jdo.option.ConnectionDriverName": JDBC_DRIVER,
            "javax.jdo.option.ConnectionUserName": user,
            "javax.jdo.option.ConnectionPassword": password,
        }
        props_file = Path(tmp) / "datanucleus.properties"
        fd = os.open(props_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in props.items())
        out = Path(tmp) / "schema.sql"
        command = [_java(), "-cp", os.pathsep.join(class_path), "org.datanucleus.store.schema.SchemaTool"]
        command += ["-create", "-api", "JDO", "-completeDdl", "-ddlFile", str(out), "-props", str(props_file)]
        command += ["package.jdo"]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise MetastoreError(f"DataNucleus SchemaTool failed (exit {done.returncode}):\n{tail}")
        generated = out.read_text(encoding="utf-8")
    # its one line that changes from run to run
    generated = re.sub(
        r"^-- DataNucleus SchemaTool \(ran at [^)]*\)$", "-- DataNucleus SchemaTool", generated, flags=re.M
    )
    body = generated.rstrip() + "\n"
    version = SCHEMA_VERSION
    return _HEADER.format(version=version, jar=HIVE_METASTORE_JAR) + "\n" + body + _FOOTER.format(version=version)


def generate_with_local_server() -> str:
    """``generate_schema_sql`` against a throwaway local server (raksha.platform.local_postgres)."""
    import psycopg

    from raksha.platform import local_postgres

    with tempfile.TemporaryDirectory(prefix="raksha-ddl-pg-") as tmp:
        os.chmod(tmp, 0o711)  # the server's own user passes through it when we are root
        with local_postgres.running(Path(tmp) / "server") as server:
            with psycopg.connect(**server.conninfo("postgres"), autocommit=True) as admin:
                admin.execute("CREATE DATABASE ddl_scratch")
            url = f"jdbc:postgresql://{server.host}:{server.port}/ddl_scratch"
            return generate_schema_sql(url, server.user, server.password)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raksha.platform.metastore", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate-ddl", help="regenerate the shipped PostgreSQL schema from the jars")
    default_out = Path(__file__).parent / "sql" / SCHEMA_FILE
    generate.add_argument("--out", default=str(default_out), help=f"where to write it (default {default_out})")
    args = parser.parse_args(argv)
    try:
        text = generate_with_local_server()
    except MetastoreError as exc:
        print(f"raksha metastore: error: {exc}", file=sys.stderr)
        return 1
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(schema_tables(text))} tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
