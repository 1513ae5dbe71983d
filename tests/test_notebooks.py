"""The notebooks run top to bottom in a fresh CITYAGENT_HOME, and git holds them without outputs.

Each notebook is executed by nbclient in a kernel whose Python is this test's interpreter (``tests/kernels.py``),
with the notebook's folder as the working directory, as Jupyter does. On 2 idle cores 01 and 03 take under ~30 s,
02 and 04 about a minute and 05 (four fits) about two minutes; a busy machine takes up to twice as long.
"""

import importlib.util
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.kernels import kernel_manager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 300  # per cell; a notebook that needs more is too big for CI
NEEDS_SHARED_DATA = {"01_explore_hub", "04_risk_chicago"}
SLOW = {"05_forecast_intervals"}  # over ~1 min on 2 cores (4 fits): keeps the default suite shorter
# tqdm.auto's warning in a kernel without ipywidgets (`import mlflow` imports tqdm.auto); the notebook extra fixes it
NO_WIDGETS = ("TqdmWarning", "IProgress not found")


def _strip_module():
    spec = importlib.util.spec_from_file_location("strip_notebooks", REPO / "scripts" / "strip_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _printed(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(cell index, text)`` of every cell output a reader sees as text: streams, plain-text results, tracebacks."""
    texts = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            text = o.get("text") or o.get("data", {}).get("text/plain") or "\n".join(o.get("traceback", []))
            texts.append((i, "".join(text) if isinstance(text, list) else text))
    return texts


def _no_widgets_warning(nb: nbformat.NotebookNode) -> str | None:
    """What is wrong when a cell printed tqdm's no-ipywidgets warning, else None."""
    for i, text in _printed(nb):
        if any(marker in text for marker in NO_WIDGETS):
            return f"cell {i} printed tqdm's 'IProgress not found': install the notebook extra (ipywidgets):\n{text}"
    return None


def _params():
    for path in NOTEBOOKS:
        marks = [pytest.mark.slow] if path.stem in SLOW else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", _params())
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch, request):
    if path.stem in NEEDS_SHARED_DATA:
        request.getfixturevalue("shared_data")  # skips with the reason when the public datasets are absent
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)  # a fresh install: local MLflow store, local Ray
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = nbformat.read(path, as_version=4)
    km = kernel_manager(tmp_path)
    client = NotebookClient(nb, km=km, timeout=TIMEOUT_S, resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
    finally:
        if client.kc is not None:  # its channels, else a later test's log gets "Could not destroy zmq context"
            client.kc.stop_channels()
        if km.has_kernel:  # nbclient leaves a kernel it did not create running
            km.shutdown_kernel(now=True)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "a code cell did not run"
    assert not (problem := _no_widgets_warning(nb)), f"{path.name}: {problem}"
    assert (tmp_path / "home").is_dir(), "the notebook did not use the CITYAGENT_HOME it was given"
    print(f"{path.name}: {time.perf_counter() - t0:.1f} s")


def test_there_are_notebooks():
    assert {p.stem for p in NOTEBOOKS} >= {"01_explore_hub", "02_train_traffic", "03_export_serve", "04_risk_chicago"}


def test_a_missing_ipywidgets_warning_is_caught():
    nb = nbformat.v4.new_notebook()
    warned = ".venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update"
    nb.cells = [nbformat.v4.new_code_cell("import mlflow"), nbformat.v4.new_code_cell("print('fine')")]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="fine\n")]
    assert _no_widgets_warning(nb) is None
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stderr", text=[warned, "\n"])]
    assert _no_widgets_warning(nb).startswith("cell 0 printed tqdm's 'IProgress not found'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path):
    assert not _strip_module().strip_file(path, check=True), (
        f"{path.name} carries outputs or run metadata; run `python scripts/strip_notebooks.py`"
    )


def test_strip_removes_outputs_and_run_metadata(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"version": "3.11"}}
    run_at = {"shell.execute_reply": "2026-03-02T08:00:00.000000Z"}  # what nbclient records per cell
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=3, metadata={"tags": ["x"], "execution": run_at})
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells = [cell, nbformat.v4.new_markdown_cell("# title")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    strip = _strip_module()
    assert strip.strip_file(path, check=True) and strip.main(["--check", str(path)]) == 1
    assert strip.main([str(path)]) == 0 and not strip.strip_file(path, check=True)
    clean = nbformat.read(path, as_version=4)
    assert clean.cells[0].outputs == [] and clean.cells[0].execution_count is None
    assert clean.cells[0].metadata == {"tags": ["x"]} and set(clean.metadata) == {"kernelspec"}
    assert clean.cells[0].source == "print(1)" and clean.cells[1].source == "# title"
