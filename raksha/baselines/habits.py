"""A session against its user's own baseline: the expressions (pure Spark columns, no I/O).

The baseline of a user is a row of ``user_baselines`` (``contract.USER_BASELINES_SCHEMA``); what the
user is expected to do on a day is computed from it once per user (``expectations``, columns ``e_``)
and joined to the sessions (``with_expectations``). For each habit feature
(``contract.BASELINE_FEATURES``) the user's decayed mean and spread are shrunk towards the
population's (the autoencoder's scaler, which was fitted on all users) as if the population were
``baseline.prior_sessions`` sessions, and the spread is at least ``baseline.variance_floor`` of the
population's. The score is a sum of parts, each the exact share of one cause:

- a habit feature: its squared z-score against the user, at most ``baseline.feature_cap``;
- the hour: the circular distance from the user's usual hour in units of their spread (at least
  ``baseline.hour_floor_hours``), squared, at most ``baseline.hour_cap``, weighed by how much
  history the user has;
- a device, a network (wifi) or a place (a ``baseline.place_cell`` cell of normalised gps and its
  neighbours) the user was never seen with: ``baseline.new_*_weight``.

A user with no baseline is compared with the population (z-scores against the scaler, nothing is
new) and ``has_user_baseline`` is false: the job flags the session ``NO_USER_BASELINE``.
A missing value is not a deviation: it adds nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract
from raksha.columns import exists_short

PREFIX = "b_"
HOUR_RADIANS = 2 * math.pi / 24
TOP_REASONS = 3
SCORE = "user_baseline_score"
REASONS = "user_baseline_reasons"
HAS_BASELINE = "has_user_baseline"


@dataclass(frozen=True)
class Population:
    """Every user's habits at once: mean and standard deviation of each habit feature."""

    mean: Mapping[str, float]
    sd: Mapping[str, float]

    @classmethod
    def from_scaler(cls, scaler) -> Population:
        """From the autoencoder version's fitted scaler (``features.behavior.Scaler``)."""
        index = {f: i for i, f in enumerate(contract.CONTINUOUS_FEATURES)}
        return cls(
            {f: float(scaler.mean[index[f]]) for f in contract.BASELINE_FEATURES},
            {f: float(scaler.scale[index[f]]) for f in contract.BASELINE_FEATURES},
        )


@dataclass(frozen=True)
class Settings:
    """The ``baseline`` section of the config, typed."""

    half_life_days: float
    prior_sessions: float
    variance_floor: float
    feature_cap: float
    hour_cap: float
    hour_floor_hours: float
    new_device_weight: float
    new_network_weight: float
    new_place_weight: float
    place_cell: float
    winsorize_sd: float
    max_devices: int
    max_networks: int
    max_places: int
    forget_after_days: int
    keep_days: int

    @classmethod
    def of(cls, cfg) -> Settings:
        section = cfg.get("baseline")
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})


def prefixed(state: DataFrame) -> DataFrame:
    """The state's columns prefixed ``b_`` (``user_id`` kept, to join on)."""
    return state.select("user_id", *[F.col(c).alias(PREFIX + c) for c in state.columns if c != "user_id"])


def _b(name: str) -> Column:
    return F.col(PREFIX + name)


def _e(name: str) -> Column:
    return F.col(EXPECTED + name)


EXPECTED = "e_"


def decay(day: dt.date, half_life_days: float) -> Column:
    """How much a state row's sums (decayed to its ``last_seen``, prefixed ``b_``) still weigh on ``day``."""
    return F.pow(F.lit(0.5), F.datediff(F.lit(day), _b("last_seen")) / F.lit(half_life_days))


