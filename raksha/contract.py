"""The data contract (DESIGN.md sections 3-5): names, orders, ranges and schemas.

One place for every name the notebooks fixed: the 30 behavioural features in the
autoencoder notebook's order, the LSTM notebook's action vocabulary, the padding
length, and the input and output schemas of the nightly job.
"""

from __future__ import annotations

import math

from pyspark.sql import types as T

# --- autoencoder notebook: 18 continuous then 12 binary features, in this order ---
CONTINUOUS_FEATURES: tuple[str, ...] = (
    "tap_duration",
    "swipe_velocity",
    "touch_pressure",
    "tap_interval_avg",
    "accel_variance",
    "gyro_variance",
    "battery_level",
    "brightness_level",
    "screen_on_time",
    "time_of_day_sin",
    "time_of_day_cos",
    "wifi_id_hash",
    "gps_latitude",
    "gps_longitude",
    "device_orientation",
    "touch_area",
    "touch_event_count",
    "app_usage_time",
)
BINARY_FEATURES: tuple[str, ...] = (
    "accel_variance_missing",
    "gyro_variance_missing",
    "charging_state",
    "wifi_info_missing",
    "gps_location_missing",
    "day_of_week_mon",
    "day_of_week_tue",
    "day_of_week_wed",
    "day_of_week_thu",
    "day_of_week_fri",
    "day_of_week_sat",
    "day_of_week_sun",
)
FEATURES: tuple[str, ...] = CONTINUOUS_FEATURES + BINARY_FEATURES
DAY_OF_WEEK_FEATURES: tuple[str, ...] = BINARY_FEATURES[5:]

# time_of_day_sin/cos encode the hour on the unit circle at angle 2*pi*hour/24 + this phase: midnight
# at (sin, cos) = (-1, 0), as the autoencoder notebook's examples read.
TIME_OF_DAY_PHASE = -math.pi / 2

# Physical range of each continuous feature as the app sends it ("normalized"):
# a value outside its range is corrupt, not unusual.
SIGNED_FEATURES: frozenset[str] = frozenset({"time_of_day_sin", "time_of_day_cos"})


def feature_range(name: str) -> tuple[float, float]:
    """Closed interval a valid value of feature ``name`` lies in."""
    if name in SIGNED_FEATURES:
        return (-1.0, 1.0)
    return (0.0, 1.0)


# --- LSTM notebook: vocabulary (0 is padding and unknown actions) and length ---
ACTIONS: dict[str, int] = {
    "LOGIN": 1,
    "VIEW_BALANCE": 2,
    "VIEW_TRANSACTIONS": 3,
    "TRANSFER_SMALL": 4,
    "TRANSFER_LARGE": 5,
    "CHANGE_PASSWORD": 6,
    "ADD_RECIPIENT": 7,
    "LOGOUT": 8,
}
ACTION_NAMES: dict[int, str] = {code: name for name, code in ACTIONS.items()}
UNKNOWN_ACTION = 0
VOCABULARY_SIZE = len(ACTIONS) + 1  # Embedding(input_dim=9)
MAX_SEQ_LENGTH = 10

# Thresholds the notebooks hard-coded.
SEQ_BLOCK_THRESHOLD = 0.8
AE_THRESHOLD_PERCENTILE = 95.0

# Model names under paths.models.
AE_MODEL = "behavior_autoencoder"
SEQ_MODEL = "sequence_lstm"

DECISIONS: tuple[str, ...] = ("ALLOW", "REVIEW", "BLOCK")
FLAGGED_DECISIONS: tuple[str, ...] = ("REVIEW", "BLOCK")  # what the review queue takes

# Attack kinds written by the generator; the sequence model learns the kinds whose
# action sequence itself is the attack (the others show in behaviour only).
ATTACK_KINDS: tuple[str, ...] = ("account_takeover", "bot", "social_engineering")
SEQUENCE_ATTACK_KINDS: frozenset[str] = frozenset({"account_takeover", "social_engineering"})

# --- input schemas (DESIGN.md section 3) ---
SESSION_ID_COLUMNS: tuple[str, ...] = ("session_id", "user_id", "device_id")

