"""Analyst-facing outputs carry no exact location or network identifiers; pseudonyms are keyed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import factories
import pandas as pd
import pytest
from conftest import test_config as config_under

from raksha import contract
from raksha.config import load_config
from raksha.decide import privacy
from raksha.pipeline.daily import run

DAY = dt.date(2026, 9, 15)


def test_reasons_coarsen_location_and_drop_network_ids(spark):
    cfg = load_config()
    reasons = [
        ("GPS_LATITUDE_HIGH", "gps_latitude", 0.734512, 0.31234),
        ("WIFI_ID_HASH_LOW", "wifi_id_hash", 0.123456, 0.654321),
        ("TOUCH_PRESSURE_LOW", "touch_pressure", 0.0213, 0.4521),
    ]
    frame = spark.createDataFrame(
        [([{"code": c, "feature": f, "value": v, "expected": e, "contribution": 0.1} for c, f, v, e in reasons],)],
        "reasons array<struct<code:string,feature:string,value:double,expected:double,contribution:double>>",
    )
    out = frame.select(privacy.coarsen_reasons(frame["reasons"], cfg).alias("r")).first()["r"]
    assert (out[0]["value"], out[0]["expected"]) == (0.7, 0.3)
    assert (out[1]["value"], out[1]["expected"]) == (None, None)
    assert (out[2]["value"], out[2]["expected"]) == (0.0213, 0.4521)  # behaviour stays exact

    hidden = load_config(sets=["privacy.location_decimals=null"])
    out = frame.select(privacy.coarsen_reasons(frame["reasons"], hidden).alias("r")).first()["r"]
    assert out[0]["value"] is None


def test_pseudonyms_are_hmac_with_the_key_from_the_environment(spark, monkeypatch):
    cfg = load_config()
    monkeypatch.delenv("RAKSHA_PSEUDONYM_KEY", raising=False)
    assert privacy.pseudonym_key(cfg) is None
    monkeypatch.setenv("RAKSHA_PSEUDONYM_KEY", "s3cret")
    key = privacy.pseudonym_key(cfg)
    ids = spark.createDataFrame([("u1",), ("u2",), (None,)], "user_id string")
    out = [r["p"] for r in ids.select(privacy.pseudonymize(ids["user_id"], key).alias("p")).collect()]
    assert out[0] == hmac.new(b"s3cret", b"u1", hashlib.sha256).hexdigest()
    assert out[0] != out[1] and out[2] is None
    assert out[0] != hashlib.sha256(b"u1").hexdigest()  # not guessable without the key
    assert list(privacy.hmac_ids(pd.Series(["u1"]), key)) == [out[0]]


@pytest.mark.parametrize("table", ["review_queue"])
def test_review_queue_has_no_location_or_network_columns(table):
    from raksha import contract

    names = {f.name for f in contract.OUTPUT_SCHEMAS[table].fields}
    assert not names & {*privacy.LOCATION_FEATURES, *privacy.NETWORK_FEATURES}


def _network_day(cfg) -> list[str]:
    """A small day: session 0 unusual only in its wifi_id_hash (the autoencoder's top reason), session 1
    out of range (quarantined, its record carrying a wifi_id_hash); every session goes to the queue."""
    sessions = factories.sessions_frame(DAY, 6, seed=11)
    for name in contract.CONTINUOUS_FEATURES:
        sessions.loc[0, name] = 0.5  # the untrained scaler's mean: scaled to 0
    for name in contract.BINARY_FEATURES:
        sessions.loc[0, name] = 0
    sessions.loc[0, "wifi_id_hash"] = 1.0
    sessions.loc[1, ["battery_level", "wifi_id_hash"]] = [1.7, 0.25]
    factories.write_partition(sessions, cfg.path("sessions"), DAY)
    factories.write_partition(factories.actions_frame(sessions), cfg.path("actions"), DAY)
    # a low threshold: session 0's one unusual feature is notable, so the autoencoder gives its reasons
    factories.write_untrained_models(cfg.path("models"), ae_threshold=0.01)
    return list(sessions["session_id"][:2])


def _wifi_reasons(cfg, table: str, session_id: str) -> list[dict]:
    rows = factories.read_table_day(cfg, table, DAY)
    reasons = rows.loc[rows["session_id"] == session_id, "reasons"].iloc[0]
    return [r for r in reasons if r["feature"] == "wifi_id_hash"]


@pytest.mark.parametrize("keep", [False, True], ids=["default-hidden", "keep_network_ids"])
def test_network_ids_in_the_published_queue_reasons_and_quarantine_follow_keep_network_ids(spark, tmp_path, keep):
    sets = ["decision.default=REVIEW"] + (["privacy.keep_network_ids=true"] if keep else [])
    cfg = config_under(tmp_path, *sets)
    unusual, quarantined = _network_day(cfg)
    run(spark, cfg, DAY)
    for table in ("review_queue", "scored_sessions"):
        (reason,) = _wifi_reasons(cfg, table, unusual)
        assert reason["code"] == "WIFI_ID_HASH_HIGH", table
        if keep:
            assert reason["value"] == 1.0 and reason["expected"] is not None, table
        else:
            assert reason["value"] is None and reason["expected"] is None, table
    quarantine = factories.read_table_day(cfg, "quarantine", DAY)
    (record,) = quarantine.loc[quarantine["session_id"] == quarantined, "record"].map(json.loads)
    assert record["wifi_id_hash"] == (0.25 if keep else None)
    assert record["battery_level"] == 1.7  # not a network id: shown as sent
