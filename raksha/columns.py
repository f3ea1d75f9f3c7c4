"""Column expressions the pipeline's modules share (pure Spark columns, no I/O).

Spark interprets a higher-order function (``filter``, ``transform``...) row by row and element by
element, while it compiles plain expressions. ``present`` keeps the interpreted compaction for the rows
that need it; ``any_of`` is the compiled test in front of it.
"""

from __future__ import annotations

import functools
import operator

from pyspark.sql import Column
from pyspark.sql import functions as F


def any_of(conditions: list[Column]) -> Column:
    """True when one of ``conditions`` is true (a null counts as false)."""
    return functools.reduce(operator.or_, [F.coalesce(c, F.lit(False)) for c in conditions])


def present(items: list[tuple[Column, Column]], empty: Column) -> Column:
    """The values whose condition holds, in order, as an array; ``empty`` (an empty array of their type) for
    a row where none holds, which then costs one compiled test instead of the interpreted compaction."""
    values = F.filter(F.array(*[F.when(condition, value) for condition, value in items]), lambda v: v.isNotNull())
    return F.when(any_of([condition for condition, _ in items]), values).otherwise(empty)
