"""The exercises at the ends of the chapters: their checks pass the solutions and fail wrong answers.

An exercise is made of cells marked in their metadata with ``"exercise"``, in this order:

- ``"check"``: defines one or more ``check_<name>(answer)`` functions, decorated with
  ``exercises.check``, which raise ``CheckFailed`` (an ``AssertionError`` shown as a
  short message) when ``answer`` is wrong.
- ``"answer"``: one or more cells, a starting point for the reader with ``...`` where
  their code goes, that call the checks. While a ``...`` is left, a check only says
  that there is no answer yet, so running the whole notebook passes through.
- ``"solution"``: collapsed in the site and in Jupyter (tag ``hide-input`` and
  ``jupyter.source_hidden``); starts with ``%%solution``, so that it runs only when
  the book is checked (``PARITY_STRICT=1``), not when a reader runs the notebook;
  defines the solution and calls its checks, which print ``check passed`` last.

All are self-contained (they import what they use), so they run here outside the
chapter. nbval runs the solutions against JAX; this test makes sure that no check is
one that cannot fail: each is called on the wrong answers listed for it in
``tests/exercise_mistakes/<chapter>.py`` (``MISTAKES = {check name: [answer, ...]}``)
and must raise on every one, with a short message.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import itertools
import linecache
from pathlib import Path

import nbformat
import pytest

from exercises import CheckFailed
from run_chapters import ROOT, toc_notebooks

ROLES = ("check", "answer", "solution")
SOLUTION_MAGIC = "%%solution\n"
NO_ANSWER_YET = "no answer yet"
SHORT = 12  # lines: the most a failed check may print


def exercise_cells(path: Path) -> list[nbformat.NotebookNode]:
    cells = nbformat.read(path, as_version=4).cells
    return [cell for cell in cells if "exercise" in cell.metadata]


def chapters_with_exercises() -> list[Path]:
    return [path for path in toc_notebooks(ROOT) if exercise_cells(path)]


def python_source(cell: nbformat.NotebookNode) -> str:
    """A cell's code as Python: a solution without its ``%%solution`` line."""
    return cell.source.removeprefix(SOLUTION_MAGIC)


