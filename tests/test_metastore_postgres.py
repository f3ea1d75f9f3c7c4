"""The Hive metastore on PostgreSQL: configuration, the schema made up front, a catalog two processes share."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import commands
import psycopg
import pytest
from conftest import test_config as config_under

from raksha.config import ConfigError
from raksha.platform import jars, local_postgres, metastore

PASSWORD_ENV = "RAKSHA_TEST_METASTORE_PASSWORD"


def new_database() -> str:
    return f"metastore_{uuid.uuid4().hex[:10]}"


def pg_config(root: Path, server, database: str, *sets: str):
    """A test configuration whose catalog is ``database`` on the test server (password in PASSWORD_ENV)."""
    return config_under(root, *server.config_sets(database), f"catalog.postgres.password_env={PASSWORD_ENV}", *sets)


@pytest.fixture
def password(postgres_server, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, postgres_server.password)
    return postgres_server.password


def tables_in(server, database: str) -> set[str]:
    with psycopg.connect(**server.conninfo(database)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


# --- configuration -------------------------------------------------------------------------------


def test_derby_is_the_default_and_its_settings_are_unchanged(tmp_path):
    cfg = config_under(tmp_path)
    metastore_dir = cfg.path("metastore")
    assert metastore.kind(cfg) == "derby"
    derby_url = f"jdbc:derby:;databaseName={metastore_dir}/metastore_db;create=true"
    assert metastore.spark_conf(cfg) == {
        "spark.hadoop.javax.jdo.option.ConnectionURL": derby_url,
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={metastore_dir}/derby.log",
    }
    assert metastore.ensure_schema(cfg) is False
    assert os.path.isdir(metastore_dir)
    # the configuration's own JVM options stay (they were replaced by Derby's log setting)
    tuned = config_under(tmp_path, "spark.conf.spark.driver.extraJavaOptions=-XX:+UseSerialGC")
    options = metastore.spark_conf(tuned)["spark.driver.extraJavaOptions"]
    assert options == f"-XX:+UseSerialGC -Dderby.stream.error.file={metastore_dir}/derby.log"


def test_postgres_settings_for_spark(tmp_path, monkeypatch):
    url = "jdbc:postgresql://db.example:6432/hms?sslmode=require"
    given = "/opt/extra.jar"
    cfg = config_under(
        tmp_path,
        "catalog.metastore=postgres",
        f"catalog.postgres.url={url}",
        "catalog.postgres.user=hive",
        f"spark.conf.spark.driver.extraClassPath={given}",
    )
    monkeypatch.delenv("RAKSHA_METASTORE_PASSWORD", raising=False)
    conf = metastore.spark_conf(cfg)
    driver_jar = jars.jar_paths(("postgresql",))[0]
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == url
    assert conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] == "hive"
    assert conf["spark.hadoop.datanucleus.schema.autoCreateAll"] == "false"
    assert conf["spark.hadoop.hive.metastore.schema.verification"] == "true"
    assert conf["spark.driver.extraClassPath"] == f"{given}{os.pathsep}{driver_jar}"
    assert "spark.hadoop.javax.jdo.option.ConnectionPassword" not in conf  # no password set: none passed

    monkeypatch.setenv("RAKSHA_METASTORE_PASSWORD", "s3cret")
    assert metastore.spark_conf(cfg)["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "s3cret"
    settings = metastore.postgres_settings(cfg)
    assert (settings.host, settings.port, settings.database, settings.options) == (
        "db.example",
        6432,
        "hms",
        {"sslmode": "require"},
    )


@pytest.mark.parametrize(
    ("sets", "key"),
    [
        (["catalog.metastore=mysql"], "catalog.metastore"),
        (["catalog.metastore=postgres", "catalog.postgres.url=jdbc:mysql://h/db"], "catalog.postgres.url"),
        (["catalog.metastore=postgres", "catalog.postgres.url=jdbc:postgresql://h:5432/"], "catalog.postgres.url"),
        (["catalog.metastore=postgres", "catalog.postgres.url=jdbc:postgresql://h:port/db"], "catalog.postgres.url"),
        (["catalog.metastore=postgres", "catalog.postgres.url=jdbc:postgresql://u:pw@h/db"], "catalog.postgres.url"),
        (["catalog.metastore=postgres", "catalog.postgres.user="], "catalog.postgres.user"),
        (["catalog.metastore=postgres", "catalog.postgres.password_env=not a name"], "catalog.postgres.password_env"),
    ],
)
def test_bad_metastore_settings_name_their_key(tmp_path, sets, key):
    pattern = key.replace(".", r"\.")
    try:
        cfg = config_under(tmp_path, *sets)
    except ConfigError as exc:  # its type or form is checked when the configuration is loaded
        assert re.search(pattern, str(exc)), exc
        return
    with pytest.raises(ConfigError, match=pattern):  # what only the metastore can tell (its parts)
        metastore.spark_conf(cfg)
    with pytest.raises(ConfigError, match=pattern):
        metastore.ensure_schema(cfg)


def test_unknown_postgres_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"catalog\.postgres\.pasword_env"):
        config_under(tmp_path, "catalog.postgres.pasword_env=X")


# --- the schema, up front ------------------------------------------------------------------------


def test_ensure_schema_creates_database_and_schema_once(tmp_path, postgres_server, password):
    database = new_database()
    cfg = pg_config(tmp_path, postgres_server, database)
    expected = metastore.schema_tables(metastore.schema_sql())
    assert {"DBS", "TBLS", "SDS", "PARTITIONS", "VERSION", "SEQUENCE_TABLE"} <= expected

    assert metastore.ensure_schema(cfg) is True
    assert tables_in(postgres_server, database) == expected
    with psycopg.connect(**postgres_server.conninfo(database)) as conn:
        assert conn.execute('SELECT "SCHEMA_VERSION" FROM "VERSION"').fetchall() == [("2.3.0",)]

    assert metastore.ensure_schema(cfg) is False  # a no-op the second time
    assert tables_in(postgres_server, database) == expected


def test_concurrent_first_starts_create_the_schema_once(tmp_path, postgres_server, password):
    cfg = pg_config(tmp_path, postgres_server, new_database())
    callers = 4
    barrier = threading.Barrier(callers)
    outcomes: list[object] = []

    def first_start() -> None:
        barrier.wait()
        try:
            outcomes.append(metastore.ensure_schema(cfg))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcomes.append(exc)

    threads = [threading.Thread(target=first_start) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # each thread its own connection: the database and the schema are made exactly once
    assert sorted(outcomes, key=repr) == [False] * (callers - 1) + [True]


def test_a_partial_schema_is_an_error(tmp_path, postgres_server, password):
    database = new_database()
    cfg = pg_config(tmp_path, postgres_server, database)
    with psycopg.connect(**postgres_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(**postgres_server.conninfo(database)) as conn:
        conn.execute('CREATE TABLE "DBS" ("DB_ID" int8 PRIMARY KEY)')
    with pytest.raises(metastore.MetastoreError, match=f"{database} as raksha holds part of a Hive schema"):
        metastore.ensure_schema(cfg)
    assert tables_in(postgres_server, database) == {"DBS"}


def test_a_wrong_password_says_where_and_why(tmp_path, postgres_server, monkeypatch):
    cfg = pg_config(tmp_path, postgres_server, new_database())
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(metastore.MetastoreError, match="password authentication failed"):
        metastore.ensure_schema(cfg)
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(metastore.MetastoreError, match=f"\\${PASSWORD_ENV} is not set"):
        metastore.ensure_schema(cfg)


def test_shipped_schema_is_what_the_wheels_jars_generate(postgres_server):
    """The DDL shipped in raksha/sql matches the Hive metastore mapping Spark runs (regenerate if not)."""
    scratch = new_database()
    with psycopg.connect(**postgres_server.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{scratch}"')
    url = postgres_server.jdbc_url_for(scratch)
    generated = metastore.generate_schema_sql(url, postgres_server.user, postgres_server.password)
    assert generated == metastore.schema_sql(), "run: python -m raksha.platform.metastore generate-ddl"
    assert tables_in(postgres_server, scratch) == set()  # SchemaTool only wrote the DDL


# --- the local server ----------------------------------------------------------------------------


def running_process(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_running_stops_the_server_on_an_exception():
    with tempfile.TemporaryDirectory(prefix="raksha-pg-") as tmp:
        os.chmod(tmp, 0o711)
        folder = Path(tmp) / "server"
        with pytest.raises(RuntimeError, match="boom"):
            with local_postgres.running(folder) as server:
                pid = local_postgres.postmaster_pid(folder)
                with psycopg.connect(**server.conninfo("postgres")) as conn:
                    assert conn.execute("SELECT inet_server_addr()::text").fetchone() == ("127.0.0.1/32",)
                raise RuntimeError("boom")
        assert pid is not None
        assert local_postgres.postmaster_pid(folder) is None
        assert not running_process(pid)

        # the command line: start (again: same password), a second start refused, stop
        assert local_postgres.main(["start", "--dir", str(folder)]) == 0
        try:
            info = json.loads((folder / "server.json").read_text())
            assert info["password"] == server.password
            with pytest.raises(local_postgres.AlreadyRunningError):
                local_postgres.start(folder)
            assert local_postgres.main(["start", "--dir", str(folder)]) == 0  # says so, and how to connect
        finally:
            assert local_postgres.main(["stop", "--dir", str(folder)]) == 0
        assert local_postgres.postmaster_pid(folder) is None


# --- two Spark processes, one catalog ------------------------------------------------------------

# Each runs in its own process: a JVM has one metastore, and the test run's shared session is Derby's.
WRITER = """
import json, sys
from raksha.config import load_config
from raksha.platform.session import build_session
sets, location = json.loads(sys.argv[1]), sys.argv[2]
spark = build_session(load_config(sets=sets), "metastore-writer")
print("SESSION", flush=True)
spark.sql("CREATE DATABASE IF NOT EXISTS shared")
spark.sql(
    "CREATE TABLE IF NOT EXISTS shared.t (a int, dt string) USING delta PARTITIONED BY (dt) "
    f"LOCATION '{location}'"
)
spark.sql("INSERT INTO shared.t VALUES (1, '2026-11-01'), (2, '2026-11-02')")
print("WRITTEN", flush=True)
sys.stdin.readline()  # the session stays open until the test has read through the other process
spark.stop()
"""

READER = """
import json, sys
from raksha.config import load_config
from raksha.platform.session import build_session
spark = build_session(load_config(sets=json.loads(sys.argv[1])), "metastore-reader")
print("SESSION", flush=True)
sys.stdin.readline()  # go: the writer has written
tables = [r.tableName for r in spark.sql("SHOW TABLES IN shared").collect()]
rows = spark.sql("SELECT a, dt FROM shared.t ORDER BY a").collect()
print("ROWS", json.dumps({"tables": tables, "rows": [list(r) for r in rows]}), flush=True)
spark.stop()
"""


class SparkProcess:
    """A python subprocess with a SparkSession; stdout lines are its protocol, stderr goes to a file."""

    def __init__(self, script: str, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            start_new_session=True,  # its JVM too is in its group: stop() ends them together
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        raise AssertionError(f"no {prefix!r} from the Spark process (exit {self.proc.poll()}):\n{tail}")

    def send(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        finally:
            self._selector.close()
            self._log.close()


def test_two_processes_share_one_catalog(tmp_path, postgres_server):
    """A second process reads, through the catalog, what the first wrote while the first keeps its session."""
    sets = [
        *postgres_server.config_sets(new_database()),
        f"catalog.postgres.password_env={PASSWORD_ENV}",
        "spark.master=local[1]",
        "spark.conf.spark.ui.enabled=false",
        "spark.conf.spark.sql.shuffle.partitions=1",
        "spark.conf.spark.driver.memory=1g",
    ]
    env = commands.environment(**{PASSWORD_ENV: postgres_server.password})  # short JVMs, as every command's
    repo_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")]))

    def process_sets(name: str) -> str:
        # each its own warehouse and (unused) Derby folder: the catalog is all they share
        cfg = config_under(tmp_path / name, *sets)
        return json.dumps([f"paths.{k}={v}" for k, v in cfg.data["paths"].items()] + sets)

    location = str(tmp_path / "shared_t")
    writer = SparkProcess(WRITER, [process_sets("writer"), location], env, tmp_path / "writer.log")
    reader = None
    try:
        writer.expect("SESSION", timeout=120)
        # the reader starts while the writer holds its session (Derby's catalog would refuse it)
        reader = SparkProcess(READER, [process_sets("reader")], env, tmp_path / "reader.log")
        writer.expect("WRITTEN", timeout=120)
        reader.expect("SESSION", timeout=120)
        assert writer.proc.poll() is None, "the writer must still hold its session"
        reader.send()
        seen = json.loads(reader.expect("ROWS", timeout=120))
        assert seen == {"tables": ["t"], "rows": [[1, "2026-11-01"], [2, "2026-11-02"]]}
        writer.send()  # now it may stop
    finally:
        for process in (reader, writer):
            if process is not None:
                process.stop()
    assert writer.proc.returncode == 0 and reader.proc.returncode == 0
