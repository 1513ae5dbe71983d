"""Strip outputs, execution counts and run-specific metadata from notebooks, so git holds only their source.

Usage: ``python scripts/strip_notebooks.py [--check] [NOTEBOOK ...]`` (default: notebooks/*.ipynb).
``--check`` changes nothing and exits 1 listing the notebooks that still carry outputs (what the tests run).
"""

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KEEP_NOTEBOOK_METADATA = ("kernelspec",)  # language_info holds the Python patch version of whoever ran it last
KEEP_CELL_METADATA = ("tags",)


def strip(nb: nbformat.NotebookNode) -> bool:
    """Strip ``nb`` in place; True when anything changed."""
    before = nbformat.writes(nb)
    nb.metadata = nbformat.NotebookNode({k: v for k, v in nb.metadata.items() if k in KEEP_NOTEBOOK_METADATA})
    for cell in nb.cells:
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nbformat.writes(nb) != before


def strip_file(path: Path, check: bool = False) -> bool:
    """Strip one notebook file (unless ``check``); True when it was (or would be) changed."""
    nb = nbformat.read(path, as_version=4)
    changed = strip(nb)
    if changed and not check:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report notebooks with outputs; change nothing")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(NOTEBOOKS.glob("*.ipynb"))
    changed = [p for p in paths if strip_file(p, check=args.check)]
    for p in changed:
        print(f"{'has outputs' if args.check else 'stripped'}: {p}")
    if args.check and changed:
        print("run `python scripts/strip_notebooks.py` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
