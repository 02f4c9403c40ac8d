"""scripts/run_chapters.py: stores outputs, deterministically, and fails loudly."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import run_chapters
from run_chapters import ChapterError

BOOK = Path(__file__).resolve().parent.parent / "book"

# A stand-in minijax that forwards to JAX, so these tests do not depend on how far
# the real package has come. SIN_ERROR lets a test make it wrong.
FAKE_INIT = """
import jax
from . import numpy

def __getattr__(name):
    return getattr(jax, name)
"""
FAKE_NUMPY = """
import jax.numpy

SIN_ERROR = {error}

def sin(x):
    return jax.numpy.sin(x) + SIN_ERROR

def __getattr__(name):
    return getattr(jax.numpy, name)
"""


def make_book(folder: Path, cells: list[str | tuple[str, list[str]]], sin_error: float = 0.0) -> Path:
    """A chapter in `folder`, next to parity.py and a stand-in minijax."""
    shutil.copy(BOOK / "parity.py", folder / "parity.py")
    package = folder / "minijax"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(FAKE_INIT)
    (package / "numpy.py").write_text(FAKE_NUMPY.format(error=sin_error))
    notebook = new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}})
    notebook.cells.append(new_markdown_cell("# A chapter"))
    for number, cell in enumerate(cells):
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        code = new_code_cell(source, metadata={"tags": tags} if tags else {})
        code.id = f"cell-{number}"
        notebook.cells.append(code)
    notebook.cells[0].id = "title"
    path = folder / "chapter.ipynb"
    nbformat.write(notebook, path)
    return path


CHAPTER = [
    ("%load_ext parity", ["hide-cell"]),
    "import minijax.numpy as jnp\nfrom minijax import grad\nprint(grad(jnp.sin)(1.0))",
    "jnp.sin(jnp.arange(3.0))",
    ("1 / 0", ["raises-exception"]),
    ("import parity\nparity.report()", ["hide-cell"]),
]


def test_outputs_are_stored_and_a_second_run_changes_nothing(tmp_path):
    path = make_book(tmp_path, CHAPTER)
    original_metadata = nbformat.read(path, as_version=4).metadata
    run_chapters.execute(path)
    first = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    outputs = [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]
    assert outputs[1][0]["text"] == "0.5403023\n"
    assert "Array([0.        , 0.84147096, 0.9092974 ], dtype=float32)" in (
        outputs[2][0]["data"]["text/plain"])
    assert outputs[3][0]["ename"] == "ZeroDivisionError"  # allowed by its tag
    assert outputs[4][0]["text"] == (
        "3 cells compared with JAX, 0 skipped ('# minijax only'): all agree.\n")
    # What JupyterLab would write, and nothing else: no timestamps.
    assert notebook.metadata["kernelspec"] == run_chapters.KERNELSPEC
    assert set(notebook.metadata["language_info"]) == {
        "name", "version", "mimetype", "codemirror_mode", "pygments_lexer",
        "nbconvert_exporter", "file_extension"}
    assert set(notebook.metadata) == set(original_metadata) | {"language_info"}
    assert all("execution" not in cell.metadata for cell in notebook.cells)
    setup = notebook.cells[1].metadata  # tagged hide-cell
    assert setup["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    assert setup["collapsed"] is True
    assert "jupyter" not in notebook.cells[2].metadata

    run_chapters.execute(path)
    assert path.read_bytes() == first


def test_a_failing_cell_is_named_and_the_notebook_left_alone(tmp_path):
    path = make_book(tmp_path, [("%load_ext parity", ["hide-cell"]), "x = 1", "undefined_name + 1"])
    before = path.read_bytes()
    with pytest.raises(ChapterError, match=r"cell 4 of 4 \('undefined_name \+ 1'\) raised NameError"):
        run_chapters.execute(path)
    assert path.read_bytes() == before


def test_a_parity_mismatch_fails_the_chapter(tmp_path):
    path = make_book(tmp_path, CHAPTER, sin_error=1e-3)
    with pytest.raises(ChapterError) as caught:
        run_chapters.execute(path)
    message = str(caught.value)
    # grad(sin) is unaffected by the constant error; the displayed values are not.
    assert "cell 4 of 6 ('jnp.sin(jnp.arange(3.0))') raised ParityError" in message
    assert "result: values differ at 3 of 3 positions" in message


def test_chapters_are_found_through_the_toc():
    preface = BOOK / "preface.ipynb"
    assert run_chapters.toc_notebooks()[0] == preface
    for name in ["preface", "book/preface", "book/preface.ipynb"]:
        assert run_chapters.select([name]) == [preface]
    with pytest.raises(ChapterError, match="not a notebook listed in _toc.yml"):
        run_chapters.select(["no-such-chapter"])
    assert run_chapters.main(["no-such-chapter"]) == 2


def test_folding_follows_the_sites_tags():
    cells = [new_code_cell("x", metadata={"tags": tags}) for tags in
             [["hide-input"], ["hide-output"], ["hide-cell"], []]]
    cells.append(new_code_cell("y", metadata={"jupyter": {"source_hidden": True}, "collapsed": True}))
    for cell in cells:
        run_chapters.fold_like_the_site(cell)
    assert [cell.metadata.get("jupyter") for cell in cells] == [
        {"source_hidden": True}, {"outputs_hidden": True},
        {"source_hidden": True, "outputs_hidden": True}, None, None]
    assert [cell.metadata.get("collapsed") for cell in cells] == [None, True, True, None, None]


def write_toc_book(root: Path, map_source: str) -> Path:
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "- file: book/one\n- file: book/two\n- file: book/notes\n")
    (root / "book").mkdir()
    for name, title in [("one", "First `thing`"), ("two", "Second")]:
        nbformat.write(new_notebook(cells=[new_markdown_cell(f"# {title}\n\nText.")]),
                       root / "book" / f"{name}.ipynb")
    (root / "book" / "notes.md").write_text("# Notes\n")
    intro = root / "book" / "intro.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell(map_source)]), intro)
    return intro


def test_the_map_of_the_book_is_written_from_the_toc(tmp_path):
    intro = write_toc_book(tmp_path, "# Intro\n\nAfter each chapter:\n\n```{chapter-map}\n"
                                     "book/two: do the *second* thing\nbook/gone: left out\n"
                                     "```\n\nMore text.")
    notebook = run_chapters.tidy(nbformat.read(intro, as_version=4), intro, root=tmp_path)
    expected = ("# Intro\n\nAfter each chapter:\n\n" + run_chapters.MAP_START + "\n\n"
                "1. [**First `thing`**](one.ipynb)\n"
                "2. [**Second**](two.ipynb): do the *second* thing\n"
                "3. [**Notes**](notes.md)\n\n" + run_chapters.MAP_END + "\n\nMore text.")
    assert notebook.cells[0].source == expected
    # Written again, the map keeps each line's text; a new chapter gets its title.
    (tmp_path / "_toc.yml").write_text((tmp_path / "_toc.yml").read_text()
                                       .replace("- file: book/one\n", ""))
    again = run_chapters.tidy(notebook, intro, root=tmp_path)
    assert again.cells[0].source == expected.replace(
        "1. [**First `thing`**](one.ipynb)\n2.", "1.").replace("3. [**Notes", "2. [**Notes")


def test_a_chapter_runs_with_its_kernel_in_the_top_folder(tmp_path):
    """A kernel started elsewhere than book/ (a console, an editor, `jupyter execute`)
    loads the parity extension: it is installed with the project."""
    from nbclient import NotebookClient

    notebook = nbformat.read(BOOK / "preface.ipynb", as_version=4)
    assert not (BOOK.parent / "parity.py").exists()
    client = NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(BOOK.parent)}},
                            km=run_chapters.AsyncKernelManager(
                                kernel_spec_manager=run_chapters._ThisPythonKernels()))
    client.execute()
    report = notebook.cells[-1].outputs[0]["text"]
    assert report.endswith("all agree.\n")
