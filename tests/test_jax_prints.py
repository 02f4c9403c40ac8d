"""The blocks in the chapters' text that show what JAX prints, checked against JAX.

Where minijax prints something JAX prints differently (a jaxpr, StableHLO, a tracer's
name), a chapter shows minijax's output in a cell marked ``# minijax only`` and JAX's
in the markdown cell after it, as a fenced block without a language, introduced by
prose that names JAX ("JAX prints the same equations ...:"). This test finds every
such block, runs the chapter's code on JAX up to that cell (each compared cell with
``minijax`` rewritten to ``jax``, as the parity extension does), runs the
``# minijax only`` cell the same way, and compares what it printed, and the value of
its last expression, with the block: numbers to float32 precision, all other text
exactly (spacing aside). A block may show only the last lines of what was printed
(a jaxpr, without what the traced function printed while it was staged).

A ``# minijax only`` cell that uses minijax's internals has no JAX twin by rewriting;
``JAX_CODE`` gives the JAX code that prints the same thing.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

import parity

BOOK = Path(__file__).resolve().parent.parent / "book"
FENCE = re.compile(r"^```[ \t]*\n(.*?)^```", re.S | re.M)

# Internals of minijax with no counterpart in JAX's API: the JAX code printing what
# the block shows. linearize_flat(lambda x: [f(x)], [jnp.array(a)]) prints the linear
# jaxpr that jax.linearize's function evaluates.
JAX_CODE = [
    (re.compile(r"linearize_flat\(\s*lambda x: \[f\(x\)\], \[(jnp\.array\([^)]*\))\]\)"),
     lambda match: f"print(jax.make_jaxpr(jax.linearize(f, {match.group(1)})[1])"
                   f"({match.group(1)}))"),
]


def _source(cell) -> str:
    return "".join(cell["source"])


def jax_blocks():
    """(chapter, index of the markdown cell, block text, index of its code cell)."""
    found = []
    for path in sorted(BOOK.glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] != "markdown":
                continue
            text = _source(cell)
            for match in FENCE.finditer(text):
                block = match.group(1)
                # Prose naming JAX introduces it; type signatures (f :: a -> b) are not output.
                if "JAX" not in text[:match.start()] or " :: " in block:
                    continue
                code = next(j for j in range(i - 1, -1, -1) if cells[j]["cell_type"] == "code")
                found.append((path.stem, i, block, code))
    return found


def _is_magic(source: str) -> bool:
    return any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()) \
        or "parity.report()" in source


def _run(code: str, namespace: dict) -> str:
    """Run a cell's code on JAX: what it prints, then the repr of its last expression."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            tree = ast.parse(code)
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, "<cell>", "exec"), namespace)
            if last is not None:
                value = eval(compile(last, "<cell>", "eval"), namespace)
                if value is not None:
                    print(repr(value))
        except Exception as error:  # noqa: BLE001  (a cell that raises on purpose)
            print(f"{type(error).__name__}: {error}")
    return out.getvalue()


def jax_code(source: str) -> str:
    code = parity.to_jax_source(source)
    for pattern, replacement in JAX_CODE:
        if pattern.search(code):
            return "import jax\nimport jax.numpy as jnp\n" + replacement(pattern.search(code))
    return code


def chapter_outputs(chapter: str, code_cells: set[int]) -> dict[int, str]:
    """Run the chapter on JAX up to its last cell in ``code_cells``."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    cells = json.loads((BOOK / f"{chapter}.ipynb").read_text())["cells"]
    namespace: dict = {"__name__": "__main__"}
    outputs = {}
    cwd = os.getcwd()
    os.chdir(BOOK)  # a chapter's kernel starts in book/
    try:
        for j, cell in enumerate(cells[:max(code_cells) + 1]):
            source = _source(cell)
            if cell["cell_type"] != "code" or _is_magic(source):
                continue
            if j in code_cells:
                outputs[j] = _run(jax_code(source), namespace)
            elif not source.lstrip().startswith(parity.SKIP_MARKER):
                _run(parity.to_jax_source(source), namespace)
    finally:
        os.chdir(cwd)
    return outputs


BLOCKS = jax_blocks()
CHAPTERS = sorted({chapter for chapter, *_ in BLOCKS})


def test_blocks_are_found():
    # Most chapters now compare such output in a cell; these blocks remain.
    assert len(BLOCKS) >= 10 and "using_custom_vjp" in CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_what_jax_prints(chapter):
    blocks = [(i, block, code) for name, i, block, code in BLOCKS if name == chapter]
    outputs = chapter_outputs(chapter, {code for _, _, code in blocks})
    problems = []
    for i, block, code in blocks:
        printed = outputs[code]
        # A block may show the end of what the cell printed (the jaxpr, without the
        # lines a traced function printed before it).
        tail = "\n".join(printed.rstrip("\n").splitlines()[-len(block.rstrip("\n").splitlines()):])
        if not parity.text_differences(block, tail):
            continue
        for problem in parity.text_differences(block, printed, "the block"):
            problems.append(f"{chapter}, markdown cell {i} (after code cell {code}): "
                            f"{problem.replace('minijax', 'the book').replace('JAX,', 'JAX ,')}"
                            f"\n    JAX printed:\n{printed}")
    assert not problems, "\n\n".join(problems)
