"""The nightly report (issue 16, part 3): counts, score distributions with thresholds, reasons, the
queue, the trend, and drift (PSI) against the model version's reference, for a generated day in
which one feature was shifted."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import factories
import numpy as np
import pytest
from conftest import test_config as config_under
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract
from raksha.cli import COMMANDS, build_parser
from raksha.pipeline import drift, report, report_doc, report_page
from raksha.pipeline.daily import append_run_log, run
from raksha.platform import tables
from raksha.synthetic.day import generate_day
from raksha.synthetic.write import write_day
from raksha.training.commands import train_autoencoder, train_sequence

REFERENCE_DAY = dt.date(2026, 3, 2)  # a Monday: the training day, or the untrained versions' first scored day
SHIFTED_DAY = dt.date(2026, 3, 3)  # the next day, with touch_pressure shifted
SHIFTED = "touch_pressure"
SESSIONS = 2000
PNG = b"\x89PNG\r\n\x1a\n"
UNSHIFTED = [c for c in drift.DRIFT_COLUMNS if c in contract.FEATURES and c != SHIFTED]


# --- pure: bins, PSI, the page (no Spark) ---


def test_psi_is_zero_for_the_same_shares_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    reference = drift.reference_of("tap_duration", rng.normal(0.5, 0.1, 20_000))
    assert len(reference.edges) == drift.BINS - 1 and sum(reference.shares) == pytest.approx(1.0)
    same = drift.binned(rng.normal(0.5, 0.1, 20_000), reference.edges)
    moved = drift.binned(rng.normal(0.55, 0.1, 20_000), reference.edges)
    assert drift.psi(reference, reference) == 0.0
    assert drift.psi(reference, same) < 0.01 < drift.psi(reference, moved)
    # by hand: two bins, 50/50 against 80/20, no missing values
    expected, observed = drift.Binned((0.5,), (0.5, 0.5), 0.0, 100), drift.Binned((0.5,), (0.8, 0.2), 0.0, 100)
    by_hand = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert drift.psi(expected, observed) == pytest.approx(by_hand)  # the empty missing bins add nothing
    assert [drift.band(v) for v in (0.05, 0.15, 0.25)] == ["stable", "moderate", "significant"]


def test_bins_count_values_on_an_edge_below_it_and_nulls_apart():
    edges = (0.2, 0.5)
    values = np.array([0.1, 0.2, 0.3, 0.5, 0.9, np.nan])
    assert drift.bin_index(values, edges).tolist() == [0, 0, 1, 1, 2, drift.MISSING_BIN]
    binned = drift.binned(values, edges)
    assert binned.shares == pytest.approx((2 / 6, 2 / 6, 1 / 6)) and binned.missing == pytest.approx(1 / 6)
    assert drift.edges_for("charging_state", np.array([1.0, 1.0])) == drift.BINARY_EDGES  # 0/1, whatever the mix
    with pytest.raises(ValueError, match="outside"):
        drift.from_counts(edges, {3: 1})


def test_calendar_features_are_compared_with_the_dates_weekday():
    day = SHIFTED_DAY  # a Tuesday: every session carries day_of_week_tue = 1
    observed = {
        name: drift.binned(np.full(10, 1.0 if name == "day_of_week_tue" else 0.0), drift.BINARY_EDGES)
        for name in drift.CALENDAR_FEATURES
    }
    monday = drift.binned(np.ones(10), drift.BINARY_EDGES)  # a reference of Mondays only
    compared = drift.compare(day, observed, {"day_of_week_mon": monday}, {})
    calendar = {c["column"]: c for c in compared if c["kind"] == "calendar"}
    assert {c["psi"] for c in calendar.values()} == {0.0}
    wrong = drift.compare(day, {**observed, "day_of_week_mon": monday}, {}, {})
    assert next(c for c in wrong if c["column"] == "day_of_week_mon")["band"] == "significant"


def test_the_page_embeds_every_panel_and_the_rule_bounds():
    rules = [("seq_is_block = 1", "BLOCK"), ("risk_score > 80 and seq_risk_max >= 0.9", "REVIEW")]
    lines = report_doc.threshold_lines(rules, 0.02, 0.8, 70.0)
    assert [line["value"] for line in lines["risk_score"]] == [70.0, 80.0]
    assert [line["value"] for line in lines["seq_risk_max"]] == [0.8, 0.9]
    bins = report_doc.displays(0.02)
    reference = drift.reference_of("ae_error", np.linspace(0, 1, 101))
    stats = report_doc.DayStats(
        {"ALLOW": 90, "REVIEW": 8, "BLOCK": 2},
        {"NO_ACTIONS": 1},
        99,
        {"TAP_DURATION_HIGH": 7, "ADD_RECIPIENT -> TRANSFER_LARGE": 2},
        {c: [1] * b.count for c, b in bins.items()},
        {"ae_error": drift.binned(np.linspace(0.5, 1, 100), reference.edges)},
    )
    refs = {
        "behavior_autoencoder": report_doc.Reference("behavior_autoencoder", "v1", "training", {"ae_error": reference})
    }
    run_row = {"run_id": "score-x", "counts": {"sessions_read": 100, "review_cases": 9, "review_overflow_cases": 0}}
    models = {"behavior_autoencoder": {"version": "v1"}, "sequence_lstm": {"version": "v2"}}
    trend = report_doc.trend_rows({"2026-03-03": run_row}, 14)
    doc = report_doc.assemble(SHIFTED_DAY, run_row, models, stats, bins, lines, refs, trend, 500, 10, "a test")
    assert doc["warnings"] == [f"DRIFT:ae_error PSI {doc['drift']['psi']['ae_error']:.3f} > 0.2"]
    assert doc["top_reasons"][0] == {"code": "TAP_DURATION_HIGH", "sessions": 7}
    json.dumps(doc)  # report.json holds it as it is
    page, panels = report_page.render(doc)
    assert page.startswith(PNG) and set(panels) == {name for name, _ in report_page.PANELS}
    html = report_page.render_html(doc, panels)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == len(panels) and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing fetched


def test_raksha_report_is_a_command():
    args = build_parser().parse_args(["report", "--date", "2026-03-03", "--set", "review.capacity=10"])
    assert COMMANDS[args.command].__name__ == "cmd_report" and args.date == SHIFTED_DAY


# --- through Spark: the nightly job and raksha report ---


def test_a_report_that_fails_is_a_one_line_warning_and_its_traceback_is_for_verbose(tmp_path, monkeypatch, caplog):
    """The day is published already: the run warns in one line (run_log's warnings name the command that
    writes the report again); the traceback is logged at DEBUG, which ``--verbose`` shows."""
    import logging

    from raksha.pipeline import daily

    def fails(*args, **kwargs):
        raise ValueError("no room for the picture\nsecond line")

    monkeypatch.setattr(report, "nightly", fails)
    caplog.set_level(logging.DEBUG, logger="raksha")
    paths, warnings, psi = daily.nightly_report(
        None, config_under(tmp_path, "report.enabled=true"), REFERENCE_DAY, None, {"run_id": "r"}, None, None
    )
    assert (paths, psi) == ({}, {})
    assert warnings == [f"REPORT_NOT_WRITTEN: no room for the picture (raksha report --date {REFERENCE_DAY} writes it)"]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == ["run r: the nightly report was not written: no room for the picture"]
    assert warned[0].exc_info is None
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)


def test_a_day_is_counted_in_the_bins_numpy_makes(spark):
    """``observe`` over several partitions: drift bins as ``drift.bin_index`` (nulls missing), display bins
    clipped to the ends (nulls not drawn), reason codes once per flagged session, flags and decisions."""
    rows = [
        (0.1, 0.0, "ALLOW", [], [("C",)]),
        (0.2, 24.9, "REVIEW", ["NO_ACTIONS"], [("A",), ("A",), ("B",)]),
        (0.3, 25.0, "BLOCK", [], [("A",)]),
        (0.5, 99.0, "ALLOW", ["NO_ACTIONS", "UNKNOWN_ACTIONS"], []),
        (0.9, 250.0, "REVIEW", [], []),
        (None, None, "ALLOW", [], []),
    ]
    schema = "x double, risk_score double, decision string, dq_flags array<string>, reasons array<struct<code:string>>"
    frame = spark.createDataFrame(rows, schema).repartition(3)
    edges = (0.2, 0.5)
    stats = report.observe(frame, {"x": edges}, {"risk_score": report_doc.DisplayBins(0.0, 100.0, 4)})
    values = np.array([r[0] if r[0] is not None else np.nan for r in rows], dtype=np.float64)
    assert stats.drift["x"] == drift.binned(values, edges)
    assert stats.histograms == {"risk_score": [2, 1, 0, 2]}
    assert stats.decisions == {"ALLOW": 3, "REVIEW": 2, "BLOCK": 1}
    assert stats.dq_flags == {"NO_ACTIONS": 2, "UNKNOWN_ACTIONS": 1} and stats.without_dq_flags == 4
    assert stats.reasons == {"A": 2, "B": 1}


def test_a_run_log_written_before_the_drift_columns_gets_them(spark, tmp_path):
    cfg = config_under(tmp_path)
    older = T.StructType([f for f in contract.RUN_LOG_SCHEMA.fields if f.name not in ("warnings", "drift_psi")])
    rows = spark.createDataFrame([], older).withColumn("dt", F.lit(""))
    rows.write.format("delta").partitionBy("dt").save(tables.table_location(cfg, "run_log"))
    started = dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC)
    row = {"run_id": "score-x", "status": "SUCCEEDED", "started_at": started, "model_checksums": {}}
    append_run_log(spark, cfg, SHIFTED_DAY, {**row, "warnings": ["DRIFT:tap_duration PSI 0.300 > 0.2"]})
    logged = spark.table(tables.table_name(cfg, "run_log")).first()
    assert logged["warnings"] == ["DRIFT:tap_duration PSI 0.300 > 0.2"] and logged["drift_psi"] == {}


@pytest.fixture(scope="module")
def raw_days(tmp_path_factory) -> Path:
    """Two generated days; on the second, every session's touch_pressure is 0.1 higher (a recalibrated screen)."""
    root = tmp_path_factory.mktemp("report_raw")
    for day in (REFERENCE_DAY, SHIFTED_DAY):
        data = generate_day(day, SESSIONS, attack_rate=0.02, seed=11)
        if day == SHIFTED_DAY:
            data.sessions[SHIFTED] = (data.sessions[SHIFTED] + 0.1).clip(upper=1.0)
        write_day(data, day, str(root / "sessions"), str(root / "actions"), str(root / "labels"))
    return root


