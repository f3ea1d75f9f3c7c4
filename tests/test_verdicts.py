"""``raksha label``: analysts' verdicts checked row by row, landed idempotently, the latest winning."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import factories
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from delta.tables import DeltaTable

from raksha import cli
from raksha.feedback import reports, verdict_file, verdict_merge, verdicts
from raksha.feedback.verdict_file import VerdictFileError
from raksha.platform import locks, runs, tables

DAY = dt.date(2026, 3, 2)
DAY2 = DAY + dt.timedelta(days=1)
HEADER = "session_id,dt,verdict,analyst,reviewed_at,note\n"


@pytest.fixture
def scored_cfg(spark, cfg):
    """scored_sessions holding s1..s6 on DAY and t1..t3 on DAY2 (nothing on other days)."""
    for day, ids in ((DAY, [f"s{i}" for i in range(1, 7)]), (DAY2, ["t1", "t2", "t3"])):
        run_id = runs.new_run_id("score")
        tables.publish_day(spark, cfg, "scored_sessions", factories.scored_rows(spark, day, ids, run_id), day, run_id)
    return cfg


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _table(spark, cfg) -> pd.DataFrame:
    frame = spark.table(tables.table_name(cfg, "verdicts")).toPandas()
    return frame.sort_values(["dt", "session_id"]).reset_index(drop=True)


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _commits(spark, cfg) -> list[tuple[int, str, str | None]]:
    """(version, operation, run_id in its metadata) for every commit of the verdicts table, oldest first."""
    history = DeltaTable.forName(spark, tables.table_name(cfg, "verdicts")).history()
    out = []
    for row in history.select("version", "operation", "userMetadata").orderBy("version").collect():
        meta = json.loads(row["userMetadata"]) if row["userMetadata"] else {}
        out.append((int(row["version"]), row["operation"], meta.get("run_id")))
    return out


def _lock_left_free(cfg, key: str) -> None:
    """No entry of the lock is left held: its folder holds nothing, or only the release of the last holder."""
    folder = Path(locks.lock_folder(cfg, key))
    entries = sorted(folder.iterdir()) if folder.exists() else []
    assert len(entries) <= 1, entries
    for entry in entries:
        assert json.loads(entry.read_text()).get("released") is True, entry


def test_rejected_rows_are_reported_by_line_with_every_reason_and_the_valid_rows_land(
    spark, scored_cfg, tmp_path, capsys
):
    text = HEADER + (
        "s1,2026-03-02,fraud,asha,2026-03-03T09:00:00Z,confirmed with the customer\n"  # 2: valid
        "s2,2026-03-02,maybe,asha,2026-03-03T09:05:00Z,\n"  # 3
        's3,2026-03-02, Legit ,ravi,2026-03-03T09:10:00+05:30,"two\nlines"\n'  # 4-5: valid
        "s4,2026-02-30,legit,ravi,2026-03-03T09:00:00Z,\n"  # 6
        "s5,2026-03-02,legit,,2026-03-03T09:00:00Z,\n"  # 7
        "zz,2026-03-02,fraud,asha,2026-03-03T09:00:00Z,\n"  # 8
        "s6,2026-03-05,fraud,asha,2026-03-06T09:00:00Z,\n"  # 9
        "s6,2026-03-02,fraud,asha,yesterday,\n"  # 10
        ",2026-03-02,unsure, ,2026-03-03,\n"  # 11
        "\n"  # 12: blank, skipped
        "t1,2026-03-03,unsure,asha,2026-03-03T08:00:00,\n"  # 13: valid (no offset: UTC)
        "s6,2026-03-02,fraud,asha,2026-03-01T23:59:00Z,\n"  # 14
        "s6,2026-03-02,fraud,asha,2099-01-01T00:00:00Z,\n"  # 15
        "s6,2026-03-02,fraud,asha,2026-03-03T09:00:00Z,,surplus\n"  # 16
    )
    report = verdicts.label(spark, scored_cfg, _write(tmp_path, "verdicts.csv", text))

    assert [(r.line, r.session_id, r.dt, r.reasons) for r in report.rejected] == [
        (3, "s2", "2026-03-02", ("unknown verdict 'maybe' (expected one of fraud, legit, unsure)",)),
        (6, "s4", "2026-02-30", ("bad dt '2026-02-30' (expected a date YYYY-MM-DD)",)),
        (7, "s5", "2026-03-02", ("missing analyst",)),
        (8, "zz", "2026-03-02", ("session zz is not in scored_sessions for dt 2026-03-02",)),
        (9, "s6", "2026-03-05", ("no scored_sessions for dt 2026-03-05 (score that day first)",)),
        (
            10,
            "s6",
            "2026-03-02",
            ("bad reviewed_at 'yesterday' (expected an ISO 8601 timestamp, e.g. 2026-11-02T09:30:00Z)",),
        ),
        (11, None, "2026-03-02", ("missing session_id", "missing analyst")),
        (14, "s6", "2026-03-02", ("reviewed_at 2026-03-01T23:59:00Z is before the session's day 2026-03-02",)),
        (15, "s6", "2026-03-02", ("reviewed_at 2099-01-01T00:00:00Z is in the future",)),
        (16, "s6", "2026-03-02", ("1 more field(s) than the header has",)),
    ]
    assert (report.rows_read, report.valid_rows) == (13, 3)
    assert report.days == {
        "2026-03-02": {"rows": 2, "new": 2, "changed": 0, "no_effect": 0},
        "2026-03-03": {"rows": 1, "new": 1, "changed": 0, "no_effect": 0},
    }

    landed = _table(spark, scored_cfg)
    assert landed[["dt", "session_id", "verdict", "analyst", "note", "source_line"]].values.tolist() == [
        ["2026-03-02", "s1", "fraud", "asha", "confirmed with the customer", 2],
        ["2026-03-02", "s3", "legit", "ravi", "two\nlines", 4],
        ["2026-03-03", "t1", "unsure", "asha", None, 13],
    ]
    assert list(landed["reviewed_at"]) == [
        pd.Timestamp("2026-03-03 09:00:00"),
        pd.Timestamp("2026-03-03 03:40:00"),  # +05:30 in UTC
        pd.Timestamp("2026-03-03 08:00:00"),
    ]
    assert (landed["run_id"] == report.run_id).all()
    assert set(landed["source_file"]) == {str(tmp_path / "verdicts.csv")}
    # a reader outside Spark (delta-rs) sees the table's rows
    direct = factories.read_table_day(scored_cfg, "verdicts", "2026-03-02")
    assert sorted(direct["session_id"]) == ["s1", "s3"]

    reports.print_label_report(report)
    out = capsys.readouterr().out
    assert "13 rows read, 3 valid, 10 rejected" in out
    assert "the valid rows landed all the same" in out
    assert "line 8 [session zz, dt 2026-03-02]: session zz is not in scored_sessions for dt 2026-03-02" in out
    assert "line 11: missing session_id; missing analyst" in out


def test_the_same_file_twice_changes_nothing(spark, scored_cfg, tmp_path, capsys):
    path = _write(
        tmp_path,
        "verdicts.csv",
        HEADER + "s1,2026-03-02,fraud,asha,2026-03-03T09:00:00Z,x\ns2,2026-03-02,legit,ravi,2026-03-03T10:00:00Z,\n",
    )
    first = verdicts.label(spark, scored_cfg, path)
    assert (first.new, first.changed) == (2, 0)
    table_folder = Path(scored_cfg.path("warehouse")) / "verdicts"
    before = _tree(table_folder)
    rows_before = _table(spark, scored_cfg)
    commits_before = _commits(spark, scored_cfg)

    again = verdicts.label(spark, scored_cfg, path)
    assert (again.new, again.changed, again.valid_rows, again.rejected) == (0, 0, 2, [])
    assert again.days == {"2026-03-02": {"rows": 2, "new": 0, "changed": 0, "no_effect": 2}}
    assert _commits(spark, scored_cfg) == commits_before  # no new Delta version
    assert _tree(table_folder) == before  # not one file rewritten, the log included
    pd.testing.assert_frame_equal(_table(spark, scored_cfg), rows_before)
    reports.print_label_report(again)
    assert "nothing changed" in capsys.readouterr().out


def test_the_latest_verdict_wins_across_files(spark, scored_cfg, tmp_path):
    first = _write(
        tmp_path,
        "monday.csv",
        HEADER
        + "s1,2026-03-02,legit,asha,2026-03-03T10:00:00Z,\n"
        + "s2,2026-03-02,legit,asha,2026-03-03T10:00:00Z,\n"
        + "s3,2026-03-02,fraud,asha,2026-03-03T10:00:00Z,\n",
    )
    second = _write(
        tmp_path,
        "tuesday.csv",
        HEADER
        + "s1,2026-03-02,fraud,ravi,2026-03-03T09:00:00Z,older: loses\n"
        + "s2,2026-03-02,fraud,ravi,2026-03-03T11:00:00Z,newer: wins\n"
        + "s3,2026-03-02,legit,ravi,2026-03-03T10:00:00Z,a tie never clears fraud\n"
        + "s4,2026-03-02,unsure,ravi,2026-03-03T12:00:00Z,\n"
        + "s4,2026-03-02,legit,ravi,2026-03-03T12:30:00Z,later in the same file\n",
    )
    earlier = verdicts.label(spark, scored_cfg, first)
    before = _commits(spark, scored_cfg)
    report = verdicts.label(spark, scored_cfg, second)
    assert report.days == {"2026-03-02": {"rows": 5, "new": 1, "changed": 1, "no_effect": 3}}
    landed = _table(spark, scored_cfg)
    assert landed[["session_id", "verdict", "analyst", "source_file", "source_line"]].values.tolist() == [
        ["s1", "legit", "asha", first, 2],
        ["s2", "fraud", "ravi", second, 3],
        ["s3", "fraud", "asha", first, 4],
        ["s4", "legit", "ravi", second, 6],
    ]
    # each file landed by one MERGE commit naming its label run; no lock left held
    after = _commits(spark, scored_cfg)
    assert before[-1][1:] == ("MERGE", earlier.run_id)
    assert after[:-1] == before and after[-1] == (before[-1][0] + 1, "MERGE", report.run_id)
    for key in (locks.date_key("verdicts", DAY), locks.commit_key("verdicts")):
        _lock_left_free(scored_cfg, key)


def _rows(*rows) -> pd.DataFrame:
    columns = ["session_id", "verdict", "analyst", "reviewed_at", "note", "source_file", "source_line"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["reviewed_at"] = pd.to_datetime(frame["reviewed_at"])
    return frame


def test_the_winner_does_not_depend_on_the_order_files_arrive_in():
    a = _rows(
        ("s1", "legit", "asha", "2026-03-03 10:00", None, "a", 2),
        ("s2", "legit", "ravi", "2026-03-03 10:00", "n", "a", 3),
        ("s3", "unsure", "asha", "2026-03-03 10:00", None, "a", 4),
    )
    b = _rows(
        ("s1", "unsure", "ravi", "2026-03-03 10:00", None, "b", 2),  # tie: unsure beats legit
        ("s2", "legit", "asha", "2026-03-03 10:00", "n", "b", 3),  # tie, same verdict: analyst order
        ("s3", "fraud", "ravi", "2026-03-03 09:59", None, "b", 4),  # older
    )
    empty = a.iloc[0:0]
    content = ["session_id", "verdict", "analyst", "reviewed_at", "note"]

    def merged(first, second):
        step = verdict_merge.merge_verdicts(verdict_merge.merge_verdicts(empty, first).drop(columns="_origin"), second)
        return step[content].sort_values("session_id").reset_index(drop=True)

    ab, ba = merged(a, b), merged(b, a)
    pd.testing.assert_frame_equal(ab, ba)
    assert ab[["session_id", "verdict", "analyst"]].values.tolist() == [
        ["s1", "unsure", "ravi"],
        ["s2", "legit", "asha"],
        ["s3", "unsure", "asha"],
    ]


def test_settle_counts_what_each_day_changes():
    existing = _rows(("s1", "legit", "asha", "2026-03-03 10:00", None, "a", 2)).assign(dt=DAY)
    valid = _rows(
        ("s1", "fraud", "ravi", "2026-03-03 11:00", None, "b", 2),  # later: changes s1
        ("s2", "legit", "ravi", "2026-03-03 11:00", None, "b", 3),  # a new session
        ("s2", "legit", "ravi", "2026-03-03 09:00", None, "b", 4),  # older than line 3: no effect
        ("t1", "unsure", "ravi", "2026-03-04 11:00", None, "b", 5),
    ).assign(dt=[DAY, DAY, DAY, DAY2])
    winners, days = verdict_merge.settle(existing, valid)
    assert days == {
        str(DAY): {"rows": 3, "new": 1, "changed": 1, "no_effect": 1},
        str(DAY2): {"rows": 1, "new": 1, "changed": 0, "no_effect": 0},
    }
    assert winners[["dt", "session_id", "source_line"]].values.tolist() == [
        [DAY, "s1", 2],
        [DAY, "s2", 3],
        [DAY2, "t1", 5],
    ]
    again, days = verdict_merge.settle(winners.drop(columns="_origin"), valid)  # the same rows once more
    assert again.empty and sum(d["no_effect"] for d in days.values()) == len(valid)


def test_rows_are_checked_without_spark():
    """Every check but the one against scored_sessions, on the file's bytes alone."""
    text = HEADER + (
        "s1,2026-03-02,fraud,asha,2026-03-03T09:00:00Z,\n"  # 2: valid
        's2,2026-03-02, Legit ,ravi,2026-03-03T09:10:00+05:30,"two\nlines"\n'  # 3-4: valid
        "s3,2026-03-02,maybe,,2026-03-03,\n"  # 5
        ",2026-03-32,legit,asha,2026-03-01T23:00:00Z,\n"  # 6
        "s4,,fraud,asha,2026-03-11T00:06:00Z,,x,y\n"  # 7
    )
    now = dt.datetime(2026, 3, 10, 23, 55, tzinfo=dt.UTC)
    raw = verdict_file.parse_csv(text.encode("utf-8-sig"), "v.csv")
    rows, reasons = verdict_file.check_rows(raw, now)
    assert reasons == {
        5: ["unknown verdict 'maybe' (expected one of fraud, legit, unsure)", "missing analyst"],
        6: ["missing session_id", "bad dt '2026-03-32' (expected a date YYYY-MM-DD)"],
        7: ["2 more field(s) than the header has", "missing dt", "reviewed_at 2026-03-11T00:06:00Z is in the future"],
    }
    valid = rows[~rows["line"].isin(reasons)]
    assert valid[["line", "session_id", "dt", "verdict", "analyst", "reviewed_at", "note"]].values.tolist() == [
        [2, "s1", DAY, "fraud", "asha", dt.datetime(2026, 3, 3, 9), None],
        [3, "s2", DAY, "legit", "ravi", dt.datetime(2026, 3, 3, 3, 40), "two\nlines"],
    ]
    assert verdict_file.rejections(rows, reasons)[1] == verdict_file.Rejection(6, None, "2026-03-32", tuple(reasons[6]))


