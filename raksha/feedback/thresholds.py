"""Thresholds for a review capacity, the figures measured at them, and the calibrated version
(pure: counts in, numbers and manifests out; the Spark side is ``raksha.feedback.alert_budget``).

Spark finds the largest user-day scores and counts what a threshold flags; ``pick_threshold``
turns the largest scores into a threshold, ``figures`` the counts into cases a day, precision and
recall, ``calibration_report`` the whole into the report, and ``write_calibrated`` writes the new
autoencoder version (the source's files, the calibrated threshold and cut, the history).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from raksha import contract
from raksha.config import Config
from raksha.models import artifacts
from raksha.models.artifacts import ModelVersion

# score column -> the threshold it gets; a session counts when its score is strictly above it
KNOBS: dict[str, str] = {"ae_error": "ae_threshold", "risk_score": "risk_score_cut"}
# manifest keys a calibrated version sets itself (everything else is the source version's)
OWN_KEYS = ("name", "version", "created_at", "files", "threshold", "alert_budget", "threshold_history")


class CalibrationError(RuntimeError):
    """The window cannot be calibrated as asked (nothing is written)."""


@dataclass
class Calibration:
    report: dict[str, Any]
    version: ModelVersion


def pick_threshold(top: list[float], slots: int) -> float:
    """A threshold with at most ``slots`` of the values strictly above it, as many as ties allow.

    ``top`` holds the largest ``slots + 1`` (or fewer) values, descending. No slot: above the
    largest value; more slots than values: 0 (every value above it, for non-negative scores).
    """
    if slots <= 0:
        return math.nextafter(top[0], math.inf) if top else 0.0
    if len(top) <= slots:
        return 0.0
    return float(top[slots])


def one_version(versions: Sequence[str]) -> str:
    """The one autoencoder version that scored the window (ae_error of two versions cannot share a threshold)."""
    if len(versions) != 1:
        raise CalibrationError(
            f"the window was scored by {len(versions)} autoencoder versions ({', '.join(versions) or 'none'}): "
            "calibrate a window scored by one version (rescore the other days first)"
        )
    return versions[0]


def figures(
    value: float,
    cases_by_day: dict[str, int],
    days: int,
    sessions_flagged: int,
    truth: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Cases per day, sessions flagged and, with ``truth``, precision and recall at ``value``.

    ``truth``: over the judged sessions, how many were judged, attacks, flagged and flagged attacks
    (``caught``), and the flagged cases and those holding an attack (``cases``, ``attack_cases``).
    """
    out: dict[str, Any] = {
        "threshold": value,
        "cases_per_day": sum(cases_by_day.values()) / days,
        "cases_by_day": cases_by_day,
        "sessions_flagged": sessions_flagged,
    }
    if truth is not None:
        caught, flagged, attacks, cases = truth["caught"], truth["flagged"], truth["attacks"], truth["cases"]
        out.update(
            {
                "sessions_judged": truth["judged"],
                "attacks": attacks,
                "attacks_flagged": caught,
                "precision": caught / flagged if flagged else None,
                "recall": caught / attacks if attacks else None,
                "case_precision": truth["attack_cases"] / cases if cases else None,
            }
        )
    return out


def history(source: ModelVersion) -> list[dict[str, Any]]:
    """The source's own history plus the source itself, oldest first."""
    earlier = list(source.manifest.get("threshold_history") or [])
    budget = source.manifest.get("alert_budget") or {}
    entry = {
        "version": source.version,
        "threshold": source.threshold,
        "set_by": "calibrate" if budget else "training",
        "created_at": source.manifest.get("created_at"),
    }
    if budget:
        entry.update(
            {
                "capacity": budget.get("capacity"),
                "window": [budget.get("start_date"), budget.get("end_date")],
                "risk_score_cut": budget.get("risk_score_cut"),
            }
        )
    return [*earlier, entry]


def calibration_report(
    start: dt.date,
    end: dt.date,
    capacity: int,
    counts: Mapping[str, int],
    truth: str | None,
    source: str,
    seq_versions: list[str],
    measured: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The report of a calibration, with notes on what the budget left.

    ``counts``: the window's ``days``, ``sessions``, ``user_days``, ``blocked`` (user-days with a
    blocked session) and ``slots`` (the budget left to them); ``measured``: ``figures`` at each
    knob's threshold and at the source's threshold (``current_ae_threshold``).
    """
    days, blocked, slots = counts["days"], counts["blocked"], counts["slots"]
    notes = []
    if slots <= 0:
        notes.append(
            f"blocked sessions alone make {blocked / days:.1f} cases a day, at or above the capacity of "
            f"{capacity}: the thresholds are set above every session (no reviews beyond the blocks)"
        )
    elif slots >= counts["user_days"] - blocked:
        notes.append("the window has fewer user-days than the budget: every session is above the thresholds")
    return {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "days": days,
        "capacity": capacity,
        "sessions": counts["sessions"],
        "user_days": counts["user_days"],
        "blocked_cases_per_day": blocked / days,
        "truth": truth,
        "source_version": source,
        "seq_model_versions": seq_versions,
        "ae_threshold": measured["ae_threshold"],
        "risk_score_cut": measured["risk_score_cut"],
        "current_ae_threshold": measured["current_ae_threshold"],
        "notes": notes,
    }


def calibrated_fields(source: ModelVersion, report: Mapping[str, Any]) -> dict[str, Any]:
    """The new version's manifest fields: the source's, with the calibrated threshold, cut and history."""
    kept = {k: v for k, v in source.manifest.items() if k not in OWN_KEYS}
    if source.manifest.get("reference") is None:  # a legacy version: keep its risk_score scale
        kept.setdefault("fallback_threshold", source.threshold)
    budget = {
        key: report[key]
        for key in ("start_date", "end_date", "days", "capacity", "truth", "source_version", "seq_model_versions")
    }
    budget.update(
        {
            "risk_score_cut": report["risk_score_cut"]["threshold"],
            "ae_threshold": {k: v for k, v in report["ae_threshold"].items() if k != "cases_by_day"},
            "combined": {k: v for k, v in report["risk_score_cut"].items() if k != "cases_by_day"},
            "blocked_cases_per_day": report["blocked_cases_per_day"],
        }
    )
    return {
        **kept,
        "threshold": report["ae_threshold"]["threshold"],
        "alert_budget": budget,
        "threshold_history": history(source),
    }


def write_calibrated(
    cfg: Config,
    source: ModelVersion,
    report: Mapping[str, Any],
    promote: bool,
    store: artifacts.ModelFiles | None = None,
) -> ModelVersion:
    """The source's files under a new version with the calibrated threshold, cut and history."""
    fields = calibrated_fields(source, report)
    models = cfg.path("models")
    return artifacts.write_version(models, contract.AE_MODEL, source.files, fields, promote_it=promote, store=store)
