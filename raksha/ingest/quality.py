"""Row-level data quality: which sessions cannot be scored, and why.

Pure DataFrame transforms. ``flag_sessions`` adds ``quarantine_reasons`` (array of reason
codes, empty for a good row); the job scores the rows with no reason and quarantines the
others, so sessions read = scored + quarantined always holds.

Reason codes (``CODE`` or ``CODE:feature``):
- ``MISSING_SESSION_ID``: session_id is null or blank;
- ``DUPLICATE_SESSION_ID``: another row of the day has the same session_id. One row is kept:
  the earliest session_start, then the smallest hash of the whole row (so the choice does not
  depend on file order);
- ``MISSING_SESSION_START`` / ``SESSION_START_OUTSIDE_DATE``;
- ``NOT_FINITE:f``: NaN or infinity (a null is a missing value, not an error);
- ``OUT_OF_RANGE:f``: outside the feature's physical range (contract.feature_range);
- ``NOT_BINARY:f``: a binary feature that is not 0 or 1;
- ``MODEL_OUTPUT_NOT_A_NUMBER:column``: found after scoring; a model gave NaN (or nothing) for
  the session, so it is quarantined instead of published with a meaningless score.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import columns, contract
from raksha.features.sequences import MAX_WINDOWS_PER_SESSION

REASONS_COLUMN = "quarantine_reasons"


Check = tuple[Column, str]  # (condition, the code of a row it holds for)


def codes_of(checks: list[Check]) -> Column:
    """The codes of the checks whose condition holds, in order: an array, empty when none holds
    (``columns.present``: a row that passes every check costs one compiled test; at 1M sessions and the
    input's 55 checks, 12.4 s for the compaction on every row, 1.6 s so)."""
    empty = F.array().cast(T.ArrayType(T.StringType()))
    return columns.present([(condition, F.lit(code)) for condition, code in checks], empty)


def row_checks(day: dt.date) -> list[Check]:
    """The checks of one input row on its own (the duplicate check needs the others: ``flag_sessions``)."""
    start = F.lit(day.isoformat()).cast("timestamp")
    end = F.lit((day + dt.timedelta(days=1)).isoformat()).cast("timestamp")
    checks = [
        (F.col("session_id").isNull() | (F.trim("session_id") == ""), "MISSING_SESSION_ID"),
        (F.col("session_start").isNull(), "MISSING_SESSION_START"),
        ((F.col("session_start") < start) | (F.col("session_start") >= end), "SESSION_START_OUTSIDE_DATE"),
    ]
    for name in contract.CONTINUOUS_FEATURES:
        low, high = contract.feature_range(name)
        value = F.col(name)
        not_finite = F.isnan(value) | value.isin(float("inf"), float("-inf"))
        checks.append((not_finite, f"NOT_FINITE:{name}"))
        checks.append((~not_finite & ((value < low) | (value > high)), f"OUT_OF_RANGE:{name}"))
    for name in contract.BINARY_FEATURES:
        checks.append((~F.col(name).isin(0, 1), f"NOT_BINARY:{name}"))
    return checks


DUPLICATE = "DUPLICATE_SESSION_ID"


def flag_sessions(sessions: DataFrame, day: dt.date, duplicates: bool = True) -> DataFrame:
    """``sessions`` plus ``quarantine_reasons``: the codes of every check the row fails. ``duplicates=False``
    for a day already known to hold no duplicate session_id: the rows are checked one by one, without the
    duplicate check's window (a shuffle of every whole row), and flagged the same."""
    checks = row_checks(day)
    if duplicates:
        row_hash = F.xxhash64(*[F.col(c) for c in sessions.columns])
        keep_order = Window.partitionBy("session_id").orderBy(F.col("session_start").asc_nulls_last(), row_hash)
        duplicate = F.col("session_id").isNotNull() & (F.row_number().over(keep_order) > 1)
        checks = [*checks, (duplicate, DUPLICATE)]
    return sessions.withColumn(REASONS_COLUMN, codes_of(checks))


def split_valid(flagged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows to score without the reasons column, rows to quarantine with it)."""
    ok = F.size(REASONS_COLUMN) == 0
    return flagged.filter(ok).drop(REASONS_COLUMN), flagged.filter(~ok)


NO_USER_BASELINE = "NO_USER_BASELINE"


def session_dq_flags(max_windows_per_session: int = MAX_WINDOWS_PER_SESSION, user_baselines: bool = False) -> Column:
    """Flags on a scored session that do not stop it from being scored.

    - ``NO_ACTIONS``: no action in the action log (its sequence is one empty window);
    - ``UNKNOWN_ACTIONS``: an action outside the notebook's vocabulary (token 0, as the notebook did);
    - ``SEQUENCE_TRUNCATED``: more than 10 actions: seq_risk is of the last 10 (the notebook's);
    - ``SEQUENCE_WINDOWS_CAPPED``: more actions than ``max_windows_per_session`` (the value the
      scoring UDF was given, ``scoring.max_windows_per_session``): seq_risk_max / seq_risk_max_at
      are of the session's last that many windows only;
    - ``MISSING_FEATURES_FILLED``: a null feature, filled with 0 as the notebook did;
    - ``NO_USER_BASELINE`` (with ``user_baselines``, from the ``has_user_baseline`` column): the user had no
      baseline, so the session was compared with the population (``raksha.baselines``).
    """
    flags = [
        (F.col("action_count") == 0, "NO_ACTIONS"),
        (F.col("unknown_action_count") > 0, "UNKNOWN_ACTIONS"),
        (F.col("action_count") > contract.MAX_SEQ_LENGTH, "SEQUENCE_TRUNCATED"),
        (F.col("action_count") > max_windows_per_session, "SEQUENCE_WINDOWS_CAPPED"),
        (columns.any_of([F.col(c).isNull() for c in contract.FEATURES]), "MISSING_FEATURES_FILLED"),
    ]
    if user_baselines:
        flags.append((~F.col("has_user_baseline"), NO_USER_BASELINE))
    return codes_of(flags)


MODEL_OUTPUTS = ("ae_error", "seq_risk", "seq_risk_max", "risk_score")


def model_output_reasons() -> Column:
    """Codes for the model outputs of a scored row that are not numbers (empty when all are)."""
    return codes_of([(F.col(c).isNull() | F.isnan(c), f"MODEL_OUTPUT_NOT_A_NUMBER:{c}") for c in MODEL_OUTPUTS])