SESSIONS_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType(), True) for c in SESSION_ID_COLUMNS]
    + [T.StructField("session_start", T.TimestampType(), True)]
    + [T.StructField(c, T.DoubleType(), True) for c in CONTINUOUS_FEATURES]
    + [T.StructField(c, T.IntegerType(), True) for c in BINARY_FEATURES]
)

ACTIONS_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), True),
        T.StructField("user_id", T.StringType(), True),
        T.StructField("event_ts", T.TimestampType(), True),
        T.StructField("seq_no", T.IntegerType(), True),
        T.StructField("action", T.StringType(), True),
        T.StructField("amount", T.DoubleType(), True),
    ]
)

LABELS_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), False),
        T.StructField("user_id", T.StringType(), False),
        T.StructField("is_attack", T.IntegerType(), False),
        T.StructField("attack_kind", T.StringType(), True),
        T.StructField("benign_oddity", T.StringType(), True),
    ]
)

# --- output tables (DESIGN.md section 5) ---
REASON_TYPE = T.StructType(
    [
        T.StructField("code", T.StringType(), False),
        T.StructField("feature", T.StringType(), True),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("expected", T.DoubleType(), True),
        T.StructField("contribution", T.DoubleType(), True),
    ]
)

# The challenger's outputs (raksha.scoring.challenger): null when no challenger is configured; never decide.
CHALLENGER_FIELDS = [
    T.StructField("challenger_ae_model_version", T.StringType(), True),
    T.StructField("challenger_seq_model_version", T.StringType(), True),
    T.StructField("challenger_ae_error", T.DoubleType(), True),
    T.StructField("challenger_ae_threshold", T.DoubleType(), True),
    T.StructField("challenger_ae_is_anomaly", T.IntegerType(), True),
    T.StructField("challenger_seq_risk", T.DoubleType(), True),
    T.StructField("challenger_seq_risk_max", T.DoubleType(), True),
    T.StructField("challenger_risk_score", T.DoubleType(), True),
    T.StructField("challenger_decision", T.StringType(), True),
]

SCORED_SESSIONS_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), False),
        T.StructField("user_id", T.StringType(), True),
        T.StructField("device_id", T.StringType(), True),
        T.StructField("session_start", T.TimestampType(), True),
        T.StructField("ae_error", T.DoubleType(), False),
        T.StructField("ae_threshold", T.DoubleType(), False),
        T.StructField("ae_is_anomaly", T.IntegerType(), False),
        T.StructField("ae_risk_percent", T.DoubleType(), False),
        T.StructField("ae_std_error", T.DoubleType(), True),
        T.StructField("seq_risk", T.DoubleType(), False),
        T.StructField("seq_is_block", T.IntegerType(), False),
        T.StructField("seq_risk_max", T.DoubleType(), False),
        T.StructField("seq_risk_max_at", T.IntegerType(), False),
        T.StructField("risk_score", T.DoubleType(), False),
        T.StructField("decision", T.StringType(), False),
        T.StructField("reasons", T.ArrayType(REASON_TYPE, False), False),
        T.StructField("dq_flags", T.ArrayType(T.StringType(), False), False),
        T.StructField("action_count", T.IntegerType(), False),
        T.StructField("unknown_action_count", T.IntegerType(), False),
        T.StructField("ae_model_version", T.StringType(), False),
        T.StructField("seq_model_version", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("scored_at", T.TimestampType(), False),
        *CHALLENGER_FIELDS,
        # added later, so nullable: the session against its user's own baseline (raksha.baselines); null
        # when baselines are off (baseline.enabled) and on days scored before they existed
        T.StructField("user_baseline_score", T.DoubleType(), True),
    ]
)


QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), True),
        T.StructField("user_id", T.StringType(), True),
        T.StructField("session_start", T.TimestampType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("reasons", T.ArrayType(T.StringType(), False), False),
        T.StructField("record", T.StringType(), False),  # the input row as JSON
        T.StructField("run_id", T.StringType(), False),
        T.StructField("quarantined_at", T.TimestampType(), False),
    ]
)

