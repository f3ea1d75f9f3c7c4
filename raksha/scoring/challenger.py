"""Champion and challenger: a second model version scored in the same run, never deciding.

``models.challenger.behavior_autoencoder`` and ``models.challenger.sequence_lstm`` name model
versions under ``paths.models`` (either or both; unset means the champion's own outputs stand in
for that model). The challenger pair is scored over the same sessions in the same pass, and the
same decision rules are applied to its outputs, but everything it produces goes to the
``challenger_*`` columns of scored_sessions: ``decision``, ``risk_score``, reasons and the review
queue are the promoted (champion) versions' alone. The nightly summary shows where the two
disagree (``disagreements``).

When no challenger is configured the ``challenger_*`` columns are null.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.config import Config
from raksha.decide.decisions import with_decision
from raksha.models import artifacts, runtimes
from raksha.models.artifacts import ModelVersion
from raksha.scoring import calibration
from raksha.scoring.udfs import BroadcastModel, model_inputs, models_udf

BASELINE_SURPRISE = "user_baseline_surprise"
log = logging.getLogger(__name__)

PREFIX = "challenger_"
# Champion columns the decision rules may read, swapped for the challenger's while its decision is taken.
SWAPPED = [
    "ae_error",
    "ae_threshold",
    "ae_is_anomaly",
    "ae_risk_percent",
    "ae_surprise",
    "seq_risk",
    "seq_is_block",
    "seq_risk_max",
    "seq_risk_max_at",
    "seq_surprise",
    "risk_score",
]
AE_FIELDS = ["ae_error", "ae_threshold", "ae_is_anomaly", "ae_risk_percent", "ae_surprise"]
SEQ_FIELDS = ["seq_risk", "seq_is_block", "seq_risk_max", "seq_risk_max_at", "seq_surprise"]


@dataclass(frozen=True)
class Challenger:
    """The configured challenger versions (None: that model is the champion's)."""

    behavior: ModelVersion | None
    sequence: ModelVersion | None

    @property
    def configured(self) -> bool:
        return self.behavior is not None or self.sequence is not None

    def checksums(self) -> dict[str, str]:
        versions = [v for v in (self.behavior, self.sequence) if v is not None]
        return {f"{PREFIX}{v.name}/{v.version}/{f}": s for v in versions for f, s in v.checksums.items()}


def load(cfg: Config, store: artifacts.ModelFiles | None = None) -> Challenger:
    """Read and verify the configured challenger versions (checksums checked, nothing deserialized)."""
    wanted = cfg.get("models.challenger", None) or {}  # keys checked by the config loader
    versions = {}
    for name in (contract.AE_MODEL, contract.SEQ_MODEL):
        version = wanted.get(name)
        versions[name] = artifacts.load_version(cfg.path("models"), name, str(version), store) if version else None
    return Challenger(versions[contract.AE_MODEL], versions[contract.SEQ_MODEL])


def broadcast(spark: SparkSession, version: ModelVersion, runtime: str) -> BroadcastModel:
    """Broadcast under its own name, so its loads and batches are counted apart from the champion's."""
    return BroadcastModel.of(spark, version, runtime, name=f"{PREFIX}{version.name}")


def absent(scored: DataFrame) -> DataFrame:
    """The challenger columns, null (no challenger configured)."""
    return scored.withColumns({f.name: F.lit(None).cast(f.dataType) for f in contract.CHALLENGER_FIELDS})


def score(
    scored: DataFrame,
    spark: SparkSession,
    cfg: Config,
    challenger: Challenger,
    champion: tuple[ModelVersion, ModelVersion],
    threads: int,
    counter: Any,
) -> DataFrame:
    """Add the challenger columns to ``scored`` (the champion's model outputs, before ``decide``)."""
    if not challenger.configured:
        return absent(scored)
    runtime = runtimes.configured(cfg)
    behavior, sequence = challenger.behavior, challenger.sequence
    ae_version, seq_version = behavior or champion[0], sequence or champion[1]
    ae_model = broadcast(spark, behavior, runtime) if behavior else None
    seq_model = broadcast(spark, sequence, runtime) if sequence else None
    # the challenger's models through the champion's UDF; an unset model's outputs are the champion's
    mine = [*(AE_FIELDS if behavior else []), *(SEQ_FIELDS if sequence else [])]
    theirs = [c for c in (*AE_FIELDS, *SEQ_FIELDS) if c not in mine]
    udf = models_udf(ae_model, seq_model, threads, counter, int(cfg.get("scoring.max_windows_per_session")))
    out = scored.withColumn("_challenger", udf(*model_inputs(behavior is not None, sequence is not None)))
    out = out.withColumns({f"{PREFIX}{c}": F.col(f"_challenger.{c}") for c in mine}).drop("_challenger")
    out = out.withColumns({f"{PREFIX}{c}": F.col(c) for c in theirs})
    out = out.withColumn(
        f"{PREFIX}risk_score",
        # the user baseline (not a model version) is the champion's and the challenger's alike
        calibration.risk_score_column(
            F.col(f"{PREFIX}ae_surprise"),
            F.col(f"{PREFIX}seq_surprise"),
            *([F.col(BASELINE_SURPRISE)] if BASELINE_SURPRISE in out.columns else []),
        ),
    )
    out = _challenger_decision(out, cfg, ae_version.risk_score_cut)
    return out.withColumns(
        {
            f"{PREFIX}ae_model_version": F.lit(ae_version.version),
            f"{PREFIX}seq_model_version": F.lit(seq_version.version),
        }
    ).drop(f"{PREFIX}ae_surprise", f"{PREFIX}seq_surprise")


def _challenger_decision(df: DataFrame, cfg: Config, risk_score_cut: float | None) -> DataFrame:
    """The configured rules over the challenger's columns: swap names, decide, swap back (projections only)."""
    aside = {c: f"_champion_{c}" for c in SWAPPED if c in df.columns}
    df = df.withColumnsRenamed(aside)
    df = df.withColumnsRenamed({f"{PREFIX}{c}": c for c in SWAPPED})
    df = with_decision(df, cfg, risk_score_cut, f"{PREFIX}decision")
    df = df.withColumnsRenamed({c: f"{PREFIX}{c}" for c in SWAPPED})
    return df.withColumnsRenamed({v: k for k, v in aside.items()})


def disagreements(scored: DataFrame, examples: int = 5) -> dict[str, Any]:
    """Where champion and challenger decide differently: counts per (champion, challenger) pair and examples."""
    decided = scored.filter(F.col(f"{PREFIX}decision").isNotNull())
    differ = decided.filter(F.col("decision") != F.col(f"{PREFIX}decision"))
    pairs = {
        f"{r['decision']}->{r[f'{PREFIX}decision']}": int(r["count"])
        for r in differ.groupBy("decision", f"{PREFIX}decision").count().collect()
    }
    gap = F.abs(F.col("risk_score") - F.col(f"{PREFIX}risk_score"))
    top = (
        differ.orderBy(gap.desc(), "session_id")
        .select("session_id", "decision", f"{PREFIX}decision", "risk_score", f"{PREFIX}risk_score")
        .limit(examples)
        .collect()
    )
    return {
        "sessions_compared": decided.count(),
        "disagreements": sum(pairs.values()),
        "pairs": dict(sorted(pairs.items())),
        "examples": [r.asDict() for r in top],
    }
