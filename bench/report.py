"""What the bench prints: the table of variants, the issue's targets, the table of ``--scale``.

Pure: dicts of results in, numbers and text out (no process, no file, no Spark).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from settings import GB, MB, NOTEBOOK_SAMPLE


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with its value and pass/fail (None when a variant is missing)."""

    def wall(name: str) -> float | None:
        r = results.get(name)
        return None if not r or "error" in r else float(r["wall_s"])

    floor, raksha, recipe, notebook = (wall(n) for n in ("floor", "raksha", "recipe", "notebook"))
    out = []

    def add(name: str, value: float | None, goal: str, ok: Callable[[float], bool], unit: str = "") -> None:
        out.append(
            {"target": name, "value": value, "goal": goal, "unit": unit, "pass": None if value is None else ok(value)}
        )

    add("raksha / floor", raksha / floor if raksha and floor else None, "<= 1.3", lambda v: v <= 1.3)
    overhead = (recipe - floor) / (raksha - floor) if recipe and raksha and floor and raksha > floor else None
    if recipe and raksha and floor and raksha <= floor:
        overhead = float("inf")
    add("(recipe - floor) / (raksha - floor)", overhead, ">= 10", lambda v: v >= 10)
    add("notebook / raksha", notebook / raksha if notebook and raksha else None, ">= 10000", lambda v: v >= 10000)
    worker = results.get("raksha", {}).get("python_worker_peak_bytes")
    add("raksha Python worker peak", worker / GB if worker else None, "<= 1 GB", lambda v: v <= 1.0, "GB")
    return out


def _fmt_bytes(value: int | None) -> str:
    return f"{value / MB:,.0f} MB" if value else "-"


def _fmt_cpu(value: float | None) -> str:
    return f"{value:,.1f}" if value else "-"


def format_table(results: dict[str, dict[str, Any]], sessions: int) -> str:
    floor = results.get("floor", {}).get("wall_s") if "error" not in results.get("floor", {}) else None
    header = (
        f"{'variant':<12} {'wall s':>10} {'sessions/s':>12} {'x floor':>9} "
        f"{'driver JVM peak':>16} {'Py worker peak':>15} {'JVM CPU s':>10} {'Py CPU s':>9}"
    )
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"{name:<12} {'FAILED':>10}   {r['error']}")
            continue
        wall = float(r["wall_s"])
        mark = "*" if r.get("extrapolated") else " "
        ratio = f"{wall / floor:,.2f}" if floor else "-"
        lines.append(
            f"{name:<12} {wall:>9,.1f}{mark} {sessions / wall:>12,.0f} {ratio:>9} "
            f"{_fmt_bytes(r.get('driver_jvm_peak_bytes')):>16} {_fmt_bytes(r.get('python_worker_peak_bytes')):>15} "
            f"{_fmt_cpu(r.get('driver_jvm_cpu_s')):>10} {_fmt_cpu(r.get('python_workers_cpu_s')):>9}"
        )
    if any(r.get("extrapolated") for r in results.values()):
        lines.append(
            f"* extrapolated to {sessions:,} sessions from {NOTEBOOK_SAMPLE} scored one by one (one Python process)"
        )
    return "\n".join(lines)


def format_targets(rows: list[dict[str, Any]]) -> str:
    lines = ["targets:"]
    for t in rows:
        value = "-" if t["value"] is None else f"{t['value']:,.2f}{(' ' + t['unit']) if t['unit'] else ''}"
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        lines.append(f"  {t['target']:<38} {value:>14}  {t['goal']:<10} {verdict}")
    return "\n".join(lines)


def format_scale(rows: list[dict[str, Any]]) -> str:
    """One line per size and variant (raksha, floor): wall, microseconds per session, ratio, driver memory."""
    header = (
        f"{'sessions':>10} {'variant':<8} {'wall s':>9} {'us/session':>11} {'x floor':>8} "
        f"{'driver JVM peak':>16} {'JVM bytes/session':>18} {'Py worker peak':>15}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        floor = row["floor"].get("wall_s")
        for name in ("raksha", "floor"):
            r = row[name]
            if "error" in r:
                lines.append(f"{row['sessions']:>10,} {name:<8} FAILED {r['error']}")
                continue
            wall, jvm = float(r["wall_s"]), r.get("driver_jvm_peak_bytes") or 0
            lines.append(
                f"{row['sessions']:>10,} {name:<8} {wall:>9,.1f} {wall / row['sessions'] * 1e6:>11,.1f} "
                f"{(wall / floor if floor else float('nan')):>8.2f} {_fmt_bytes(jvm):>16} "
                f"{jvm / row['sessions']:>18,.0f} {_fmt_bytes(r.get('python_worker_peak_bytes')):>15}"
            )
    return "\n".join(lines)