REVIEW_QUEUE_SCHEMA = T.StructType(
    [
        T.StructField("case_rank", T.IntegerType(), True),  # null for audit rows
        T.StructField("case_id", T.StringType(), True),
        T.StructField("case_sessions", T.IntegerType(), True),
        T.StructField("rank_in_case", T.IntegerType(), True),
        T.StructField("session_id", T.StringType(), False),
        T.StructField("user_id", T.StringType(), True),
        T.StructField("device_id", T.StringType(), True),
        T.StructField("session_start", T.TimestampType(), True),
        T.StructField("decision", T.StringType(), False),
        T.StructField("risk_score", T.DoubleType(), False),
        T.StructField("ae_risk_percent", T.DoubleType(), False),
        T.StructField("seq_risk", T.DoubleType(), False),
        T.StructField("seq_risk_max", T.DoubleType(), False),
        T.StructField("reasons", T.ArrayType(REASON_TYPE, False), False),
        T.StructField("audit", T.BooleanType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)

RUN_LOG_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("status", T.StringType(), False),  # one of RUN_STATUSES
        T.StructField("message", T.StringType(), True),
        T.StructField("started_at", T.TimestampType(), False),
        T.StructField("finished_at", T.TimestampType(), False),
        T.StructField("duration_s", T.DoubleType(), False),
        T.StructField("counts", T.MapType(T.StringType(), T.LongType(), False), False),
        T.StructField("decisions", T.MapType(T.StringType(), T.LongType(), False), False),
        T.StructField("ae_model_version", T.StringType(), True),
        T.StructField("seq_model_version", T.StringType(), True),
        T.StructField("model_checksums", T.MapType(T.StringType(), T.StringType(), False), False),
        T.StructField("ae_threshold", T.DoubleType(), True),
        T.StructField("model_loads", T.MapType(T.StringType(), T.LongType(), False), False),
        T.StructField("timings_s", T.MapType(T.StringType(), T.DoubleType(), False), False),
        # the Delta version of each table's day this run committed (raksha history, restore)
        T.StructField("table_versions", T.MapType(T.StringType(), T.LongType(), False), False),
        T.StructField("config_hash", T.StringType(), False),
        T.StructField("code_version", T.StringType(), False),
        T.StructField("spark_master", T.StringType(), False),
        # added later, so nullable (rows of older runs hold null; raksha.platform.tables adds them to older tables):
        # what went wrong but did not stop the run (DRIFT:<column> PSI ... above 0.2, a report not written)
        T.StructField("warnings", T.ArrayType(T.StringType(), False), True),
        # the PSI of each input feature and model score against the model versions' reference (the nightly report)
        T.StructField("drift_psi", T.MapType(T.StringType(), T.DoubleType(), False), True),
    ]
)

# --- retraining exports (``raksha export-retraining``; raksha.feedback.exports says how rows are chosen) ---
RETRAIN_BEHAVIOR = "retrain_behavior"
RETRAIN_SEQUENCES = "retrain_sequences"

RETRAIN_BEHAVIOR_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), False),
        T.StructField("user_id", T.StringType(), True),  # HMAC-SHA256 pseudonym
        *[f for f in SESSIONS_SCHEMA.fields if f.name in FEATURES],  # coarsened as raksha.decide.privacy says
        T.StructField("selection_reason", T.StringType(), False),  # legit_verdict or unflagged_low_score
        T.StructField("run_id", T.StringType(), False),
    ]
)
RETRAIN_SEQUENCES_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), False),
        T.StructField("action_tokens", T.ArrayType(T.IntegerType(), False), False),
        T.StructField("label", T.IntegerType(), False),  # 1 fraud, 0 legit
        T.StructField("weight", T.DoubleType(), False),  # 1, or 1 / review.audit_rate for the audit sample
        T.StructField("source", T.StringType(), False),  # verdict or audit
        T.StructField("run_id", T.StringType(), False),
    ]
)

