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
    assert notebook.metadata == original_metadata  # no kernel version stamped in
    assert all("execution" not in cell.metadata for cell in notebook.cells)  # no timestamps

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
