"""Deserialized, ready-to-run models: verified bytes in, numpy batches through.

A scorer is built from a verified ``ModelVersion`` (see ``artifacts``) and runs whole
batches; it never calls the model once per row. Built once per Python worker by
``model_cache``. Besides the notebooks' outputs, each scorer says how unusual an output is
against its version's reference distribution (``calibration``) and which inputs drove it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from raksha import contract
from raksha.features.behavior import (
    FeatureErrors,
    Scaler,
    ae_outputs,
    ae_reasons,
    feature_errors,
    feature_matrix,
    model_input,
    reconstruction_error,
)
from raksha.features.sequences import MAX_WINDOWS_PER_SESSION, pad_tokens
from raksha.models import runtimes
from raksha.models.artifacts import ModelVersion
from raksha.scoring import calibration

log = logging.getLogger(__name__)

# Sequence reasons (occlusion) are computed for windows at least this risky.
SEQ_REASON_MIN_RISK = 0.5
# Behavioural reasons (occlusion) are computed for sessions at least this surprising: ae_surprise 1, a
# tail probability of 10% (on a normal day, about one session in ten pays for its 23 variants).
AE_REASON_MIN_SURPRISE = 1.0
TOP_REASONS = 3
# Scored windows a worker remembers (about 100 bytes each, so at most ~100 MB); a day of a million
# sessions holds about 240,000 distinct windows. Past the limit, new windows are scored per batch.
MEMO_LIMIT = 1_000_000
# What one Python worker holds while it scores a batch stays bounded, however long its sessions:
# rows per model call (ONNX Runtime holds about 13 KB per row of the LSTM while it runs, so about
# 130 MB), and windows built at once (about 400 bytes each in numpy while built, so about 40 MB).
# A batch of 10,000 normal sessions holds about 55,000 windows and 8,500 distinct ones: one group,
# one call. Past that, whole sessions go in groups (a session is never split: the cap,
# ``scoring.max_windows_per_session``, bounds one session) and the distinct rows in several calls.
FORWARD_ROWS = 10_000
WINDOW_GROUP = 100_000


def window_keys(rows: np.ndarray) -> np.ndarray:
    """One int64 per padded window (its tokens as digits in base VOCABULARY_SIZE): equal iff the rows are."""
    if rows.size and (rows.min() < 0 or rows.max() >= contract.VOCABULARY_SIZE):
        raise ValueError(f"action token outside the vocabulary 0..{contract.VOCABULARY_SIZE - 1}")
    weights = contract.VOCABULARY_SIZE ** np.arange(rows.shape[1] - 1, -1, -1, dtype=np.int64)
    return rows.astype(np.int64) @ weights


def session_windows(
    token_sequences: Sequence[Sequence[int] | None],
    n: int = contract.MAX_SEQ_LENGTH,
    max_windows_per_session: int | None = None,
):
    """Every window the notebook could have scored, for each session, as one padded matrix.

    For action j (1-based) of a session the window is its last (up to) ``n`` actions up to j,
    padded with 0 at the end as ``pad_tokens`` does: the session as the notebook would have seen
    it had it ended at j. A session without actions has one empty window. With
    ``max_windows_per_session``, only a session's last that many windows (its end, where the
    notebook's seq_risk is); j keeps counting the session's actions from its first. Returns
    (padded (W, n) int32, session index (W,), window end j (W,), window offset (W,), first window
    of each session (S,), windows per session (S,)).
    """
    if max_windows_per_session is not None and max_windows_per_session < 1:
        raise ValueError(f"max_windows_per_session must be at least 1, not {max_windows_per_session}")
    raw = [[] if s is None else s for s in token_sequences]
    lengths = np.fromiter((len(s) for s in raw), dtype=np.int64, count=len(raw))
    counts = np.maximum(lengths, 1)
    if max_windows_per_session is not None:
        counts = np.minimum(counts, max_windows_per_session)
    # the actions before the first kept window's first action are never read: not even copied
    skipped = np.maximum(lengths - counts - (n - 1), 0)
    seqs = [np.asarray(s[k:], dtype=np.int32) for s, k in zip(raw, skipped.tolist(), strict=True)]
    first = (np.cumsum(counts) - counts).astype(np.int64)
    flat = np.concatenate(seqs) if len(seqs) else np.zeros(0, dtype=np.int32)
    starts = np.cumsum(lengths - skipped) - (lengths - skipped) - skipped  # action 0 of each session in ``flat``
    session = np.repeat(np.arange(len(seqs)), counts)
    end = np.arange(counts.sum()) - np.repeat(first, counts) + np.repeat(lengths - counts + 1, counts)
    end = np.maximum(end, 0)  # 0 for the empty window
    offset = np.maximum(end - n, 0)
    width = end - offset
    steps = np.arange(n)
    index = (np.repeat(starts, counts) + offset)[:, None] + steps[None, :]
    inside = steps[None, :] < width[:, None]
    padded = np.zeros((len(end), n), dtype=np.int32)
    if len(flat):
        padded = np.where(inside, flat[np.clip(index, 0, len(flat) - 1)], 0).astype(np.int32)
    return padded, session, np.maximum(end, 1), offset, first, counts


def session_groups(windows: np.ndarray, limit: int) -> list[slice]:
    """Consecutive sessions in groups of at most ``limit`` windows in all (a session with more: alone)."""
    total = np.cumsum(windows)
    groups, start = [], 0
    while start < len(total):
        before = int(total[start - 1]) if start else 0
        stop = max(int(np.searchsorted(total, before + limit, side="right")), start + 1)
        groups.append(slice(start, stop))
        start = stop
    return groups


def _reference(version: ModelVersion, key: str = "reference") -> list[float] | None:
    reference = version.manifest.get(key) or {}
    quantiles = reference.get("quantiles")
    return list(quantiles) if quantiles else None


class BehaviorScorer:
    """The autoencoder, its scaler, its threshold, and how unusual an error is for it.

    ``ae_error`` and the notebook's columns are the notebook's. Besides them, ``ae_std_error``: each of
    the 23 behavioural features' squared error divided by its mean on the version's held-out rows,
    averaged (``features.behavior.FeatureErrors``), computed with the day-of-week one-hots held at
    their training frequencies, so a weekday missing from training (or any weekday) neither adds to
    it nor moves the other features' reconstructions. ``ae_surprise`` (what risk_score combines) is
    the tail of ``ae_std_error`` against its held-out quantiles (``std_reference``).

    A version without held-out per-feature errors (imported from the notebooks, or trained before
    they were stored) has no ``ae_std_error`` (null); its ``ae_surprise`` stays the tail of ``ae_error``
    (its held-out ``reference``, else the notebook threshold's parametric tail), and its reasons weigh
    every behavioural feature's squared error alike.
    """

    def __init__(self, version: ModelVersion, runtime: str = runtimes.DEFAULT, threads: int = 1) -> None:
        what = f"{version.name}/{version.version}"
        self.version = version.version
        self.scaler = Scaler.from_json(json.loads(version.files["scaler.json"]))
        self.threshold = float(version.manifest["threshold"])
        # the scale of the parametric tail (no reference): a calibrated legacy version keeps its original
        self.fallback_threshold = float(version.manifest.get("fallback_threshold") or self.threshold)
        self.reference = _reference(version)
        self.feature_errors = FeatureErrors.from_json(version.manifest.get("feature_errors"))
        self.std_reference = _reference(version, "std_reference") if self.standardised else None
        self.forward = runtimes.load(version.files["model.keras"], what, len(contract.FEATURES), runtime, threads)

    @property
    def standardised(self) -> bool:
        """Whether the version holds its held-out per-feature errors (and so an ``ae_std_error``)."""
        return self.feature_errors.heldout_mean is not None

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def surprise(self, ae_error: np.ndarray, ae_std_error: np.ndarray | None = None) -> np.ndarray:
        if ae_std_error is not None and self.std_reference is not None:
            return calibration.surprise(ae_std_error, self.std_reference)
        if self.reference is None:
            return calibration.fallback_surprise(ae_error, "ae", self.fallback_threshold)
        return calibration.surprise(ae_error, self.reference)

    def score(self, features: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame:
        """ae_error, ae_threshold, ae_is_anomaly, ae_risk_percent, ae_std_error, ae_surprise (and the flat
        columns of the top reasons, ``features.behavior.ae_reasons``, for sessions whose ae_surprise is at
        least ``AE_REASON_MIN_SURPRISE``)."""
        observed = feature_matrix(features)
        x = model_input(observed, self.scaler)
        out = ae_outputs(reconstruction_error(x, self.reconstruct(x)), self.threshold)
        neutral = self.feature_errors.neutral(x, observed)
        std_error = self.feature_errors.standardised(feature_errors(neutral, self.reconstruct(neutral)))
        out["ae_std_error"] = std_error if self.standardised else np.full(len(x), np.nan)
        out["ae_surprise"] = self.surprise(out["ae_error"].to_numpy(), std_error if self.standardised else None)
        if with_reasons:
            needed = out["ae_surprise"].to_numpy() >= AE_REASON_MIN_SURPRISE
            reasons = ae_reasons(
                observed, neutral, std_error, needed, self.feature_errors, self.scaler, self.reconstruct, TOP_REASONS
            )
            out = pd.concat([out, reasons], axis=1)
        return out


class SequenceScorer:
    """The LSTM sequence classifier and its reference distribution on normal sequences."""

    def __init__(
        self,
        version: ModelVersion,
        runtime: str = runtimes.DEFAULT,
        threads: int = 1,
    ) -> None:
        what = f"{version.name}/{version.version}"
        self.version = version.version
        # the version's own (its manifest records the one it was trained and evaluated with); the
        # notebook's 0.8 for a version that records none
        self.block_threshold = float(version.manifest.get("block_threshold", contract.SEQ_BLOCK_THRESHOLD))
        self.reference = _reference(version)
        self.forward = runtimes.load(version.files["model.keras"], what, contract.MAX_SEQ_LENGTH, runtime, threads)
        self._memo: dict[int, float] | None = {} if self.forward.batch_independent else None

    def risk(self, padded: np.ndarray) -> np.ndarray:
        """Sigmoid output (float32, as Keras returns it) for padded (n, 10) token rows, at most
        ``FORWARD_ROWS`` rows per model call."""
        if len(padded) <= FORWARD_ROWS:
            return self.forward(padded).reshape(-1)
        parts = [self.forward(padded[i : i + FORWARD_ROWS]).reshape(-1) for i in range(0, len(padded), FORWARD_ROWS)]
        return np.concatenate(parts)

    def window_risk(self, padded: np.ndarray) -> np.ndarray:
        """``risk`` of each padded row, each distinct row run through the model once.

        Windows repeat heavily (a batch of 10,000 sessions holds about 55,000 windows and 8,500
        distinct ones; a day of a million sessions about 240,000 distinct). The distinct rows of a
        batch (of a group of its sessions, ``session_groups``) run once; with a runtime whose output
        for a row does not depend on its batch (ONNX Runtime), a row this worker has already scored is
        not run again either, so a result is the same whichever batch or worker computes it. With
        Keras only the group's own rows are used: its float32 output can change in the last bits with
        the batch, and a retried task must give the same numbers (a batch's groups and model calls
        depend on the batch alone).
        """
        if len(padded) == 0:
            return np.zeros(0, dtype=np.float32)
        rows = np.ascontiguousarray(padded, dtype=np.int32)
        keys = window_keys(rows)
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        if self._memo is None:
            return self.risk(rows[first])[inverse]
        known = np.fromiter((self._memo.get(k, np.nan) for k in unique.tolist()), dtype=np.float32, count=len(unique))
        missing = np.flatnonzero(np.isnan(known))
        if len(missing):
            fresh = self.risk(rows[first[missing]])
            known[missing] = fresh
            if len(self._memo) + len(missing) <= MEMO_LIMIT:
                self._memo.update(zip(unique[missing].tolist(), fresh.tolist(), strict=True))
        return known[inverse]

    def score_sessions(
        self,
        token_sequences: Sequence[Sequence[int] | None],
        with_reasons: bool = True,
        max_windows_per_session: int | None = MAX_WINDOWS_PER_SESSION,
    ) -> pd.DataFrame:
        """Per session: seq_risk and seq_is_block (the notebook's, last 10 actions), seq_risk_max and
        seq_risk_max_at (the riskiest window and the action it ends on, counted from the session's
        first action, the earliest of equals), seq_surprise (of the riskiest window) and seq_reasons
        (its steps, placed in the session).

        Only a session's last ``max_windows_per_session`` windows are scored (None: all), so one bot
        session of 100,000 actions cannot take a worker's memory; its seq_risk is unchanged, and its
        riskiest window is the riskiest of those (the job flags it SEQUENCE_WINDOWS_CAPPED). The
        sessions go through in groups of at most ``WINDOW_GROUP`` windows (``session_groups``).
        """
        sequences = list(token_sequences)
        windows = np.fromiter((1 if s is None else max(len(s), 1) for s in sequences), np.int64, len(sequences))
        if max_windows_per_session is not None:
            windows = np.minimum(windows, max_windows_per_session)
        groups = session_groups(windows, WINDOW_GROUP) or [slice(0, 0)]
        parts = [self._riskiest_windows(sequences[g], max_windows_per_session) for g in groups]
        risk_last, risk_peak, end, padded, offset = (np.concatenate(p) for p in zip(*parts, strict=True))
        seq_risk = risk_last.astype(np.float64)
        seq_risk_max = risk_peak.astype(np.float64)
        out = pd.DataFrame(
            {
                "seq_risk": seq_risk,
                "seq_is_block": (seq_risk > self.block_threshold).astype("int32"),
                "seq_risk_max": seq_risk_max,
                "seq_risk_max_at": end.astype("int32"),
                "seq_surprise": self.surprise(seq_risk_max),
            }
        )
        if with_reasons:
            out["seq_reasons"] = self.reasons(padded, risk_peak, offset)
        return out

    def _riskiest_windows(
        self, token_sequences: Sequence[Sequence[int] | None], max_windows_per_session: int | None
    ) -> tuple[np.ndarray, ...]:
        """For each session: its last window's risk, then its riskiest window's risk, end, padded row and offset."""
        padded, _, end, offset, first, counts = session_windows(
            token_sequences, max_windows_per_session=max_windows_per_session
        )
        risk32 = self.window_risk(padded)
        last = first + counts - 1
        if len(first):
            # a window the model scored NaN is the session's peak (np.maximum propagates it), so the
            # session's seq_risk_max is NaN and the job quarantines it (MODEL_OUTPUT_NOT_A_NUMBER)
            peak_value = np.repeat(np.maximum.reduceat(risk32, first), counts)
            at_peak = (risk32 == peak_value) | (np.isnan(risk32) & np.isnan(peak_value))
            candidates = np.where(at_peak, np.arange(len(risk32)), len(risk32))
            peak = np.minimum.reduceat(candidates, first)
        else:
            peak = np.zeros(0, dtype=np.int64)
        return risk32[last], risk32[peak], end[peak], padded[peak], offset[peak]

    def surprise(self, seq_risk: np.ndarray) -> np.ndarray:
        if self.reference is None:
            return calibration.fallback_surprise(seq_risk, "seq")
        return calibration.surprise(seq_risk, self.reference, logit=True)

    def occlusion(self, padded: np.ndarray, risk: np.ndarray) -> np.ndarray:
        """Drop in risk when each step is removed (later steps move up, padding follows): (n, 10)."""
        n, width = padded.shape
        drops = np.zeros((n, width))
        if n == 0:
            return drops
        variants = np.zeros((n, width, width), dtype=np.int32)
        for step in range(width):
            kept = np.delete(padded, step, axis=1)
            variants[:, step, : width - 1] = kept
        occluded = self.risk(variants.reshape(n * width, width)).reshape(n, width)
        drops = risk[:, None].astype(np.float64) - occluded
        drops[padded == 0] = -np.inf  # padding and unknown steps are not reasons
        return drops

    def reasons(self, padded: np.ndarray, risk: np.ndarray, offsets: np.ndarray) -> list[list[dict[str, object]]]:
        """Top steps by occlusion drop, each named with the step before it (``A -> B``)."""
        out: list[list[dict[str, object]]] = [[] for _ in range(len(padded))]
        risky = np.flatnonzero(risk >= SEQ_REASON_MIN_RISK)
        if len(risky) == 0:
            return out
        drops = self.occlusion(padded[risky], risk[risky])
        for row, drop in zip(risky, drops, strict=True):
            order = [i for i in np.argsort(-drop, kind="stable")[:TOP_REASONS] if drop[i] > 0]
            for step in order:
                before = contract.ACTION_NAMES.get(int(padded[row, step - 1]), "UNKNOWN") if step else "START"
                before = "EARLIER" if not step and offsets[row] else before
                action = contract.ACTION_NAMES.get(int(padded[row, step]), "UNKNOWN")
                out[row].append(
                    {
                        "code": f"{before} -> {action}",
                        "feature": "actions",
                        "value": float(offsets[row] + step + 1),  # position of the step in the session
                        "expected": None,
                        "contribution": float(drop[step]),
                    }
                )
        return out

    def score(
        self, token_sequences: Sequence[Sequence[int]], offsets: Sequence[int] | None = None, with_reasons: bool = True
    ) -> pd.DataFrame:
        """seq_risk, seq_is_block, seq_surprise (and seq_reasons) for each sequence of action tokens.

        ``offsets`` is where each sequence starts in its session (0 when it is the session's
        beginning); it only shifts the positions reported in the reasons.
        """
        padded = pad_tokens(list(token_sequences))
        risk32 = self.risk(padded)
        seq_risk = risk32.astype(np.float64)
        out = pd.DataFrame(
            {
                "seq_risk": seq_risk,
                "seq_is_block": (seq_risk > self.block_threshold).astype("int32"),
                "seq_surprise": self.surprise(seq_risk),
            }
        )
        if with_reasons:
            starts = np.zeros(len(padded), dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
            out["seq_reasons"] = self.reasons(padded, risk32, starts)
        return out