def expectations(state: DataFrame, day: dt.date, population: Population, s: Settings) -> DataFrame:
    """What each user of ``state`` is expected to do on ``day``, one row per user (columns prefixed ``e_``):
    each habit feature's mean and spread shrunk towards the population's, the usual hour (an angle), its
    spread and weight, and the devices, networks and places seen. Computed once per user, so the
    per-session expressions stay small."""
    b = prefixed(state)
    weighs = decay(day, s.half_life_days)
    prior = F.lit(s.prior_sessions)
    columns = [F.col("user_id")]
    for feature in contract.BASELINE_FEATURES:
        weight = _b(f"{feature}_weight")
        pop_mean = F.lit(population.mean[feature])
        pop_var = F.lit(population.sd[feature] ** 2)
        user_mean = _b(f"{feature}_sum") / weight
        user_var = F.greatest(_b(f"{feature}_sumsq") / weight - user_mean * user_mean, F.lit(0.0))
        n = weight * weighs
        mean = F.when(weight > 0, (n * user_mean + prior * pop_mean) / (n + prior)).otherwise(pop_mean)
        var = F.when(weight > 0, (n * user_var + prior * pop_var) / (n + prior)).otherwise(pop_var)
        columns += [
            mean.alias(f"{EXPECTED}{feature}_mean"),
            F.sqrt(F.greatest(var, F.lit(s.variance_floor) * pop_var)).alias(f"{EXPECTED}{feature}_sd"),
        ]
    weight = _b("hour_weight")
    resultant = F.sqrt(_b("hour_sin_sum") ** 2 + _b("hour_cos_sum") ** 2) / weight
    spread = F.sqrt(F.lit(-2.0) * F.log(F.greatest(F.least(resultant, F.lit(1.0)), F.lit(1e-9))))
    n = weight * weighs
    columns += [
        F.atan2(_b("hour_sin_sum"), _b("hour_cos_sum")).alias(f"{EXPECTED}hour"),
        F.greatest(spread, F.lit(s.hour_floor_hours * HOUR_RADIANS)).alias(f"{EXPECTED}hour_spread"),
        F.when(weight > 0, n / (n + prior)).otherwise(F.lit(0.0)).alias(f"{EXPECTED}hour_weight"),
        # a field of an array of structs is one compiled read (a lambda would be interpreted, value by value)
        _b("devices")["id"].alias(f"{EXPECTED}devices"),
        _b("networks")["id"].alias(f"{EXPECTED}networks"),
        F.arrays_zip(_b("places")["lat_cell"].alias("lat_cell"), _b("places")["lon_cell"].alias("lon_cell")).alias(
            f"{EXPECTED}places"
        ),
        (_b("sessions") > 0).alias(HAS_BASELINE),
    ]
    return b.select(*columns)


def with_expectations(sessions: DataFrame, expected: DataFrame | None, population: Population) -> DataFrame:
    """``sessions`` joined to their users' ``expectations``; a user without a row gets the population's.
    ``expected`` None (no snapshot yet: every user is new): the population's for all, without a join."""
    if expected is None:
        return sessions.withColumns(_new_user_expectations(population))
    # a hash of each partition's users (a few ten thousand rows), not a sort of the sessions (the scored day's
    # wide rows, or the day again in the fold) by user
    joined = sessions.join(expected.hint("shuffle_hash"), on="user_id", how="left")
    fills = {}
    for feature in contract.BASELINE_FEATURES:
        fills[f"{EXPECTED}{feature}_mean"] = F.coalesce(_e(f"{feature}_mean"), F.lit(population.mean[feature]))
        fills[f"{EXPECTED}{feature}_sd"] = F.coalesce(_e(f"{feature}_sd"), F.lit(population.sd[feature]))
    fills[f"{EXPECTED}hour_weight"] = F.coalesce(_e("hour_weight"), F.lit(0.0))
    fills[HAS_BASELINE] = F.coalesce(F.col(HAS_BASELINE), F.lit(False))
    return joined.withColumns(fills)


