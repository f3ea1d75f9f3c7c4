"""The notebooks in notebooks/ run top to bottom over raksha/ (parameters cell overridden)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(path: Path, parameters: dict[str, object]) -> dict[str, object]:
    """Run every code cell in order in one namespace; after the 'parameters' cell, apply ``parameters``."""
    notebook = json.loads(path.read_text())
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        exec(compile("".join(cell["source"]), f"{path.name}[{index}]", "exec"), namespace)  # noqa: S102
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            unknown = set(parameters) - set(namespace)
            assert not unknown, f"not parameters of {path.name}: {unknown}"
            namespace.update(parameters)
    return namespace


def test_training_notebook(spark, tmp_path):
    ns = execute(
        NOTEBOOKS / "training.ipynb",
        {"WORKDIR": str(tmp_path), "DAYS": 2, "SESSIONS_PER_DAY": 1500, "AE_EPOCHS": 2, "SEQ_EPOCHS": 2},
    )
    assert ns["ae"].threshold > 0
    assert 0.0 <= ns["seq"].manifest["metrics"]["roc_auc"] <= 1.0
    assert (tmp_path / "models" / "behavior_autoencoder" / ns["ae"].version / "manifest.json").exists()


def test_analyst_notebook(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(NOTEBOOKS.parent)  # paths.models defaults to the shipped models/
    ns = execute(
        NOTEBOOKS / "analyst.ipynb",
        {"WORKDIR": str(tmp_path), "SESSIONS": 600, "DATABASE": f"nb_{uuid.uuid4().hex[:8]}"},
    )
    assert int(ns["decisions"]["sessions"].sum()) == ns["result"].counts["sessions_scored"]
    assert len(ns["queue"]) <= 20
    assert set(ns["truth"].columns) >= {"decision", "account_takeover", "bot", "social_engineering"}