def _config(tmp_path: Path, raw: Path, *sets: str):
    inputs = [
        f"paths.sessions={raw / 'sessions'}",
        f"paths.actions={raw / 'actions'}",
        f"paths.labels={raw / 'labels'}",
    ]
    return config_under(tmp_path, *inputs, "review.capacity=20", "report.enabled=true", *sets)


def _psi(doc: dict) -> dict[str, float]:
    return {c["column"]: c["psi"] for c in doc["drift"]["columns"]}


def _check_shift_found(spark, cfg, result) -> dict:
    """The shifted feature above 0.2, every other input feature below 0.1, the warning in the log row,
    the page's pictures embedded and the PNG written; returns report.json."""
    doc = json.loads(Path(result.report["json"]).read_text())
    psi = _psi(doc)
    assert psi[SHIFTED] > drift.WARN_ABOVE, psi
    assert {c: psi[c] for c in UNSHIFTED if psi[c] >= drift.WATCH_ABOVE} == {}
    warning = f"DRIFT:{SHIFTED} PSI {psi[SHIFTED]:.3f} > 0.2"
    assert warning in result.warnings and warning in doc["warnings"]
    logged = spark.table(tables.table_name(cfg, "run_log")).where(F.col("run_id") == result.run_id).first()
    assert warning in logged["warnings"] and logged["drift_psi"][SHIFTED] == pytest.approx(psi[SHIFTED])
    html = Path(result.report["html"]).read_text()
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', html)) == len(report_page.PANELS)
    png = Path(result.report["png"])
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 50_000
    assert png.parent == Path(report.report_dir(cfg, result.day))
    # the counts come from the same day as the tables hold it
    assert sum(doc["decisions"].values()) == result.counts["sessions_scored"]
    assert doc["decisions"] == {d: result.decisions.get(d, 0) for d in contract.DECISIONS}
    assert doc["queue"]["capacity"] == 20 and doc["queue"]["cases"] == result.counts["review_cases"]
    return doc


