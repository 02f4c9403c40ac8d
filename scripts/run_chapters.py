"""Execute the book's chapters and store their outputs in place.

Usage: .venv/bin/python scripts/run_chapters.py [chapter ...]

With no argument every notebook listed in _toc.yml runs, in the toc's order. A
chapter may be named by its path (book/preface.ipynb), its toc entry
(book/preface) or its file name without suffix (preface).

Each chapter runs top to bottom in a fresh kernel whose working folder is the
chapter's folder. Outputs are written back only when every cell succeeded (a cell
tagged ``raises-exception`` may fail); otherwise the script names the failing cell
and exits with status 1, leaving the stored notebook untouched.

Only outputs and execution counts change: the notebook's metadata is kept as it
was and no timestamps are recorded, so running the script twice changes nothing.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import ipykernel.kernelspec
import nbformat
import yaml
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
# The kernels that execute chapters, here and under nbval (see conftest.py),
# get these variables, so both produce the same outputs.
KERNEL_ENV = {
    # JAX on a machine with an NVIDIA device but a CPU-only jaxlib warns on stderr.
    "JAX_PLATFORMS": "cpu",
    # Fixed hashing keeps the order of printed sets the same from run to run.
    "PYTHONHASHSEED": "0",
    # The parity check treats every cell as the book's, and exercise solutions run
    # (book/parity.py): in Jupyter, a reader's own cells are checked more gently.
    "PARITY_STRICT": "1",
}
CELL_TIMEOUT = 600  # seconds
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ChapterError(Exception):
    """A chapter's cell failed."""


def toc_entries(root: Path = ROOT) -> list[str]:
    """Every ``file`` entry of _toc.yml, root first, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return list(_files_in(toc))


def _files_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "root" in node:
            yield str(node["root"])
        if "file" in node:
            yield str(node["file"])
        for value in node.values():
            if isinstance(value, (dict, list)):
                yield from _files_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _files_in(item)


def resolve(entry: str, root: Path = ROOT) -> Path | None:
    """The file a toc entry names (entries may omit the suffix), if it exists."""
    base = root / entry
    candidates = [base] if base.suffix else [base.with_suffix(s) for s in (".ipynb", ".md")]
    return next((path for path in candidates if path.is_file()), None)


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks of the book, in the toc's order."""
    paths = (resolve(entry, root) for entry in toc_entries(root))
    return [path for path in paths if path is not None and path.suffix == ".ipynb"]


def select(names: list[str], root: Path = ROOT) -> list[Path]:
    """The toc notebooks matching the names given on the command line."""
    notebooks = toc_notebooks(root)
    if not names:
        return notebooks
    chosen = []
    for name in names:
        matches = [nb for nb in notebooks if _matches(nb, name, root)]
        if not matches:
            raise ChapterError(f"{name}: not a notebook listed in _toc.yml")
        chosen += matches
    return chosen


def _matches(notebook: Path, name: str, root: Path) -> bool:
    relative = notebook.relative_to(root)
    given = Path(name)
    return given in (relative, relative.with_suffix(""), notebook) or name == notebook.stem


class _ThisPythonKernels(KernelSpecManager):
    """Start every kernel on this interpreter, whatever kernels the machine lists."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(resource_dir=ipykernel.kernelspec.RESOURCES,
                          **ipykernel.kernelspec.get_kernel_dict())


def execute(path: Path) -> None:
    """Run one notebook in a fresh kernel and store its outputs in place."""
    notebook = nbformat.read(path, as_version=4)
    metadata = dict(notebook.metadata)  # the kernel would stamp its own version in
    current: dict[str, int] = {}
    client = NotebookClient(
        notebook,
        km=AsyncKernelManager(kernel_spec_manager=_ThisPythonKernels()),
        timeout=CELL_TIMEOUT,
        record_timing=False,
        # How stdout is cut into chunks depends on timing; store one stream per cell.
        coalesce_streams=True,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=lambda cell, cell_index: current.update(index=cell_index),
    )
    os.environ.update(KERNEL_ENV)
    try:
        client.execute()
    except CellExecutionError as error:
        raise ChapterError(_failure(path, notebook, current.get("index"), error)) from None
    notebook.metadata = nbformat.from_dict(metadata)
    nbformat.write(notebook, path)


def _failure(path: Path, notebook: Any, index: int | None, error: CellExecutionError) -> str:
    if index is None:
        return f"{path}: {error.ename}: {error.evalue}"
    first_line = (notebook.cells[index].source.splitlines() or [""])[0]
    return (f"{_ANSI.sub('', str(error))}\n"
            f"{path}: cell {index + 1} of {len(notebook.cells)} ({first_line!r}) "
            f"raised {error.ename}")


def main(argv: list[str]) -> int:
    try:
        chapters = select(argv)
    except ChapterError as error:
        print(error, file=sys.stderr)
        return 2
    for path in chapters:
        print(f"running {path.relative_to(ROOT)}", flush=True)
        try:
            execute(path)
        except ChapterError as error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
