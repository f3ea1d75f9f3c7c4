"""One deserialized model per Python worker process.

Why: a Spark Python worker runs many tasks and each task many Arrow batches; deserializing a
model costs far more than scoring a batch (and with ``scoring.runtime: keras``, importing
TensorFlow costs seconds and hundreds of MB). Like MLflow's ``SparkModelCache``, this module
keeps what it built in a module-level dict, so a worker builds each model version once and
reuses it for every later batch and task it runs (Spark reuses Python workers by default). The
cache key is the model's name, version, runtime and checksums, so a new version never reuses an
old model.

Every build is reported to the driver through a Spark accumulator keyed by worker pid, which
is how the job logs "loaded N times in W workers".
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from pyspark.accumulators import AccumulatorParam

log = logging.getLogger(__name__)

_models: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


class CounterParam(AccumulatorParam):
    """Accumulates ``{key: count}`` dicts (key like ``"loads:behavior_autoencoder:1234"``)."""

    def zero(self, value: dict[str, int]) -> dict[str, int]:
        return {}

    def addInPlace(self, a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        for key, count in b.items():
            a[key] = a.get(key, 0) + count
        return a


def cache_key(name: str, version: str, checksums: dict[str, str], runtime: str) -> tuple[str, ...]:
    return (name, version, runtime, *sorted(f"{k}={v}" for k, v in checksums.items()))


def get(key: tuple[str, ...], build: Callable[[], Any], counter: Any = None) -> Any:
    """The model for ``key``, built by ``build()`` on first use in this process."""
    model = _models.get(key)
    if model is not None:
        return model
    with _lock:
        model = _models.get(key)
        if model is None:
            model = build()
            _models[key] = model
            if counter is not None:
                counter.add({f"loads:{key[0]}:{os.getpid()}": 1})
            log.info("loaded %s/%s in worker %s", key[0], key[1], os.getpid())
    return model


def note_batch(counter: Any, name: str) -> None:
    if counter is not None:
        counter.add({f"batches:{name}:{os.getpid()}": 1})


def summarize(counts: dict[str, int], name: str) -> dict[str, int]:
    """loads, workers (distinct pids that scored batches) and batches for one model."""
    loads = sum(v for k, v in counts.items() if k.startswith(f"loads:{name}:"))
    batch_keys = [k for k in counts if k.startswith(f"batches:{name}:")]
    return {
        "loads": loads,
        "workers": len(batch_keys),
        "batches": sum(counts[k] for k in batch_keys),
    }
