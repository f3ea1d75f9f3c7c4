"""``raksha sql-server`` and ``raksha connect-server`` as analysts use them, over a scored day.

Everything is real and separate, as on an analyst's machine: the day is scored by ``raksha score``
(its own JVM and Derby metastore under the test's folder, so the shared test session's catalog is not
involved), then the server runs as ``raksha sql-server`` / ``raksha connect-server`` on a free port,
and the clients are Spark's beeline, impyla, and pyspark's Spark Connect client in a Python process
without a JVM. Each server is stopped by SIGTERM to the command, as a scheduler or Ctrl-C stops it,
also when the test fails, and no process may be left behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import commands
import factories
import pytest
from conftest import test_config as config_under
from standalone import SPARK_HOME, free_port, processes_under

from raksha.config import Config
from raksha.synthetic import generate

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DAY = dt.date(2026, 11, 3)
SESSIONS = 400
TOKEN_ENV = "RAKSHA_CONNECT_TOKEN"
TOKEN = "test-token-7f3a9c"  # a token of this test's own server, on loopback
QUEUE_QUERY = f"select * from raksha.review_queue where dt = '{DAY}' order by case_rank, rank_in_case limit 20"
COUNT_QUERY = f"select count(*) as n from raksha.review_queue where dt = '{DAY}'"
SPARK_SETS = (
    "spark.master=local[2]",
    "spark.conf.spark.sql.shuffle.partitions=2",
    "spark.conf.spark.ui.enabled=false",
    "spark.conf.spark.driver.memory=1g",
)


@dataclass
class ScoredDay:
    root: Path
    cfg: Config
    sets: list[str]  # --set arguments of every command on this day's catalog
    queue: object  # the day's review_queue through delta-rs, in queue order
    scored_columns: list[str]  # scored_sessions' columns through delta-rs


@pytest.fixture(scope="module")
def scored_day(tmp_path_factory) -> ScoredDay:
    """A generated day scored with the shipped models into the database ``raksha`` of a Derby
    metastore of its own, by ``raksha score`` in its own JVM (which exits before a server starts)."""
    from deltalake import DeltaTable

    root = tmp_path_factory.mktemp("servers")
    cfg = config_under(root, "catalog.database=raksha", f"paths.models={MODELS}")
    generate(DAY, 1, SESSIONS, 0.1, 5, cfg.path("sessions"), cfg.path("actions"), cfg.path("labels"))
    sets = factories.cli_sets(cfg, f"paths.models={MODELS}", *SPARK_SETS)
    job = commands.raksha("score", "--date", DAY.isoformat(), *sets, cwd=root)
    assert job.returncode == 0, job.stderr[-3000:]
    queue = factories.read_table_day(cfg, "review_queue", DAY).sort_values(["case_rank", "rank_in_case"])
    assert len(queue) > 20  # the query's limit cuts the queue
    columns = [f.name for f in DeltaTable(str(Path(cfg.path("warehouse")) / "scored_sessions")).schema().fields]
    return ScoredDay(root, cfg, sets, queue.reset_index(drop=True), columns)


@dataclass
class RunningServer:
    process: subprocess.Popen
    stdout: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line.rstrip("\n"))
            if " ready in " in line:
                self.ready.set()


def _environment(**extra: str) -> dict[str, str]:
    env = commands.environment(SPARK_HOME=str(SPARK_HOME), **extra)
    if TOKEN_ENV not in extra:
        env.pop(TOKEN_ENV, None)
    return env


@contextlib.contextmanager
def server(command: str, port: int, day: ScoredDay, env: dict[str, str]) -> Iterator[RunningServer]:
    """``raksha COMMAND --port PORT`` over the day's catalog, once it says it is ready; stopped on exit
    (SIGTERM to the command, then, if anything of it is still there, SIGKILL by pid)."""
    log = day.root / f"{command}.log"
    with open(log, "wb") as errors:
        process = subprocess.Popen(
            [str(commands.BIN / "raksha"), command, "--port", str(port), *day.sets],
            cwd=day.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
    running = RunningServer(process)
    running.reader = threading.Thread(target=running.read, daemon=True)
    running.reader.start()
    try:
        deadline = time.monotonic() + 300
        while not running.ready.wait(0.5):
            assert process.poll() is None, f"{command} exited with {process.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{command} not ready after 300 s: {log.read_text()[-3000:]}"
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=90)
        for entry in processes_under(day.root):  # only what this test started runs in its folder
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(entry.split(":")[0]), signal.SIGKILL)
        process.wait()
        running.reader.join(timeout=10)


def stop_and_check_nothing_left(running: RunningServer, day: ScoredDay) -> None:
    """SIGTERM to the command stops the server, cleanly (exit 0), and leaves no process behind."""
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=90) == 0
    assert running.reader is not None
    running.reader.join(timeout=10)  # the command's last lines
    assert running.stdout[-1].endswith("stopped"), running.stdout
    assert processes_under(day.root) == []


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (``/proc/net/tcp`` and ``tcp6``; Java
    listens on IPv6 sockets, 127.0.0.1 as the IPv4-mapped ::ffff:127.0.0.1)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            if len(address) == 32 and address.startswith("0000000000000000FFFF0000"):
                address = address[24:]  # IPv4-mapped
            if len(address) == 8:  # an IPv4 address, its bytes in host order
                found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                found.add(address)
    return found


def beeline(url: str, *args: str, cwd: Path) -> list[str]:
    """beeline from the pyspark wheel; its stdout lines, tab-separated rows (tsv2: the reasons' JSON has
    commas, which csv2 leaves unquoted)."""
    done = subprocess.run(
        [str(SPARK_HOME / "bin" / "beeline"), "-u", url, "-n", "analyst", "--silent=true", "--outputformat=tsv2"]
        + list(args),
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    # the prompt of the first statement stays in front of its header, even when silent
    return [re.sub(r"^\d+: jdbc:hive2://\S+> ", "", line) for line in done.stdout.splitlines() if line.strip()]


def sections(lines: list[str], headers: list[str]) -> list[list[list[str]]]:
    """Split beeline's output into one table per header, by each table's first column name."""
    starts = [next(i for i, line in enumerate(lines) if line.split("\t")[0] == h) for h in headers]
    ends = [*starts[1:], len(lines)]
    return [[line.split("\t") for line in lines[s:e]] for s, e in zip(starts, ends, strict=True)]


def test_sql_server_serves_the_scored_day_to_beeline_and_impyla(scored_day):
    from impala.dbapi import connect

    expected = scored_day.queue.head(20)
    port = free_port()
    with server("sql-server", port, scored_day, _environment()) as running:
        url = f"jdbc:hive2://127.0.0.1:{port}/"
        assert any(url in line for line in running.stdout), running.stdout
        assert listening_addresses(port) == {"127.0.0.1"}  # loopback only

        lines = beeline(
            url, "-e", f"{QUEUE_QUERY}; {COUNT_QUERY}", "-e", "!columns scored_sessions", cwd=scored_day.root
        )
        queue, count, columns = sections(lines, ["case_rank", "n", "TABLE_CAT"])
        header, rows = queue[0], queue[1:]
        assert header == list(scored_day.queue.columns) + ["dt"]
        assert [r[header.index("session_id")] for r in rows] == list(expected["session_id"])
        assert [int(r[header.index("case_rank")]) for r in rows] == list(expected["case_rank"])
        assert [float(r[header.index("risk_score")]) for r in rows] == pytest.approx(list(expected["risk_score"]))
        assert count == [["n"], [str(len(scored_day.queue))]]
        metadata = [dict(zip(columns[0], row, strict=True)) for row in columns[1:]]
        assert {(m["TABLE_SCHEM"], m["TABLE_NAME"]) for m in metadata} == {("raksha", "scored_sessions")}
        assert [m["COLUMN_NAME"] for m in metadata] == scored_day.scored_columns

        # impyla, a Python DB-API client; the server's NONE authentication is SASL PLAIN, any name
        conn = connect(host="127.0.0.1", port=port, auth_mechanism="PLAIN", user="analyst", password="-", timeout=120)
        try:
            cursor = conn.cursor()
            cursor.execute(QUEUE_QUERY)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
            assert [r[names.index("session_id")] for r in rows] == list(expected["session_id"])
            assert [r[names.index("rank_in_case")] for r in rows] == list(expected["rank_in_case"])
            cursor.execute(COUNT_QUERY)
            assert cursor.fetchall() == [(len(scored_day.queue),)]
            # JDBC metadata (GetColumns), as BI tools list a table's columns
            schema = cursor.get_table_schema("scored_sessions", "raksha")
            assert [name for name, _ in schema] == scored_day.scored_columns
            assert dict(schema)["risk_score"] == "DOUBLE" and dict(schema)["session_start"] == "TIMESTAMP"
        finally:
            conn.close()

        stop_and_check_nothing_left(running, scored_day)


CONNECT_CLIENT = """
import json, os, pathlib, sys
sys.path.insert(0, sys.argv[3])
from pyspark import SparkContext
from pyspark.sql import SparkSession