def _new_user_expectations(population: Population) -> dict[str, Column]:
    """What ``with_expectations`` gives a user without a baseline, as constant columns."""
    columns: dict[str, Column] = {}
    for feature in contract.BASELINE_FEATURES:
        columns[f"{EXPECTED}{feature}_mean"] = F.lit(population.mean[feature])
        columns[f"{EXPECTED}{feature}_sd"] = F.lit(population.sd[feature])
    state = contract.USER_BASELINES_SCHEMA
    places = T.StructType([state["places"].dataType.elementType[k] for k in ("lat_cell", "lon_cell")])
    columns |= {
        f"{EXPECTED}hour": F.lit(None).cast("double"),
        f"{EXPECTED}hour_spread": F.lit(None).cast("double"),
        f"{EXPECTED}hour_weight": F.lit(0.0),
        f"{EXPECTED}devices": F.lit(None).cast(T.ArrayType(state["devices"].dataType.elementType["id"].dataType)),
        f"{EXPECTED}networks": F.lit(None).cast(T.ArrayType(state["networks"].dataType.elementType["id"].dataType)),
        f"{EXPECTED}places": F.lit(None).cast(T.ArrayType(places)),
        HAS_BASELINE: F.lit(False),
    }
    return columns


def session_angle() -> Column:
    return F.atan2(F.col("time_of_day_sin"), F.col("time_of_day_cos"))


def to_hour(angle: Column) -> Column:
    """Hours 0-24 of an angle on the time-of-day circle."""
    return F.pmod((angle - F.lit(contract.TIME_OF_DAY_PHASE)) / F.lit(HOUR_RADIANS), F.lit(24.0))


def place_cell(coordinate: Column, s: Settings) -> Column:
    return F.floor(coordinate / F.lit(s.place_cell)).cast("int")


def _reason(code: Column | str, feature: str, value: Column, expected_value: Column, part: Column) -> Column:
    return F.struct(
        (F.lit(code) if isinstance(code, str) else code).alias("code"),
        F.lit(feature).alias("feature"),
        value.cast("double").alias("value"),
        expected_value.cast("double").alias("expected"),
        part.alias("contribution"),
    )


PARTS = [*contract.BASELINE_FEATURES, "hour", "new_device", "new_network", "new_place"]


def _part(name: str) -> Column:
    return F.col(f"_part_{name}")


def part_columns(s: Settings) -> dict[str, Column]:
    """Each cause's part of the score (``_part_<cause>``), from a session with its ``expectations``."""
    out = {}
    for feature in contract.BASELINE_FEATURES:
        value = F.col(feature)
        z = (value - _e(f"{feature}_mean")) / _e(f"{feature}_sd")
        out[f"_part_{feature}"] = F.when(value.isNull(), F.lit(0.0)).otherwise(F.least(z * z, F.lit(s.feature_cap)))
    distance = F.acos(F.least(F.lit(1.0), F.greatest(F.lit(-1.0), F.cos(session_angle() - _e("hour")))))
    timed = F.col("time_of_day_sin").isNotNull() & F.col("time_of_day_cos").isNotNull() & (_e("hour_weight") > 0)
    hour = _e("hour_weight") * F.least((distance / _e("hour_spread")) ** 2, F.lit(s.hour_cap))
    out["_part_hour"] = F.when(timed, hour).otherwise(F.lit(0.0))
    # what the user was never seen with (only for a user with a history: for a new user everything is new)
    lat, lon = place_cell(F.col("gps_latitude"), s), place_cell(F.col("gps_longitude"), s)
    near = exists_short(_e("places"), lambda p: (F.abs(p["lat_cell"] - lat) <= 1) & (F.abs(p["lon_cell"] - lon) <= 1))
    flags = {
        "new_device": (
            F.col("device_id").isNotNull() & ~F.array_contains(_e("devices"), F.col("device_id")),
            s.new_device_weight,
        ),
        "new_network": (
            F.col("wifi_id_hash").isNotNull() & ~F.array_contains(_e("networks"), F.col("wifi_id_hash")),
            s.new_network_weight,
        ),
        "new_place": (lat.isNotNull() & lon.isNotNull() & ~near, s.new_place_weight),
    }
    for name, (flag, weight) in flags.items():
        out[f"_part_{name}"] = F.when(
            F.col(HAS_BASELINE) & F.coalesce(flag, F.lit(False)), F.lit(float(weight))
        ).otherwise(F.lit(0.0))
    return out


