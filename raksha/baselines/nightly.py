"""The user baselines in the nightly job and in ``raksha baseline build``.

``load`` finds what day D is scored against (the newest snapshot before D, its reference, the
population from the autoencoder version's scaler); ``Baselines.score`` adds ``user_baseline_score``,
its reasons and its surprise (against the reference, or, with none yet, the parametric tail of
``fallback_surprise``). ``update`` folds the published day into a new snapshot and rebuilds the
snapshots of later dates that depended on the old one (a rerun of an earlier date). ``build_days``
does the same from the input history for ``raksha baseline build``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from raksha import contract
from raksha.baselines import fold, habits, snapshots
from raksha.baselines.habits import Population, Settings
from raksha.config import Config
from raksha.ingest import inputs, quality
from raksha.platform import session, tables
from raksha.scoring import calibration

log = logging.getLogger(__name__)

SURPRISE = "user_baseline_surprise"
REASON_MIN_SURPRISE = 1.0  # -log10 of a 10% tail


def fallback_q95() -> float:
    """The 95th percentile of a chi-square with one degree of freedom per habit feature: the score of a
    user whose habits are Gaussian, before any reference exists."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.95, len(contract.BASELINE_FEATURES)))


def fallback_surprise(score: Column) -> Column:
    """5% at ``fallback_q95``, falling exponentially beyond (as the autoencoder's fallback tail)."""
    return F.lit(-math.log10(0.05)) * F.greatest(score, F.lit(0.0)) / F.lit(fallback_q95())


@dataclass
class Baselines:
    """What day ``day`` is scored against: the snapshot (``state``, read from its table) and, computed from
    it once, each user's ``expected`` habits, checkpointed on the executors: the scored day's plan then
    holds no read of ``user_baselines``, so writing the new snapshot leaves the cached scored day alone
    (Delta re-caches every cached plan that reads a table it writes). The fold of the day uses them too."""

    day: dt.date
    as_of: dt.date | None
    state: DataFrame | None
    reference: list[float] | None
    population: Population
    settings: Settings
    expected: DataFrame | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.expected is None:
            expected = habits.expectations(self.state, self.day, self.population, self.settings)
            self.expected = expected.localCheckpoint(storageLevel=session.DAY_STORAGE)

    def score(self, sessions: DataFrame) -> DataFrame:
        """``habits.score`` with its surprise; reasons only where the score is notable (surprise at least
        ``REASON_MIN_SURPRISE``: a tail of 10% or less), so a usual session names no cause and costs no
        sorting of its causes."""
        parts = habits.with_parts(sessions, self.expected, self.population, self.settings)
        value = F.col(habits.SCORE)
        surprise = (
            fallback_surprise(value) if self.reference is None else calibration.surprise_column(value, self.reference)
        )
        with_surprise = parts.withColumn(SURPRISE, surprise)
        return habits.with_reasons(with_surprise, F.col(SURPRISE) >= F.lit(REASON_MIN_SURPRISE))


def current_population(spark: SparkSession, cfg: Config) -> Population:
    """The population of the promoted autoencoder version (read and verified by URI)."""
    from raksha.models import artifacts
    from raksha.platform.storage import Storage

    return population_of(artifacts.load_version(cfg.path("models"), contract.AE_MODEL, store=Storage(spark)))


def population_of(ae_version) -> Population:
    import json

    from raksha.features.behavior import Scaler

    return Population.from_scaler(Scaler.from_json(json.loads(ae_version.files["scaler.json"])))


def load(spark: SparkSession, cfg: Config, day: dt.date, ae_version) -> Baselines:
    as_of = snapshots.snapshot_before(spark, cfg, day)
    state = snapshots.read_snapshot(spark, cfg, as_of) if as_of else None
    reference = snapshots.read_reference(spark, cfg, as_of) if as_of else None
    if as_of is None:
        log.info("user baselines: none before %s: every user is compared with the population", day)
    else:
        log.info("user baselines: %s scored against the snapshot of %s", day, as_of)
    return Baselines(day, as_of, state, reference, population_of(ae_version), Settings.of(cfg))


