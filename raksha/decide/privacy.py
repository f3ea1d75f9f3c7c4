"""What analyst-facing outputs may carry about where a user was and which network they used.

The scorer needs exact GPS coordinates and wifi identifiers; the people reading the review
queue, the reasons, the quarantine and the exports do not. Configured under ``privacy``:

- ``location_decimals``: gps_latitude / gps_longitude (normalised to [0, 1]) appear rounded to
  this many decimals in reasons, quarantine records and exports; null leaves them out;
- ``keep_network_ids``: wifi_id_hash appears in those outputs only when true;
- ``pseudonym_key_env``: exports replace user_id by HMAC-SHA256(key, user_id) when this
  environment variable holds a key; the key never comes from the repository or the config.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

from raksha.columns import map_short
from raksha.config import Config

LOCATION_FEATURES = ("gps_latitude", "gps_longitude")
NETWORK_FEATURES = ("wifi_id_hash",)


class PrivacyError(RuntimeError):
    """Pseudonymisation was asked for without a key."""


def _coarsen_value(value: Column, feature: str | Column, cfg: Config) -> Column:
    decimals = cfg.get("privacy.location_decimals")
    keep_network = bool(cfg.get("privacy.keep_network_ids"))
    is_location = feature.isin(*LOCATION_FEATURES) if isinstance(feature, Column) else feature in LOCATION_FEATURES
    is_network = feature.isin(*NETWORK_FEATURES) if isinstance(feature, Column) else feature in NETWORK_FEATURES
    location = F.lit(None).cast("double") if decimals is None else F.round(value, int(decimals))
    network = value if keep_network else F.lit(None).cast("double")
    if isinstance(feature, str):
        return location if is_location else network if is_network else value
    return F.when(is_location, location).when(is_network, network).otherwise(value)


def coarsen_column(name: str, cfg: Config) -> Column:
    """Column ``name`` as an analyst-facing output may show it (same name)."""
    return _coarsen_value(F.col(name), name, cfg).alias(name)


def coarsen_reasons(reasons: Column, cfg: Config) -> Column:
    """Reasons with the observed and expected values of location and network features coarsened (compiled
    for a session's few reasons, ``columns.map_short``)."""
    coarsened = map_short(
        reasons,
        lambda r: r.withField("value", _coarsen_value(r["value"], r["feature"], cfg)).withField(
            "expected", _coarsen_value(r["expected"], r["feature"], cfg)
        ),
    )
    return F.when(F.size(reasons) > 0, coarsened).otherwise(reasons)


def pseudonym_key(cfg: Config) -> bytes | None:
    """The HMAC key from the environment variable named by ``privacy.pseudonym_key_env`` (None if unset)."""
    value = os.environ.get(str(cfg.get("privacy.pseudonym_key_env")), "")
    return value.encode() if value else None


def hmac_ids(ids: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 of each id (hex); nulls stay null."""
    return ids.map(lambda v: None if v is None else hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest())


def pseudonymize(column: Column, key: bytes) -> Column:
    """A Spark column of HMAC-SHA256(key, id); the key travels in the UDF closure, never in data."""

    @F.pandas_udf("string")
    def _hmac(ids: pd.Series) -> pd.Series:
        return hmac_ids(ids, key)

    return _hmac(column)
