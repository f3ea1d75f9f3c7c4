"""From model outputs to what an analyst sees: risk_score, decision, reasons.

Pure DataFrame transforms over the scored columns.

``risk_score`` (0-100) keeps ordering sessions above the thresholds, where the notebooks'
``ae_risk_percent`` saturates at 100: the autoencoder's part is
``100 * (1 - 2 ** (-ae_error / ae_threshold))`` (50 at the threshold, 75 at twice it, never
100 for a finite error), the sequence model's part is ``100 * seq_risk``, and the score is the
larger of the two. It is monotone in each model's raw output.

The decision follows the notebooks: seq_risk above ``decision.seq_block_threshold`` blocks;
an autoencoder anomaly is reviewed (``decision.review_on_ae_anomaly``); the rest is allowed.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from raksha.config import Config, ConfigError


def risk_score() -> Column:
    ae_part = 100.0 * (1.0 - F.pow(F.lit(2.0), -F.col("ae_error") / F.col("ae_threshold")))
    seq_part = 100.0 * F.col("seq_risk")
    return F.greatest(ae_part, seq_part)


def decision(cfg: Config) -> Column:
    block_at = cfg.get("decision.seq_block_threshold")
    review_on_ae = cfg.get("decision.review_on_ae_anomaly")
    if not isinstance(block_at, (int, float)) or not 0.0 <= float(block_at) <= 1.0:
        raise ConfigError(f"decision.seq_block_threshold must be a number in [0, 1], got {block_at!r}")
    if not isinstance(review_on_ae, bool):
        raise ConfigError(f"decision.review_on_ae_anomaly must be true or false, got {review_on_ae!r}")
    review = (F.col("ae_is_anomaly") == 1) if review_on_ae else F.lit(False)
    return (
        F.when(F.col("seq_risk") > float(block_at), F.lit("BLOCK"))
        .when(review, F.lit("REVIEW"))
        .otherwise(F.lit("ALLOW"))
    )


def decide(scored: DataFrame, cfg: Config) -> DataFrame:
    """Add risk_score, decision and reasons (the autoencoder's top features)."""
    return scored.withColumn("risk_score", risk_score()).withColumn("decision", decision(cfg)).withColumn(
        "reasons", F.coalesce(F.col("ae_reasons"), F.array())
    )