def reason_structs() -> list[Column]:
    """The causes as reason structs (contribution: the part itself), in ``PARTS`` order."""
    out = []
    for feature in contract.BASELINE_FEATURES:
        mean = _e(f"{feature}_mean")
        code = F.when(F.col(feature) > mean, F.lit(f"{feature.upper()}_HIGH_FOR_USER")).otherwise(
            F.lit(f"{feature.upper()}_LOW_FOR_USER")
        )
        out.append(_reason(code, feature, F.col(feature), mean, _part(feature)))
    out.append(
        _reason("UNUSUAL_HOUR_FOR_USER", "time_of_day", to_hour(session_angle()), to_hour(_e("hour")), _part("hour"))
    )
    none = F.lit(None).cast("double")
    out.append(_reason("NEW_DEVICE", "device_id", none, none, _part("new_device")))
    out.append(_reason("NEW_NETWORK", "wifi_id_hash", F.col("wifi_id_hash"), none, _part("new_network")))
    out.append(_reason("NEW_PLACE", "gps_location", none, none, _part("new_place")))
    return out


def score(sessions: DataFrame, expected: DataFrame | None, population: Population, s: Settings) -> DataFrame:
    """``sessions`` plus ``user_baseline_score`` (the sum of the parts), ``user_baseline_reasons`` (the top
    causes, each with its share of the score as contribution and the user's usual value as expected) and
    ``has_user_baseline``, against ``expected`` (``expectations`` of a snapshot; None: every user is new)."""
    return with_reasons(with_parts(sessions, expected, population, s))


def with_parts(sessions: DataFrame, expected: DataFrame | None, population: Population, s: Settings) -> DataFrame:
    """``sessions`` with their users' expectations (``e_``), each cause's part (``_part_``), the score (their
    sum) and ``has_user_baseline``: what ``with_reasons`` reads."""
    joined = with_expectations(sessions, expected, population).withColumns(part_columns(s))
    total = sum((_part(name) for name in PARTS[1:]), _part(PARTS[0]))
    return joined.withColumn(SCORE, total)


def with_reasons(parts: DataFrame, where: Column | None = None) -> DataFrame:
    """``with_parts``' frame with ``user_baseline_reasons`` (empty where ``where`` is false: the sorting of
    the causes is then not paid) and without the expectations and parts."""
    # largest part first, ties by position (PARTS order); contributions as shares of the score. The causes
    # kept are the first (at most TOP_REASONS) of those with a part above 0, counted beside the array and
    # cut with slice, and the reasons taken out of the sorted structs as one field: compiled expressions
    # where a filter and a transform would be lambdas Spark interprets, element by element
    structs = reason_structs()
    ranked = F.sort_array(
        F.array(
            *[
                F.struct(
                    (-F.coalesce(r["contribution"], F.lit(0.0))).alias("k"),
                    F.lit(i).alias("i"),
                    r.withField("contribution", r["contribution"] / F.col(SCORE)).alias("r"),
                )
                for i, r in enumerate(structs)
            ]
        )
    )
    causes = sum((F.when(r["contribution"] > 0, 1).otherwise(0) for r in structs), F.lit(0))
    reasons = F.slice(ranked, 1, F.least(causes, F.lit(TOP_REASONS)))["r"]
    if where is not None:
        reasons = F.when(where, reasons).otherwise(F.array().cast(REASON_ARRAY))
    out = parts.withColumn(REASONS, reasons)
    return out.drop(*[c for c in out.columns if c.startswith(EXPECTED) or c.startswith("_part_")])


REASON_ARRAY = T.ArrayType(contract.REASON_TYPE)
