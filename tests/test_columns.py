"""The compiled short forms of ``transform`` and ``exists`` give what the lambdas give, at every length."""

from __future__ import annotations

from pyspark.sql import functions as F

from raksha import columns

LENGTHS = [None, 0, 1, 3, columns.SHORT, columns.SHORT + 1, 25]


def _frame(spark):
    rows = [(i, None if n is None else [{"a": k, "b": f"x{k % 4}"} for k in range(n)]) for i, n in enumerate(LENGTHS)]
    return spark.createDataFrame(rows, "i int, xs array<struct<a:int, b:string>>")


def test_map_short_equals_transform(spark):
    def fn(x):
        return x.withField("a", x["a"] * 2).withField("c", F.concat(x["b"], F.lit("!")))

    out = (
        _frame(spark)
        .select(
            "i",
            columns.map_short(F.col("xs"), fn).alias("short"),
            F.transform("xs", fn).alias("lambda"),
        )
        .orderBy("i")
        .collect()
    )
    assert len(out) == len(LENGTHS)
    for row in out:
        assert row["short"] == row["lambda"], row["i"]
    assert out[0]["short"] is None and out[1]["short"] == []
    assert [r["a"] for r in out[-1]["short"]] == [2 * k for k in range(25)]


def test_exists_short_equals_exists(spark):
    def predicates():
        yield lambda x: x["a"] == 2
        yield lambda x: x["b"] == "x3"
        yield lambda x: x["a"] > 11  # only in arrays longer than SHORT

    frame = _frame(spark)
    for n, predicate in enumerate(predicates()):
        out = (
            frame.select(
                "i",
                columns.exists_short(F.col("xs"), predicate).alias("short"),
                F.exists("xs", predicate).alias("lambda"),
            )
            .orderBy("i")
            .collect()
        )
        assert [r["short"] for r in out] == [r["lambda"] for r in out], n
    assert [r["short"] for r in out] == [None, False, False, False, False, False, True]
