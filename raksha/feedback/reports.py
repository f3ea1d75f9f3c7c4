"""What ``raksha label``, ``raksha export-retraining`` and ``raksha calibrate`` print (and the
rejected rows ``label --rejects`` writes); the commands compute their results elsewhere in
``raksha.feedback`` and hand them here."""

from __future__ import annotations

from raksha import contract
from raksha.feedback.export_rules import BEHAVIOR_TABLE, SEQUENCES_TABLE, ExportResult
from raksha.feedback.thresholds import Calibration
from raksha.feedback.verdict_merge import LabelReport


def write_rejections(report: LabelReport, path: str) -> None:
    report.rejected_frame().to_csv(path, index=False)


def print_label_report(report: LabelReport, limit: int = 100) -> None:
    print(
        f"{report.file}: {report.rows_read} rows read, {report.valid_rows} valid, {len(report.rejected)} rejected"
        f" (run {report.run_id})"
    )
    if report.valid_rows:
        if report.new or report.changed:
            print(f"  the valid rows landed in {report.table} (the latest verdict per session wins):")
        else:
            print(f"  nothing changed: {report.table} holds these verdicts or later ones already")
        for day, counts in report.days.items():
            print(
                f"    dt={day}: {counts['rows']} rows: {counts['new']} new sessions, {counts['changed']} changed, "
                f"{counts['no_effect']} rows already current or older"
            )
    if report.rejected:
        print(f"  rejected rows (line: reasons){'; the valid rows landed all the same' if report.valid_rows else ''}:")
        for rejection in report.rejected[:limit]:
            where = f" [session {rejection.session_id}, dt {rejection.dt}]" if rejection.session_id else ""
            print(f"    line {rejection.line}{where}: {'; '.join(rejection.reasons)}")
        if len(report.rejected) > limit:
            print(f"    ... and {len(report.rejected) - limit} more (--rejects FILE writes them all)")


def print_export(result: ExportResult) -> None:
    b = result.manifests[BEHAVIOR_TABLE]
    s = result.manifests[SEQUENCES_TABLE]
    print(f"export {result.run_id}: {result.start} .. {result.end}")
    reasons = ", ".join(f"{k} {v}" for k, v in b["by_selection_reason"].items()) or "none"
    print(f"  {b['table']}: {b['rows']} sessions ({reasons}); left out: {b['left_out']}")
    sources = ", ".join(f"{k} {v}" for k, v in s["by_source"].items()) or "none"
    labels = ", ".join(f"label {k}: {v}" for k, v in s["by_label"].items()) or "none"
    print(f"  {s['table']}: {s['rows']} sequences ({sources}; {labels}); left out: {s['left_out']}")
    versions = b["model_versions"]
    print(f"  scored by: {', '.join(versions['ae_model_version'])} / {', '.join(versions['seq_model_version'])}")
    for table, path in result.manifest_paths.items():
        print(f"  manifest {table}: {path}")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_calibration(result: Calibration) -> None:
    r = result.report
    print(
        f"calibrate {r['start_date']} .. {r['end_date']}: capacity {r['capacity']} cases a day, "
        f"{r['sessions']} sessions, {r['user_days']} user-days, {r['blocked_cases_per_day']:.1f} blocked cases a day"
    )
    truth = f" (truth: {r['truth']})" if r["truth"] else ""
    header = ("threshold", 12), ("cases/day", 11), ("sessions", 10), ("precision", 11), ("recall", 8), ("case prec", 11)
    print("  " + " " * 28 + "".join(f"{title:>{width}}" for title, width in header))
    rows = (
        ("current ae_threshold", r["current_ae_threshold"]),
        ("new ae_threshold", r["ae_threshold"]),
        ("new risk_score_cut", r["risk_score_cut"]),
    )
    for label, m in rows:
        print(
            f"  {label:<28}{m['threshold']:>12.6g}{m['cases_per_day']:>11.1f}{m['sessions_flagged']:>10}"
            f"{_fmt(m.get('precision')):>11}{_fmt(m.get('recall')):>8}{_fmt(m.get('case_precision')):>11}"
        )
    for note in r["notes"]:
        print(f"  note: {note}")
    promote = f"raksha promote --model {contract.AE_MODEL} --version {r['version']}"
    state = "promoted" if r["promoted"] else f"not promoted: {promote}"
    print(f"  wrote {contract.AE_MODEL}/{r['version']} from {r['source_version']} ({state}){truth}")
