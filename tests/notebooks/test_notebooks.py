"""The notebooks in notebooks/ run top to bottom on a fresh kernel, and are stored without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))
EXPECTED = {"01_quickstart.ipynb", "02_human_approval.ipynb", "03_time_travel.ipynb",
            "04_publishing_desk.ipynb"}
CELL_TIMEOUT = 120
PROBE = "import json, sys\nprint(json.dumps({'executable': sys.executable, 'prefix': sys.prefix}))"


def test_the_documented_notebooks_exist() -> None:
    assert EXPECTED <= {p.name for p in ALL}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_notebook_runs_on_a_fresh_kernel(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Notebooks make their scratch folders with tempfile: keep them under tmp_path.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_code_cell(PROBE))
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",  # jupyter_client starts a spec whose argv is "python" with sys.executable
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, on any failing cell

    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells)
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    probe = json.loads(code_cells[-1].outputs[0]["text"])
    assert probe == {"executable": sys.executable, "prefix": sys.prefix}, "the kernel is not this venv's Python"
    assert not list(tmp_path.glob("accord-*")), "the notebook left its scratch folder behind"
    assert not (NOTEBOOKS / ".accord").exists(), "the notebook wrote to .accord/ instead of a temp folder"