# --- analysts' verdicts (``raksha label``): one row per session and dt, the latest verdict ---
VERDICTS: tuple[str, ...] = ("fraud", "legit", "unsure")

VERDICTS_SCHEMA = T.StructType(
    [
        T.StructField("session_id", T.StringType(), False),
        T.StructField("verdict", T.StringType(), False),  # one of VERDICTS
        T.StructField("analyst", T.StringType(), False),
        T.StructField("reviewed_at", T.TimestampType(), False),
        T.StructField("note", T.StringType(), True),
        T.StructField("source_file", T.StringType(), False),  # the file the verdict came from
        T.StructField("source_line", T.IntegerType(), False),  # its line (CSV) or 1-based row (Parquet)
        T.StructField("run_id", T.StringType(), False),  # the `raksha label` run that landed it
        T.StructField("ingested_at", T.TimestampType(), False),
    ]
)

RUN_STATUSES: tuple[str, ...] = ("SUCCEEDED", "FAILED", "RESTORED")

# --- each user's own behavioural baseline (raksha.baselines): one snapshot per dt, the state after that day ---
# The habits a user's sessions are compared with, each as decayed sums (weight, sum, sum of squares).
# Every continuous feature but those that are context, not habit (battery, the hour: compared on the circle,
# network and place: compared as sets), in the notebook's order.
BASELINE_FEATURES: tuple[str, ...] = tuple(
    f
    for f in CONTINUOUS_FEATURES
    if f not in {"battery_level", "time_of_day_sin", "time_of_day_cos", "wifi_id_hash", "gps_latitude", "gps_longitude"}
)
USER_BASELINES = "user_baselines"
USER_BASELINE_REFERENCE = "user_baseline_reference"
_SEEN = [
    T.StructField("sessions", T.LongType(), False),
    T.StructField("last_seen", T.DateType(), False),
]
USER_BASELINES_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), False),
        T.StructField("sessions", T.LongType(), False),  # sessions folded in, ever
        T.StructField("first_seen", T.DateType(), False),
        T.StructField("last_seen", T.DateType(), False),  # the sums below are decayed to this date
        *[
            T.StructField(f"{f}_{part}", T.DoubleType(), False)
            for f in BASELINE_FEATURES
            for part in ("weight", "sum", "sumsq")
        ],
        T.StructField("hour_weight", T.DoubleType(), False),
        T.StructField("hour_sin_sum", T.DoubleType(), False),
        T.StructField("hour_cos_sum", T.DoubleType(), False),
        T.StructField(
            "devices", T.ArrayType(T.StructType([T.StructField("id", T.StringType(), False), *_SEEN]), False), False
        ),
        T.StructField(
            "networks", T.ArrayType(T.StructType([T.StructField("id", T.DoubleType(), False), *_SEEN]), False), False
        ),
        T.StructField(
            "places",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("lat_cell", T.IntegerType(), False),
                        T.StructField("lon_cell", T.IntegerType(), False),
                        *_SEEN,
                    ]
                ),
                False,
            ),
            False,
        ),
        T.StructField("run_id", T.StringType(), False),
    ]
)
# The user-baseline score's distribution on the day a snapshot was built from (its sessions of users with
# a history, BLOCK left out): the next day's scores are calibrated against it.
USER_BASELINE_REFERENCE_SCHEMA = T.StructType(
    [
        T.StructField("sessions", T.LongType(), False),
        T.StructField("quantiles", T.ArrayType(T.DoubleType(), False), False),  # 1001 points, 0 to 1
        T.StructField("run_id", T.StringType(), False),
    ]
)

# Every output table: a Delta table partitioned by dt (raksha.platform.tables).
OUTPUT_SCHEMAS: dict[str, T.StructType] = {
    "scored_sessions": SCORED_SESSIONS_SCHEMA,
    "review_queue": REVIEW_QUEUE_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "run_log": RUN_LOG_SCHEMA,
    "verdicts": VERDICTS_SCHEMA,
    RETRAIN_BEHAVIOR: RETRAIN_BEHAVIOR_SCHEMA,
    RETRAIN_SEQUENCES: RETRAIN_SEQUENCES_SCHEMA,
    USER_BASELINES: USER_BASELINES_SCHEMA,
    USER_BASELINE_REFERENCE: USER_BASELINE_REFERENCE_SCHEMA,
}


