"""Analyst-facing outputs carry no exact location or network identifiers; pseudonyms are keyed."""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd
import pytest

from raksha.config import load_config
from raksha.decide import privacy


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
