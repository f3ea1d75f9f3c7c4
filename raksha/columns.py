"""Column expressions the pipeline's modules share (pure Spark columns, no I/O).

Spark interprets a higher-order function (``filter``, ``transform``...) row by row and element by
element, while it compiles plain expressions. ``present`` keeps the interpreted compaction for the rows
that need it; ``any_of`` is the compiled test in front of it. ``map_short`` and ``exists_short`` are
``transform`` and ``exists`` written out element by element, compiled, for the short arrays a session
carries (its reasons, its user's places), with the lambda kept for a longer one. Not for nesting: each
element is a copy of the array's expression, so an array built by another of them grows the plan
tenfold (the user-baseline fold, tried that way, ran four times slower).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

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


SHORT = 10  # the longest array ``map_short`` and ``exists_short`` write out element by element


def _elements(array: Column, limit: int) -> list[Column]:
    return [F.try_element_at(array, F.lit(i)) for i in range(1, limit + 1)]


def map_short(array: Column, fn: Callable[[Column], Column], limit: int = SHORT) -> Column:
    """``F.transform(array, fn)``: compiled for an array of at most ``limit`` elements (``fn`` of each, cut
    to the array's size), the interpreted lambda for a longer one; null stays null."""
    written = F.slice(F.array(*[fn(e) for e in _elements(array, limit)]), 1, F.size(array))
    return F.when(array.isNotNull() & (F.size(array) <= limit), written).otherwise(F.transform(array, fn))


def exists_short(array: Column, predicate: Callable[[Column], Column], limit: int = SHORT) -> Column:
    """``F.exists(array, predicate)`` for a predicate that is null-safe or only null on a null element (a
    missing element counts as false): compiled for an array of at most ``limit`` elements, the interpreted
    lambda for a longer one; null for a null array."""
    written = any_of([predicate(e) for e in _elements(array, limit)])
    return F.when(array.isNotNull() & (F.size(array) <= limit), written).otherwise(F.exists(array, predicate))