def _one_of(column: str, values: tuple[str, ...] | tuple[int, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# Invariants that must always hold, enforced by Delta on every commit (CHECK constraints; the
# schemas' non-nullable columns are NOT NULL constraints too). A write that breaks one fails whole.
TABLE_CONSTRAINTS: dict[str, dict[str, str]] = {
    "scored_sessions": {
        "risk_score_range": "risk_score BETWEEN 0 AND 100",
        "decision_known": _one_of("decision", DECISIONS),
        "ae_error_nonnegative": "ae_error >= 0",
        "ae_is_anomaly_binary": _one_of("ae_is_anomaly", (0, 1)),
        "ae_risk_percent_range": "ae_risk_percent BETWEEN 0 AND 100",
        "seq_risk_range": "seq_risk BETWEEN 0 AND 1 AND seq_risk_max BETWEEN 0 AND 1",
        "seq_is_block_binary": _one_of("seq_is_block", (0, 1)),
        "action_counts": "action_count >= 0 AND unknown_action_count BETWEEN 0 AND action_count",
    },
    "review_queue": {
        "risk_score_range": "risk_score BETWEEN 0 AND 100",
        "decision_known": _one_of("decision", DECISIONS),
        "ranked_or_audit": "(audit AND case_rank IS NULL) OR (NOT audit AND case_rank >= 1 AND rank_in_case >= 1)",
    },
    "quarantine": {"has_reason": "size(reasons) >= 1"},
    "run_log": {"status_known": _one_of("status", RUN_STATUSES)},
    "verdicts": {"verdict_known": _one_of("verdict", VERDICTS)},
    RETRAIN_BEHAVIOR: {"selection_known": _one_of("selection_reason", ("legit_verdict", "unflagged_low_score"))},
    RETRAIN_SEQUENCES: {
        "label_binary": _one_of("label", (0, 1)),
        "weight_positive": "weight > 0",
        "source_known": _one_of("source", ("verdict", "audit")),
    },
}

# The columns whose minimum, maximum and null count each data file records in its commit (Delta's data
# skipping), for the tables written with every session or every user of a day: what their readers filter
# by (a date is a partition). Delta's default, the first 32 columns, cost the nightly job's write of
# scored_sessions about a tenth of its time, for statistics of model outputs no query skips files by.
TABLE_STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "scored_sessions": ("session_id", "user_id", "session_start", "decision", "risk_score"),
    USER_BASELINES: ("user_id", "sessions", "last_seen"),
}

# The columns of those tables whose values are nearly all distinct (ids, times, model outputs, a user's decayed
# sums), written without a Parquet dictionary (their Parquet paths: a list's element is ``list.element``). The
# writer hashed each of their values into a dictionary it then gave up on, or that came out no smaller than
# the values: the 10M-session bench day's scored rows wrote in 19.6 s instead of 30.6 s plain (932 against
# 906 MB). Columns of few values (decision, reason codes, flags, versions, run) keep their dictionary.
TABLE_PLAIN_COLUMNS: dict[str, tuple[str, ...]] = {
    "scored_sessions": (
        "session_id",
        "user_id",
        "device_id",
        "session_start",
        "ae_error",
        "ae_risk_percent",
        "ae_std_error",
        "seq_risk",
        "seq_risk_max",
        "risk_score",
        "user_baseline_score",
        "challenger_ae_error",
        "challenger_seq_risk",
        "challenger_seq_risk_max",
        "challenger_risk_score",
        *[f"reasons.list.element.{field}" for field in ("value", "expected", "contribution")],
    ),
    USER_BASELINES: (
        "user_id",
        *[f"{f}_{part}" for f in BASELINE_FEATURES for part in ("weight", "sum", "sumsq")],
        "hour_weight",
        "hour_sin_sum",
        "hour_cos_sum",
    ),
}
