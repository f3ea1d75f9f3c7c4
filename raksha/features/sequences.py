"""Action sequences: ordering and encoding in Spark, padding as Keras ``pad_sequences`` does.

``session_sequences`` is a pure DataFrame transform (action log -> one row per session with
its ordered action tokens). ``pad_tokens`` is the notebook's ``pad_sequences(maxlen=10,
padding='post')`` in numpy: more than 10 actions keep the last 10 (truncating='pre', the
default), fewer are padded with 0 at the end. ``MAX_WINDOWS_PER_SESSION`` is how many of a
session's windows (one per action) the job scores by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from raksha import contract

# The default of ``scoring.max_windows_per_session`` (conf/base.yaml says why 1000; a test checks they agree):
# a session with more actions has only its last this many windows scored (``raksha.scoring.scorers``)
# and is flagged SEQUENCE_WINDOWS_CAPPED (``raksha.ingest.quality``).
MAX_WINDOWS_PER_SESSION = 1000


def _vocabulary_map() -> Column:
    pairs = [F.lit(x) for name, code in contract.ACTIONS.items() for x in (name, code)]
    return F.create_map(*pairs)


def session_sequences(actions: DataFrame) -> DataFrame:
    """session_id, action_tokens (all actions, ordered by event_ts then seq_no), counts."""
    # each action's token is looked up on its own row, and the ordered tokens taken out of the sorted events as
    # one field, so no per-session lambda runs (Spark interprets those, element by element). Events that tie on
    # (event_ts, seq_no) are ordered by their token, which is all the sequence holds of them: the same tokens
    # give the same sequence on every run. The action's name is not carried: the day's actions are collected
    # per session (a sort, spilled at 10M sessions) with a fifth fewer bytes (the action log of the 1M bench,
    # warm, alternating: 6.2/6.3 s -> 5.1/5.1 s)
    token = F.coalesce(_vocabulary_map()[F.col("action")], F.lit(contract.UNKNOWN_ACTION)).alias("token")
    ordered = actions.groupBy("session_id").agg(
        F.array_sort(F.collect_list(F.struct("event_ts", "seq_no", token))).alias("events")
    )
    tokens = F.col("events")["token"]
    known = F.array_remove("action_tokens", contract.UNKNOWN_ACTION)
    return ordered.select("session_id", tokens.alias("action_tokens")).select(
        "session_id",
        "action_tokens",
        F.size("action_tokens").cast("int").alias("action_count"),
        (F.size("action_tokens") - F.size(known)).cast("int").alias("unknown_action_count"),
    )


def encode_actions(actions: Sequence[str]) -> list[int]:
    """The notebook's ``[ACTIONS.get(a, 0) for a in action_sequence]``."""
    return [contract.ACTIONS.get(a, contract.UNKNOWN_ACTION) for a in actions]


def pad_tokens(sequences: Sequence[Sequence[int]], maxlen: int = contract.MAX_SEQ_LENGTH) -> np.ndarray:
    """``pad_sequences(sequences, maxlen=maxlen, padding='post')`` (int32, truncating='pre')."""
    out = np.zeros((len(sequences), maxlen), dtype=np.int32)
    for i, seq in enumerate(sequences):
        if seq is None:
            continue
        kept = np.asarray(seq, dtype=np.int32)[-maxlen:]
        out[i, : len(kept)] = kept
    return out