def test_a_parquet_file_lands_with_row_numbers(spark, scored_cfg, tmp_path):
    table = pa.table(
        {
            "session_id": ["s1", "s2", "t2"],
            "dt": pa.array([DAY, DAY, DAY2], pa.date32()),
            "verdict": ["FRAUD", "fraud!", "legit"],
            "analyst": ["asha", "asha", "ravi"],
            "reviewed_at": pa.array([dt.datetime(2026, 3, 3, 9, tzinfo=dt.UTC)] * 3, pa.timestamp("us", tz="UTC")),
            "ticket": ["T-1", "T-2", "T-3"],  # extra columns are ignored; note is optional
        }
    )
    path = tmp_path / "verdicts.parquet"
    pq.write_table(table, path)
    report = verdicts.label(spark, scored_cfg, str(path))
    assert [(r.line, r.reasons) for r in report.rejected] == [
        (2, ("unknown verdict 'fraud!' (expected one of fraud, legit, unsure)",))
    ]
    landed = _table(spark, scored_cfg)
    assert landed[["dt", "session_id", "verdict", "source_line"]].values.tolist() == [
        ["2026-03-02", "s1", "fraud", 1],
        ["2026-03-03", "t2", "legit", 3],
    ]
    assert landed["note"].isna().all()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("v.csv", "session_id,dt,verdict,reviewed_at\n", r"missing column\(s\) analyst"),
        ("v.csv", "", r"empty file"),
        ("v.txt", HEADER, r"unknown format"),
        ("v.parquet", "not parquet", r"cannot read Parquet"),
    ],
)
def test_a_file_that_is_not_verdicts_is_an_error_and_nothing_lands(spark, scored_cfg, tmp_path, name, text, message):
    with pytest.raises(VerdictFileError, match=message):
        verdicts.label(spark, scored_cfg, _write(tmp_path, name, text))
    with pytest.raises(VerdictFileError, match="no such file"):
        verdicts.label(spark, scored_cfg, str(tmp_path / "missing.csv"))
    assert not spark.catalog.tableExists(tables.table_name(scored_cfg, "verdicts"))


