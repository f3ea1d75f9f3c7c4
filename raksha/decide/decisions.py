"""From model outputs to what an analyst sees: risk_score, decision, reasons.

Pure DataFrame transforms over the scored columns.

The decision policy lives in config (``decision.rules``): an ordered list of rules, each a
Spark SQL condition over the scored columns and the decision it gives; the first rule that
matches wins, ``decision.default`` otherwise. The defaults: ``seq_is_block = 1`` blocks (the LSTM
notebook: seq_risk above the version's ``block_threshold``, 0.8), ``risk_score >= 65`` is reviewed
(all the evidence combined); the autoencoder notebook's ``ae_is_anomaly`` stays a column. Rules are checked when the job
starts, against the scored columns: a typo in a rule is an error before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from raksha import contract
from raksha.columns import any_of
from raksha.config import Config, ConfigError
from raksha.errors import first_line
from raksha.scoring import calibration

# The combined-score cut of the autoencoder version (``raksha calibrate``), readable by rules as a column.
RISK_SCORE_CUT = "risk_score_cut"
# Columns a rule may use: the scored session's (risk_score included), before the decision, and the cut
# (null when the version has none: a rule comparing with it never matches); never the challenger's.
RULE_COLUMNS = [
    f
    for f in contract.SCORED_SESSIONS_SCHEMA.fields
    if f.name not in ("decision", "reasons") and f not in contract.CHALLENGER_FIELDS
] + [T.StructField(RISK_SCORE_CUT, T.DoubleType(), True)]


def policy(cfg: Config) -> tuple[list[tuple[str, str]], str]:
    """The configured rules as (condition, decision) pairs and the default decision, validated in form."""
    rules = cfg.get("decision.rules")
    default = cfg.get("decision.default")
    if not isinstance(rules, list):
        raise ConfigError("decision.rules must be a list of {when: <condition>, decision: <ALLOW|REVIEW|BLOCK>}")
    parsed = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or set(rule) != {"when", "decision"}:
            raise ConfigError(f"decision.rules[{i}] must have exactly the keys 'when' and 'decision', got {rule!r}")
        if rule["decision"] not in contract.DECISIONS:
            raise ConfigError(f"decision.rules[{i}]: decision '{rule['decision']}' is not one of {contract.DECISIONS}")
        parsed.append((str(rule["when"]), str(rule["decision"])))
    if default not in contract.DECISIONS:
        raise ConfigError(f"decision.default '{default}' is not one of {contract.DECISIONS}")
    return parsed, default


def validate_policy(spark: SparkSession, cfg: Config) -> None:
    """Resolve every rule against the scored columns; an unknown column or bad syntax is an error."""
    empty = spark.createDataFrame([], T.StructType(RULE_COLUMNS))
    rules, _ = policy(cfg)
    for i, (condition, _) in enumerate(rules):
        try:
            empty.select(F.expr(condition).cast("boolean")).schema  # noqa: B018 - analysis happens here
        except PySparkException as exc:
            raise ConfigError(f"decision.rules[{i}] '{condition}': {first_line(exc)}") from None


def decision(cfg: Config) -> Column:
    """The decision column; the frame must hold the rule columns (``with_decision`` adds the cut)."""
    rules, default = policy(cfg)
    out: Column | None = None
    for condition, outcome in rules:
        test = F.coalesce(F.expr(condition).cast("boolean"), F.lit(False))
        out = F.when(test, F.lit(outcome)) if out is None else out.when(test, F.lit(outcome))
    return F.lit(default) if out is None else out.otherwise(F.lit(default))


def with_decision(df: DataFrame, cfg: Config, risk_score_cut: float | None, name: str = "decision") -> DataFrame:
    """``df`` with the rules' decision in column ``name``, the cut offered to the rules as a column."""
    cut = F.lit(risk_score_cut).cast("double")
    return df.withColumn(RISK_SCORE_CUT, cut).withColumn(name, decision(cfg)).drop(RISK_SCORE_CUT)


# Each scorer's surprise (how unusual its output is) and its reasons; the user baseline's when the job computed it.
SOURCES: tuple[tuple[str, str], ...] = (
    ("ae_surprise", "ae_reasons"),
    ("seq_surprise", "seq_reasons"),
    ("user_baseline_surprise", "user_baseline_reasons"),
)


def present_sources(columns: list[str]) -> list[tuple[str, str]]:
    return [(s, r) for s, r in SOURCES if s in columns]


def reasons(columns: list[str]) -> Column:
    """The scorer that was more surprised speaks first; each contributes its top reasons. (The sorting is
    interpreted by Spark, row by row: it runs only for a session some scorer gave a reason; the reasons are
    taken out of the sorted structs as one field, compiled, not by a lambda.)"""
    none = F.array().cast(T.ArrayType(contract.REASON_TYPE))
    sources = present_sources(columns)
    if not sources:
        return none
    ranked = F.sort_array(
        F.array(
            *[
                F.struct(
                    (-F.coalesce(F.col(s), F.lit(0.0))).alias("k"),
                    F.lit(i).alias("i"),
                    F.coalesce(F.col(r), none).alias("reasons"),
                )
                for i, (s, r) in enumerate(sources)
            ]
        )
    )
    given = any_of([F.size(F.col(r)) > 0 for _, r in sources])
    return F.when(given, F.flatten(ranked["reasons"])).otherwise(none)


def decide(scored: DataFrame, cfg: Config, risk_score_cut: float | None = None) -> DataFrame:
    """Add risk_score, decision and reasons; drop the per-scorer intermediates."""
    sources = present_sources(scored.columns)
    with_score = scored.withColumn("risk_score", calibration.risk_score_column(*[F.col(s) for s, _ in sources]))
    return (
        with_decision(with_score, cfg, risk_score_cut)
        .withColumn("reasons", reasons(with_score.columns))
        .drop(*[c for pair in sources for c in pair])
    )
