"""Execute the book's chapters and store their outputs in place.

Usage: .venv/bin/python scripts/run_chapters.py [chapter ...]

With no argument every notebook listed in _toc.yml runs, in the toc's order. A
chapter may be named by its path (book/preface.ipynb), its toc entry
(book/preface) or its file name without suffix (preface).

Each chapter runs top to bottom in a fresh kernel whose working folder is the
chapter's folder. Outputs are written back only when every cell succeeded (a cell
tagged ``raises-exception`` may fail); otherwise the script names the failing cell
and exits with status 1, leaving the stored notebook untouched.

Besides outputs and execution counts, the script writes what Jupyter itself would
write, so that opening a chapter in JupyterLab changes nothing (``tidy``):

- the notebook's kernelspec (ipykernel's ``python3``) and the language_info that the
  kernel reported;
- on each cell, Jupyter's own folding metadata, from the tags that fold it on the
  website: ``hide-input`` sets ``jupyter.source_hidden``, ``hide-output`` sets
  ``jupyter.outputs_hidden`` and ``collapsed``, ``hide-cell`` sets both; a cell
  without these tags has neither;
- in the toc's root notebook (the Preface), the map of the book: a numbered list,
  between two HTML comments, of every page of _toc.yml with a link and its title,
  each followed by the text after the link that the list had before (what a reader
  can do after that chapter). A page new to the toc gets its title alone.

No timestamps are recorded, so running the script twice changes nothing.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import ipykernel.kernelspec
import nbformat
from nbformat import NotebookNode
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
# The kernelspec JupyterLab writes for ipykernel's kernel.
KERNELSPEC = {"display_name": ipykernel.kernelspec.get_kernel_dict()["display_name"],
              "language": "python", "name": ipykernel.kernelspec.KERNEL_NAME}
MAP_START = ("<!-- The map of the book: scripts/run_chapters.py writes this list from "
             "_toc.yml, keeping the text after each link. -->")
MAP_END = "<!-- End of the map of the book. -->"
_MAP_ITEM = re.compile(r"^\d+\. \[\*\*.*\*\*\]\((?P<target>[^)\s]+)\)(?:: (?P<text>.*))?$")


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
    language_info = notebook.metadata.get("language_info")
    notebook.metadata = nbformat.from_dict(metadata)
    tidy(notebook, path, language_info=language_info)
    nbformat.write(notebook, path)


def tidy(notebook: NotebookNode, path: Path, root: Path = ROOT,
         language_info: dict | None = None) -> NotebookNode:
    """Write into ``notebook`` (stored at ``path``) the metadata Jupyter would write,
    its cells' folding from their tags, and, in the root notebook, the map of the
    book. Returns the notebook."""
    notebook.metadata["kernelspec"] = nbformat.from_dict(KERNELSPEC)
    if language_info is not None:
        notebook.metadata["language_info"] = nbformat.from_dict(dict(language_info))
    for cell in notebook.cells:
        fold_like_the_site(cell)
    if path.resolve() == (resolve(toc_entries(root)[0], root) or Path()).resolve():
        write_map_of_the_book(notebook, root)
    return notebook


def fold_like_the_site(cell: NotebookNode) -> None:
    """Jupyter's folding metadata from the website's tags (see the module's docstring)."""
    tags = set(cell.metadata.get("tags", []))
    hide_input = bool(tags & {"hide-input", "hide-cell"})
    hide_output = bool(tags & {"hide-output", "hide-cell"}) and cell.cell_type == "code"
    jupyter = dict(cell.metadata.get("jupyter", {}))
    for key, hidden in [("source_hidden", hide_input), ("outputs_hidden", hide_output)]:
        if hidden:
            jupyter[key] = True
        else:
            jupyter.pop(key, None)
    if jupyter:
        cell.metadata["jupyter"] = nbformat.from_dict(jupyter)
    else:
        cell.metadata.pop("jupyter", None)
    if hide_output:
        cell.metadata["collapsed"] = True
    else:
        cell.metadata.pop("collapsed", None)


def page_title(path: Path) -> str:
    """The first level-1 heading of a notebook or a Markdown page."""
    if path.suffix == ".ipynb":
        notebook = nbformat.read(path, as_version=4)
        text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    match = re.search(r"^# (.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else path.stem


def map_of_the_book(root: Path, folder: Path, outcomes: dict[str, str]) -> list[str]:
    """The map's lines: every page of the toc but its root, in order, linked from
    ``folder`` and followed by its text in ``outcomes`` (keyed by link target)."""
    lines = []
    for number, entry in enumerate(toc_entries(root)[1:], start=1):
        page = resolve(entry, root)
        if page is None:
            continue
        target = os.path.relpath(page, folder).replace(os.sep, "/")
        item = f"{number}. [**{page_title(page)}**]({target})"
        text = outcomes.get(target, "")
        lines.append(f"{item}: {text}" if text else item)
    return lines


def write_map_of_the_book(notebook: NotebookNode, root: Path = ROOT) -> None:
    """Rewrite the map in the Markdown cell that holds it. A ``{chapter-map}``
    block (the website's directive, ``docname: text`` lines) is turned into the list."""
    folder = root / Path(toc_entries(root)[0]).parent
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        if MAP_START in lines and MAP_END in lines:
            start, end = lines.index(MAP_START), lines.index(MAP_END)
            outcomes = {m["target"]: m["text"] or "" for m in map(_MAP_ITEM.match, lines[start + 1:end]) if m}
        elif "```{chapter-map}" in lines:
            start = lines.index("```{chapter-map}")
            end = lines.index("```", start + 1)
            outcomes = {}
            for line in lines[start + 1:end]:
                docname, _, text = line.partition(":")
                page = resolve(docname.strip(), root)
                if page is not None:
                    target = os.path.relpath(page, folder).replace(os.sep, "/")
                    outcomes[target] = text.strip()
        else:
            continue
        new = [MAP_START, ""] + map_of_the_book(root, folder, outcomes) + ["", MAP_END]
        cell.source = "\n".join(lines[:start] + new + lines[end + 1:])
        return


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