def test_a_shift_against_the_training_reference_is_a_warning(spark, tmp_path, raw_days):
    cfg = _config(tmp_path, raw_days, "training.autoencoder.epochs=1", "training.sequence.epochs=1")
    ae = train_autoencoder(spark, cfg, REFERENCE_DAY, REFERENCE_DAY)
    seq = train_sequence(spark, cfg, REFERENCE_DAY, REFERENCE_DAY)
    assert set(ae.drift_reference["columns"]) == {*contract.FEATURES, "ae_error"}
    assert set(seq.drift_reference["columns"]) == {"seq_risk"}

    result = run(spark, cfg, SHIFTED_DAY)
    doc = _check_shift_found(spark, cfg, result)
    assert {r["kind"] for r in doc["drift"]["references"].values()} == {"training"}
    assert doc["distributions"]["ae_error"]["thresholds"][0]["value"] == pytest.approx(ae.threshold)
    assert sum(doc["distributions"]["risk_score"]["counts"]) == result.counts["sessions_scored"]
    assert [t["date"] for t in doc["trend"]] == [SHIFTED_DAY.isoformat()]

    # raksha report --date D: the same numbers again, from the tables and the day's input
    rebuilt, paths = report.rebuild(spark, cfg, SHIFTED_DAY)
    assert rebuilt["built_by"] == "raksha report" and paths == result.report
    assert _psi(rebuilt) == pytest.approx(_psi(doc))
    for key in ("decisions", "dq_flags", "top_reasons", "distributions", "queue", "warnings"):
        assert rebuilt[key] == doc[key], key


