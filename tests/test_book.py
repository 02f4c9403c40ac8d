"""The book's layout: every chapter is in the toc, and every chapter checks itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest

from run_chapters import ROOT, resolve, toc_entries, toc_notebooks

SETUP = "%load_ext parity"
REPORT = "import parity\n\nparity.report()"


def toc_problems(root: Path) -> list[str]:
    """What is wrong between _toc.yml and the notebooks under book/."""
    entries = toc_entries(root)
    problems = [f"{entry}: listed in _toc.yml but no such file"
                for entry in entries if resolve(entry, root) is None]
    problems += [f"{entry}: chapters live in book/" for entry in entries
                 if not entry.startswith("book/")]
    listed = {resolve(entry, root) for entry in entries}
    on_disk = {path for path in (root / "book").rglob("*.ipynb")
               if ".ipynb_checkpoints" not in path.parts}
    problems += [f"{path.relative_to(root)}: not listed in _toc.yml"
                 for path in sorted(on_disk - listed)]
    return problems


def chapter_problems(path: Path) -> list[str]:
    """A chapter must load the parity check first and report on it last."""
    code = [cell for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code"]
    if len(code) < 3:
        return [f"{path.name}: needs the setup cell, examples and the report cell"]
    problems = []
    for cell, expected, where in [(code[0], SETUP, "first"), (code[-1], REPORT, "last")]:
        if cell.source.strip() != expected:
            problems.append(f"{path.name}: the {where} code cell must be {expected!r}")
        if "hide-cell" not in cell.metadata.get("tags", []):
            problems.append(f"{path.name}: the {where} code cell must be tagged hide-cell")
    return problems


def test_toc_and_book_folder_agree():
    assert toc_problems(ROOT) == []
    assert toc_notebooks(ROOT), "the toc lists no notebook"


def write_book(root: Path, toc: str, notebooks: list[str]) -> None:
    (root / "_toc.yml").write_text(toc)
    (root / "book").mkdir()
    for name in notebooks:
        nbformat.write(nbformat.v4.new_notebook(), root / "book" / name)


def test_a_notebook_missing_from_the_toc_is_reported(tmp_path):
    write_book(tmp_path, "format: jb-book\nroot: book/a\n", ["a.ipynb", "b.ipynb"])
    assert toc_problems(tmp_path) == ["book/b.ipynb: not listed in _toc.yml"]


def test_a_toc_entry_without_a_file_is_reported(tmp_path):
    toc = ("format: jb-book\nroot: book/a\nparts:\n- caption: One\n  chapters:\n"
           "  - file: book/b\n    sections:\n    - file: book/c\n")
    write_book(tmp_path, toc, ["a.ipynb", "b.ipynb"])
    assert toc_problems(tmp_path) == ["book/c: listed in _toc.yml but no such file"]


@pytest.mark.parametrize("path", toc_notebooks(ROOT), ids=lambda path: path.stem)
def test_every_chapter_checks_itself(path):
    assert chapter_problems(path) == []


def test_a_chapter_without_the_report_cell_is_reported(tmp_path):
    notebook = nbformat.read(ROOT / "book" / "preface.ipynb", as_version=4)
    notebook.cells = [cell for cell in notebook.cells if "parity.report" not in cell.source]
    nbformat.write(notebook, tmp_path / "chapter.ipynb")
    assert chapter_problems(tmp_path / "chapter.ipynb") == [
        f"chapter.ipynb: the last code cell must be {REPORT!r}",
        "chapter.ipynb: the last code cell must be tagged hide-cell",
    ]


def test_the_runtime_numpy_pin_matches_requirements():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = (ROOT / "requirements.txt").read_text()
    [numpy_pin] = re.findall(r"^numpy==\S+$", requirements, flags=re.MULTILINE)
    assert pyproject["project"]["dependencies"] == [numpy_pin]


@pytest.mark.parametrize("path", toc_notebooks(ROOT), ids=lambda path: path.stem)
def test_every_chapter_is_stored_as_the_runner_writes_it(path):
    """Complete kernel and language metadata and Jupyter's folding, so that opening a
    chapter in JupyterLab changes nothing; in the Preface, the map of the book as the
    toc has it (scripts/run_chapters.py writes all of it)."""
    import run_chapters

    stored = nbformat.read(path, as_version=4)
    tidied = run_chapters.tidy(nbformat.read(path, as_version=4), path)
    assert tidied == stored, "run `.venv/bin/python scripts/run_chapters.py` on this chapter"
    assert stored.metadata["kernelspec"] == run_chapters.KERNELSPEC
    assert {"version", "mimetype", "codemirror_mode", "pygments_lexer"} <= set(
        stored.metadata["language_info"])