from notebook_cells import execute

port, params = sys.argv[1], json.loads(sys.argv[2])
spark = SparkSession.builder.remote(f"sc://localhost:{port}/;token={params['token']}").getOrCreate()
queue = [row.session_id for row in spark.sql(params["queue_query"]).collect()]
count = spark.sql(params["count_query"]).first()["n"]
# the analyst notebook, its REMOTE given: it reads the token from the environment
ns = execute(pathlib.Path(params["notebook"]), params["notebook_parameters"])
# last: a session made without the token, or with another, is refused at its first request
refused = {}
for name, url in (("no token", f"sc://localhost:{port}/"), ("wrong token", f"sc://localhost:{port}/;token=wrong")):
    try:
        SparkSession.builder.remote(url).create().sql("select 1").collect()
        refused[name] = None
    except Exception as exc:
        refused[name] = str(exc)
print("RESULT " + json.dumps({
    "refused": refused, "queue": queue, "count": count, "local_jvm": SparkContext._gateway is not None,
    "notebook_queue": list(ns["queue"]["session_id"]),
    "notebook_decisions": dict(zip(ns["decisions"]["decision"], map(int, ns["decisions"]["sessions"]))),
    "notebook_truth_rows": len(ns["truth"]),
}))
"""


def test_connect_server_needs_its_token_and_serves_builder_remote(scored_day):
    port = free_port()
    refused = commands.raksha("connect-server", "--port", str(port), *scored_day.sets, cwd=scored_day.root)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "raksha connect-server: error: $RAKSHA_CONNECT_TOKEN is not set: the Spark Connect server starts only "
        "with a token (servers.connect.token_env names the variable; clients give it as ;token=...)"
    ]
    assert processes_under(scored_day.root) == []

    with server("connect-server", port, scored_day, _environment(**{TOKEN_ENV: TOKEN})) as running:
        assert any(f"sc://localhost:{port}/" in line for line in running.stdout), running.stdout
        assert not any(TOKEN in line for line in running.stdout)  # the token is never printed
        assert listening_addresses(port) == {"127.0.0.1"}
        params = {
            "token": TOKEN,
            "queue_query": QUEUE_QUERY,
            "count_query": COUNT_QUERY,
            "notebook": str(REPO / "notebooks" / "analyst.ipynb"),
            "notebook_parameters": {
                "WORKDIR": str(scored_day.root),
                "DAY": DAY.isoformat(),
                "DATABASE": "raksha",
                "REMOTE": f"sc://localhost:{port}",
            },
        }
        client = subprocess.run(
            [sys.executable, "-c", CONNECT_CLIENT, str(port), json.dumps(params), str(Path(__file__).parent)],
            cwd=scored_day.root,
            env=_environment(**{TOKEN_ENV: TOKEN}),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert client.returncode == 0, client.stderr[-3000:]
        result = json.loads(next(x for x in client.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT ") :])

        assert "No authentication token provided" in result["refused"]["no token"]
        assert "Invalid authentication token" in result["refused"]["wrong token"]
        expected = scored_day.queue.head(20)
        assert result["queue"] == list(expected["session_id"])
        assert result["count"] == len(scored_day.queue)
        assert not result["local_jvm"]  # a Spark Connect client only
        # the analyst notebook against the served catalog: the same day as the tables hold
        assert result["notebook_queue"] == list(expected["session_id"])
        scored = factories.read_table_day(scored_day.cfg, "scored_sessions", DAY)
        assert result["notebook_decisions"] == scored["decision"].value_counts().to_dict()
        assert result["notebook_truth_rows"] > 0

        stop_and_check_nothing_left(running, scored_day)