def check_names(cell: nbformat.NotebookNode) -> list[str]:
    """The ``check_*`` functions a check cell defines, each decorated with ``check``."""
    return [node.name for node in ast.parse(cell.source).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")]


def undecorated_checks(cell: nbformat.NotebookNode) -> list[str]:
    return [node.name for node in ast.parse(cell.source).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")
            and not any(isinstance(d, ast.Name) and d.id == "check" for d in node.decorator_list)]


def called_names(cell: nbformat.NotebookNode) -> set[str]:
    return {node.func.id for node in ast.walk(ast.parse(python_source(cell)))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


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
    roles = [cells[i].metadata["exercise"] for i in marked]
    for i, role in zip(marked, roles):
        if role == "check" and role in roles:
            following = roles[roles.index(role, marked.index(i)) + 1:]
            answers = list(itertools.takewhile(lambda r: r == "answer", following))
            if not answers or following[len(answers):len(answers) + 1] != ["solution"]:
                problems.append(f"cell {i}: a check is followed by its answer cells, "
                                "then its solution")
            else:
                answer_cells = [cells[j] for j in marked[marked.index(i) + 1:][:len(answers)]]
                called = set().union(*map(called_names, answer_cells))
                missing = [name for name in check_names(cells[i]) if name not in called]
                if missing:
                    problems.append(f"cell {i}: no answer cell calls {missing}")
    for i in marked:
        cell, role = cells[i], cells[i].metadata["exercise"]
        if role not in ROLES or cell.cell_type != "code":
            problems.append(f"cell {i}: 'exercise' must be one of {ROLES} on a code cell")
        elif role == "check" and not check_names(cell):
            problems.append(f"cell {i}: a check cell defines no check_* function")
        elif role == "check" and undecorated_checks(cell):
            problems.append(f"cell {i}: decorate {undecorated_checks(cell)} with "
                            "exercises.check")
        elif role == "answer" and NO_ANSWER_YET not in _printed(cell):
            problems.append(f"cell {i}: an answer cell starts with a `...` to fill in, so "
                            f"that its check prints '{NO_ANSWER_YET}' (run "
                            "scripts/run_chapters.py)")
        elif role == "solution" and not cell.source.startswith(SOLUTION_MAGIC):
            problems.append(f"cell {i}: a solution starts with the line %%solution")
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
def run_exercises(path: Path) -> tuple[dict, str]:
    """Run a chapter's check, answer and solution cells, in order, in one fresh
    namespace (once per chapter: the tests below use it, and none changes it);
    return the namespace and what the answer cells printed."""
    namespace: dict = {}
    answers = io.StringIO()
    for n, cell in enumerate(exercise_cells(path)):
        filename = f"<{path.stem}, exercise cell {n}>"  # a cell, as the checks see it
        source = python_source(cell)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        out = answers if cell.metadata["exercise"] == "answer" else io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(source, filename, "exec"), namespace)
    return namespace, answers.getvalue()


def mistakes_for(path: Path) -> dict[str, list]:
    return importlib.import_module(f"exercise_mistakes.{path.stem}").MISTAKES


CHAPTERS = chapters_with_exercises()
IDS = [path.stem for path in CHAPTERS]


SUMMARIES = {"primer"}  # pages that recap other chapters, with no exercise of their own


def test_every_chapter_has_exercises():
    have = {path.stem for path in CHAPTERS}
    chapters = [path.stem for path in toc_notebooks(ROOT)]
    first, last = chapters.index("tracing_and_forward_mode"), chapters.index("pitfalls")
    assert [name for name in chapters[first:last + 1]
            if name not in have and name not in SUMMARIES] == []


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_exercise_cells_follow_the_layout(path):
    assert layout_problems(path) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_solutions_pass_their_checks_outside_the_chapter(path):
    assert set(checks_of(path)) <= run_exercises(path)[0].keys()


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_the_starting_points_are_no_answer_yet(path):
    printed = run_exercises(path)[1].splitlines()
    assert [line.split(":")[0] for line in printed] == checks_of(path)
    assert all(NO_ANSWER_YET in line for line in printed)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_every_check_fails_on_its_wrong_answers_with_a_short_message(path):
    namespace = run_exercises(path)[0]
    mistakes = mistakes_for(path)
    assert sorted(mistakes) == sorted(checks_of(path)), \
        "every check needs wrong answers, and only checks"
    for name, answers in mistakes.items():
        assert answers, f"{name}: no wrong answers"
        for answer in answers:
            with contextlib.redirect_stdout(io.StringIO()), pytest.raises(CheckFailed) as caught:
                namespace[name](answer)
            message = str(caught.value)
            assert message.startswith(f"{name} failed"), message
            assert len(message.splitlines()) <= SHORT, message
            assert "Traceback" not in message and "minijax/" not in message, message


def test_a_solution_left_open_is_reported(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_code_cell("@check\ndef check_f(f):\n    assert f(1) == 1",
                                  metadata={"exercise": "check"}),
        nbformat.v4.new_code_cell("f = ...\ncheck_f(f)", metadata={"exercise": "answer"},
                                  outputs=[nbformat.v4.new_output(
                                      "stream", name="stdout", text="check_f: no answer yet\n")]),
        nbformat.v4.new_code_cell("%%solution\nf = abs\ncheck_f(f)",
                                  metadata={"exercise": "solution"},
                                  outputs=[nbformat.v4.new_output(
                                      "stream", name="stdout", text="check passed\n")]),
        nbformat.v4.new_code_cell("import parity\n\nparity.report()"),
    ])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    assert layout_problems(path) == ["cell 3: a solution is tagged hide-input and source_hidden"]
