"""Running a notebook of notebooks/ as the tests do: its code cells in order, in one namespace."""

from __future__ import annotations

import json
from pathlib import Path


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