def test_reading_verdicts_before_any_landed_is_a_clear_error(spark, cfg):
    with pytest.raises(RuntimeError, match=r"verdicts: no such table \(land verdicts with `raksha label"):
        verdicts.read_verdicts(spark, cfg, DAY, DAY)


def test_label_command_exit_codes_and_report(spark, scored_cfg, tmp_path, capsys, in_process):
    clean = _write(tmp_path, "clean.csv", HEADER + "s1,2026-03-02,fraud,asha,2026-03-03T09:00:00Z,\n")
    assert cli.main(["label", "--file", clean, *factories.cli_sets(scored_cfg)]) == 0
    out = capsys.readouterr().out
    assert "1 rows read, 1 valid, 0 rejected" in out and "dt=2026-03-02: 1 rows: 1 new sessions" in out

    mixed = _write(
        tmp_path, "mixed.csv", HEADER + "s2,2026-03-02,legit,asha,2026-03-03T09:00:00Z,\nzz,2026-03-02,x,,,\n"
    )
    rejects = tmp_path / "rejects.csv"
    code = cli.main(["label", "--file", mixed, "--rejects", str(rejects), *factories.cli_sets(scored_cfg)])
    assert code == 2  # some rows rejected; the valid one landed
    out = capsys.readouterr().out
    assert "line 3 [session zz, dt 2026-03-02]: unknown verdict 'x'" in out
    written = pd.read_csv(rejects)
    assert written["line"].tolist() == [3] and "missing analyst" in written["reasons"][0]
    assert sorted(_table(spark, scored_cfg)["session_id"]) == ["s1", "s2"]

    assert cli.main(["label", "--file", str(tmp_path / "nope.csv"), *factories.cli_sets(scored_cfg)]) == 1
    assert capsys.readouterr().err.strip().endswith(f"verdicts file {tmp_path / 'nope.csv'}: no such file")
