"""Counting a scored day for the nightly report, one Arrow batch at a time (pure: pyarrow and numpy).

``report.observe`` sends the columns it needs through ``mapInArrow``: each Python worker counts its
batches here and returns one small table per partition, (metric, key, count), which Spark sums.
Binning is numpy's (``drift.bin_index``, ``DisplayBins.index``), the same code that bins a
training reference, so the day and its reference meet in the same bins. Spark's own expressions
did the same in the JVM at several times the cost: 35 chains of comparisons per session, in one
generated method too large for the JIT to compile.

Metrics: ``decision`` (key: the decision), ``dq_none`` (key "1": sessions without data-quality
flags), ``dq_flag`` (each flag), ``reason`` (each reason code of a flagged session, once per
session), ``drift:<column>`` (key: the drift bin, ``drift.MISSING_BIN`` for a null) and
``hist:<column>`` (key: the display bin; nulls are not drawn).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raksha.pipeline import drift
from raksha.pipeline.report_doc import DisplayBins

SCHEMA = "metric string, key string, count long"
ARROW_SCHEMA = pa.schema([("metric", pa.string()), ("key", pa.string()), ("count", pa.int64())])
DECISION, DQ_FLAGS, REASON_CODES = "decision", "dq_flags", "reason_codes"  # the batch's other columns


@dataclass(frozen=True)
class Plan:
    """What to count: the drift edges and display bins of the columns the batches carry by these names."""

    drift_edges: Mapping[str, tuple[float, ...]]
    bins: Mapping[str, DisplayBins]

    def count_batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``mapInArrow``'s function: one batch of (metric, key, count) for all of a partition's batches."""
        totals: Counter[tuple[str, str]] = Counter()
        for batch in batches:
            totals.update(self.count(batch))
        if totals:
            keys = list(totals)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([m for m, _ in keys], pa.string()),
                    pa.array([k for _, k in keys], pa.string()),
                    pa.array([totals[k] for k in keys], pa.int64()),
                ],
                schema=ARROW_SCHEMA,
            )

    def count(self, batch: pa.RecordBatch) -> Counter[tuple[str, str]]:
        """(metric, key) -> sessions of one batch."""
        out: Counter[tuple[str, str]] = Counter()
        table = pa.Table.from_batches([batch])
        out.update(_values(table[DECISION], "decision"))
        out.update(_values(pc.list_flatten(table[DQ_FLAGS]), "dq_flag"))
        out.update(_values(pc.list_flatten(table[REASON_CODES]), "reason"))
        without = pc.sum(pc.equal(pc.list_value_length(table[DQ_FLAGS]), 0)).as_py() or 0
        if without:
            out[("dq_none", "1")] += int(without)
        for column, edges in self.drift_edges.items():
            out.update(_indexes(drift.bin_index(_floats(table[column]), edges), f"drift:{column}"))
        for column, bins in self.bins.items():
            x = _floats(table[column])
            out.update(_indexes(bins.index(x[~np.isnan(x)]), f"hist:{column}"))
        return out


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64, null -> NaN."""
    return column.cast(pa.float64()).to_numpy()


def _values(column: pa.ChunkedArray | pa.Array, metric: str) -> dict[tuple[str, str], int]:
    counted = pc.value_counts(column)
    values, counts = counted.field("values").to_pylist(), counted.field("counts").to_pylist()
    return {(metric, v): int(n) for v, n in zip(values, counts, strict=True) if v is not None}


def _indexes(index: np.ndarray, metric: str) -> dict[tuple[str, str], int]:
    keys, counts = np.unique(index, return_counts=True)
    return {(metric, str(int(k))): int(n) for k, n in zip(keys, counts, strict=True)}
