"""The exercises at the ends of the chapters: their checks pass the solutions and fail wrong answers.

An exercise is made of cells marked in their metadata with ``"exercise"``:

- ``"check"``: defines one or more ``check_<name>(answer)`` functions, which raise
  when ``answer`` is wrong. The reader calls them on their own answer.
- ``"solution"``: collapsed in the site and in Jupyter (tag ``hide-input`` and
  ``jupyter.source_hidden``); defines the solution and calls its check, which
  prints ``check passed`` last.

Both kinds are self-contained (they import what they use), so they run here outside
the chapter. nbval runs the solutions against JAX; this test makes sure that no check
is one that cannot fail: each is called on the wrong answers listed for it in
``tests/exercise_mistakes/<chapter>.py`` (``MISTAKES = {check name: [answer, ...]}``)
and must raise on every one.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
from pathlib import Path

import nbformat
import pytest

from run_chapters import ROOT, toc_notebooks

ROLES = ("check", "solution")


def exercise_cells(path: Path) -> list[nbformat.NotebookNode]:
    cells = nbformat.read(path, as_version=4).cells
    return [cell for cell in cells if "exercise" in cell.metadata]


def chapters_with_exercises() -> list[Path]:
    return [path for path in toc_notebooks(ROOT) if exercise_cells(path)]


def check_names(cell: nbformat.NotebookNode) -> list[str]:
    """The ``check_*`` functions a check cell defines."""
    return [node.name for node in ast.parse(cell.source).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")]


def layout_problems(path: Path) -> list[str]:
    """Where a chapter's exercise cells break the conventions above."""
    cells = nbformat.read(path, as_version=4).cells
    marked = [i for i, cell in enumerate(cells) if "exercise" in cell.metadata]
    problems = []
    headings = [cell for cell in cells[:marked[0]] if cell.cell_type == "markdown"
                and cell.source.startswith("## Exercises")]
    if not headings:
        problems.append("no '## Exercises' heading before the first exercise cell")
    later_code = [cell for cell in cells[marked[0]:-1]
                  if cell.cell_type == "code" and "exercise" not in cell.metadata]
    if later_code:
        problems.append("exercises come last: only the report cell may follow them")
    for i in marked:
        cell, role = cells[i], cells[i].metadata["exercise"]
        if role not in ROLES or cell.cell_type != "code":
            problems.append(f"cell {i}: 'exercise' must be one of {ROLES} on a code cell")
        elif role == "check" and not check_names(cell):
            problems.append(f"cell {i}: a check cell defines no check_* function")
        elif role == "solution" and not (
                "hide-input" in cell.metadata.get("tags", [])
                and cell.metadata.get("jupyter", {}).get("source_hidden")):
            problems.append(f"cell {i}: a solution is tagged hide-input and source_hidden")
        elif role == "solution" and "check passed" not in _printed(cell):
            problems.append(f"cell {i}: the solution's stored output does not show its "
                            f"check passing (its check prints 'check passed'; run "
                            f"scripts/run_chapters.py)")
    return problems


def _printed(cell: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []))


def checks_of(path: Path) -> list[str]:
    """The check functions a chapter defines, in order."""
    return [name for cell in exercise_cells(path)
            if cell.metadata["exercise"] == "check" for name in check_names(cell)]


@functools.cache
def run_exercises(path: Path) -> dict:
    """Run a chapter's check and solution cells, in order, in one fresh namespace
    (once per chapter: both tests below use it, and neither changes it)."""
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in exercise_cells(path):
            exec(compile(cell.source, f"{path.name}:exercise", "exec"), namespace)
    return namespace


def mistakes_for(path: Path) -> dict[str, list]:
    return importlib.import_module(f"exercise_mistakes.{path.stem}").MISTAKES


CHAPTERS = chapters_with_exercises()
IDS = [path.stem for path in CHAPTERS]


def test_the_custom_rule_chapters_have_exercises():
    have = {path.stem for path in CHAPTERS}
    chapters = [path.stem for path in toc_notebooks(ROOT)]
    first, last = chapters.index("custom_jvp_in_a_nutshell"), chapters.index("pitfalls")
    assert [name for name in chapters[first:last + 1] if name not in have] == []


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_exercise_cells_follow_the_layout(path):
    assert layout_problems(path) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_solutions_pass_their_checks_outside_the_chapter(path):
    assert set(checks_of(path)) <= run_exercises(path).keys()


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_every_check_fails_on_its_wrong_answers(path):
    namespace = run_exercises(path)
    mistakes = mistakes_for(path)
    assert sorted(mistakes) == sorted(checks_of(path)), \
        "every check needs wrong answers, and only checks"
    for name, answers in mistakes.items():
        assert answers, f"{name}: no wrong answers"
        for answer in answers:
            with contextlib.redirect_stdout(io.StringIO()), pytest.raises(Exception):
                namespace[name](answer)


def test_a_solution_left_open_is_reported(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_code_cell("def check_f(f):\n    assert f(1) == 1",
                                  metadata={"exercise": "check"}),
        nbformat.v4.new_code_cell("f = abs\ncheck_f(f)", metadata={"exercise": "solution"},
                                  outputs=[nbformat.v4.new_output(
                                      "stream", name="stdout", text="check passed\n")]),
        nbformat.v4.new_code_cell("import parity\n\nparity.report()"),
    ])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    assert layout_problems(path) == ["cell 2: a solution is tagged hide-input and source_hidden"]