def fraud_sessions(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """session_id of every session an analyst's current verdict says is fraud (None: no verdicts yet)."""
    if not tables.exists(spark, cfg, "verdicts"):
        return None
    return spark.table(tables.table_name(cfg, "verdicts")).where(F.col("verdict") == "fraud").select("session_id")


def update(
    spark: SparkSession,
    cfg: Config,
    baselines: Baselines,
    scored: DataFrame,
    run_id: str,
    reference: tuple[int, list[float] | None] | None = None,
) -> dict[str, int]:
    """Fold the published day (``scored``: its sessions with their features, decision and baseline columns)
    into its snapshot, with the day's reference (``snapshots.reference_quantiles`` of ``scored`` unless
    the caller counted it already); then rebuild the later snapshots that were built on the old state."""
    day = baselines.day
    state = fold.fold_day(
        baselines.state,
        scored,
        day,
        baselines.population,
        baselines.settings,
        run_id,
        fraud_sessions(spark, cfg),
        baselines.expected,
    )
    if reference is None:
        reference = snapshots.reference_quantiles(scored)
    versions = snapshots.publish(spark, cfg, day, state, reference, run_id)
    rebuild_after(spark, cfg, day, run_id, baselines.population)
    snapshots.prune(spark, cfg, baselines.settings.keep_days, run_id)
    return versions


def rebuild_after(
    spark: SparkSession, cfg: Config, day: dt.date, run_id: str, population: Population | None = None
) -> list[dt.date]:
    """Rebuild the snapshots after ``day`` (its snapshot changed: a rerun, a restore) on it; returns their dates."""
    later = [d for d in snapshots.snapshot_dates(spark, cfg) if d > day]
    if not later:
        return []
    log.info(
        "user baselines: %s changed, so the snapshots of %s are rebuilt (the days themselves keep the scores "
        "they were given: rerun them to rescore)",
        day,
        ", ".join(d.isoformat() for d in later),
    )
    if population is None:
        population = current_population(spark, cfg)
    build_days(spark, cfg, later, run_id, population)
    return later


def history_day(spark: SparkSession, cfg: Config, day: dt.date) -> DataFrame:
    """A day's valid input sessions, with the decision it was published with (null when not scored)."""
    sessions = inputs.read_sessions(spark, cfg.path("sessions"), day)
    valid, _ = quality.split_valid(quality.flag_sessions(sessions, day))
    if tables.exists(spark, cfg, "scored_sessions"):
        decided = (
            spark.table(tables.table_name(cfg, "scored_sessions"))
            .where(F.col("dt") == day.isoformat())
            .select("session_id", "decision")
        )
        return valid.join(decided, on="session_id", how="left")
    return valid.withColumn("decision", F.lit(None).cast("string"))


def build_days(spark: SparkSession, cfg: Config, days: list[dt.date], run_id: str, population: Population) -> None:
    """Snapshots of ``days`` (in order) from their input sessions, each on the snapshot before it."""
    settings = Settings.of(cfg)
    fraud = fraud_sessions(spark, cfg)
    for day in sorted(days):
        as_of = snapshots.snapshot_before(spark, cfg, day)
        previous = snapshots.read_snapshot(spark, cfg, as_of) if as_of else None
        reference = snapshots.read_reference(spark, cfg, as_of) if as_of else None
        where = cfg.path("sessions")
        read = inputs.check_readable(inputs.read_sessions(spark, where, day), "sessions", day, where)
        with session.shuffle_partitions_for(spark, cfg, read):
            baselines = Baselines(day, as_of, previous, reference, population, settings)
            sessions = baselines.score(history_day(spark, cfg, day)).persist(session.DAY_STORAGE)
            try:
                state = fold.fold_day(previous, sessions, day, population, settings, run_id, fraud, baselines.expected)
                snapshots.publish(spark, cfg, day, state, snapshots.reference_quantiles(sessions), run_id)
            finally:
                sessions.unpersist()
        log.info("user baselines: snapshot of %s built (on %s)", day, as_of or "no earlier snapshot")


def build(spark: SparkSession, cfg: Config, start: dt.date, end: dt.date) -> dict[str, object]:
    """``raksha baseline build``: the snapshots of start .. end from the input history (each day on the one
    before it; a day already scored keeps its published decisions out: BLOCK does not count), then the
    later snapshots rebuilt on them. Returns the run id, the dates built and the users of the last."""
    from raksha.platform import locks, runs

    # the state's tables, the published days and verdicts it reads, where paths.warehouse puts them
    tables.place_tables(spark, cfg, (*snapshots.TABLES, "scored_sessions", "verdicts"))
    run_id = runs.new_run_id("baseline")
    population = current_population(spark, cfg)
    days = inputs.days(start, end)
    keys = [locks.date_key(t, d) for t in snapshots.TABLES for d in days]
    with locks.hold(spark, cfg, keys, run_id):
        later = [d for d in snapshots.snapshot_dates(spark, cfg) if d > end]
        build_days(spark, cfg, [*days, *later], run_id, population)
        snapshots.prune(spark, cfg, Settings.of(cfg).keep_days, run_id)
    users = snapshots.read_snapshot(spark, cfg, max([*days, *later])).count()
    return {"run_id": run_id, "built": [*days, *later], "users": users}