def test_a_version_without_reference_takes_its_first_scored_day(spark, tmp_path, raw_days):
    cfg = _config(tmp_path, raw_days)
    factories.write_untrained_models(cfg.path("models"))

    first = run(spark, cfg, REFERENCE_DAY)
    doc = json.loads(Path(first.report["json"]).read_text())
    notes = [r["note"] for r in doc["drift"]["references"].values()]
    assert all(f"first scored day, {REFERENCE_DAY} (this date)" in n for n in notes), notes
    assert {c: v for c, v in _psi(doc).items() if v != 0.0} == {} and first.warnings == []
    stored = {
        name: Path(report.stored_reference_path(cfg, name, doc["models"][name]["version"]))
        for name in (contract.AE_MODEL, contract.SEQ_MODEL)
    }
    assert all(path.exists() for path in stored.values())

    second = run(spark, cfg, SHIFTED_DAY)
    doc = _check_shift_found(spark, cfg, second)
    assert (
        f"first scored day, {REFERENCE_DAY}, run {first.run_id}"
        in doc["drift"]["references"][contract.AE_MODEL]["note"]
    )
    assert [t["date"] for t in doc["trend"]] == [REFERENCE_DAY.isoformat(), SHIFTED_DAY.isoformat()]

    # the stored reference lost: raksha report finds the version's first day in run_log and bins it again
    for path in stored.values():
        path.unlink()
    rebuilt, _ = report.rebuild(spark, cfg, SHIFTED_DAY)
    assert _psi(rebuilt) == pytest.approx(_psi(doc))
    assert all(path.exists() for path in stored.values())
