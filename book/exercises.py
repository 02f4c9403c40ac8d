"""The checks of the book's exercises, made to talk to a reader.

Each chapter from "Tracing and forward mode" to "Pitfalls" ends with exercises (all
but "The machinery in one page", a summary). In the first four chapters the reader
builds a piece of minijax: those exercises' cells start with ``# minijax only``, and
their checks compare with JAX themselves. A check cell defines its checks under the
decorator ``check``::

    from exercises import check

    @check
    def check_logaddexp(logaddexp):
        ...  # asserts, with np.testing or check_grads, and prints what it measured
        print("check passed")

and a decorated check, called on a reader's answer:

- does nothing but say so while the answer still holds a placeholder: a ``...``
  in the cell that calls the check (other than an index such as ``x[..., 0]``).
  The answer cell of each exercise starts that way, so that running the whole
  notebook passes through it;
- raises ``CheckFailed`` when the answer is wrong. IPython shows it as a short
  message (which check, the line of the check that failed, and what differs, by how
  much and with which tolerance, or the error the answer raised and where in the
  reader's code) instead of a traceback through minijax. ``%tb`` then shows the
  whole traceback.

``CheckFailed`` is an ``AssertionError``, so tests can expect either.
"""

from __future__ import annotations

import ast
import functools
import linecache
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

MAX_FRAMES = 3  # frames of the reader's own code quoted when an answer raises
MAX_LINES = 10  # lines of an assertion's message quoted
MAX_WIDTH = 160  # characters of a line quoted
MAX_POSITIONS = 2  # differing positions quoted from NumPy's list
_POSITION = re.compile(r"^\s*\[[\d, ]*\]: .*\(ACTUAL\), .*\(DESIRED\)$")


class CheckFailed(AssertionError):
    """An exercise's check failed; shown as its message alone, the first time."""

    shown = False

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for this error: the message, once. Asked again (``%tb``),
        the whole traceback, the failed assertion's included."""
        if self.shown:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None:
                return shell.InteractiveTB.structured_traceback(
                    type(self), self, self.__traceback__)
        self.shown = True
        return str(self).splitlines() + ["(%tb shows the whole traceback.)"]


def check(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``fn(answer)``, an exercise's check, one that speaks to a reader."""

    @functools.wraps(fn)
    def run_check(answer: Any, *args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_code.co_filename
        blanks = placeholders("".join(linecache.getlines(caller))) if _is_cell(caller) else []
        if answer is Ellipsis or blanks:
            where = (f" (line{'s' if len(blanks) > 1 else ''} {', '.join(map(str, blanks))})"
                     if blanks else "")
            print(f"{fn.__name__}: no answer yet. Write your code in place of the "
                  f"`...`{where} in this cell, then run it again.")
            return None
        try:
            return fn(answer, *args, **kwargs)
        except Exception as error:
            raise CheckFailed(explain(fn, error)) from error

    return run_check


def _is_cell(filename: str) -> bool:
    """True for the code of a notebook cell or console input, not of a module."""
    return "ipykernel_" in filename or not Path(filename).is_file()


def placeholders(source: str) -> list[int]:
    """The lines of ``source`` holding a ``...`` that stands for code to write: any
    ``...`` except inside an index or a type (``x[..., 0]``, ``Callable[..., int]``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    in_index = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.Subscript)
                for inner in ast.walk(node.slice)}
    return sorted({node.lineno for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and node.value is Ellipsis
                   and id(node) not in in_index})


def explain(fn: Callable[..., Any], error: BaseException) -> str:
    """The short message for a check ``fn`` that failed with ``error``."""
    frames = traceback.extract_tb(error.__traceback__)
    code = fn.__code__
    in_check = [f for f in frames if f.filename == code.co_filename and f.name == fn.__name__]
    header = f"{fn.__name__} failed"
    if in_check:
        line = (in_check[-1].line or "").strip()
        header += f", at line {in_check[-1].lineno} of the check cell: {line}"
    if isinstance(error, AssertionError):
        text = str(error).strip() or "an assert without a message failed"
        return "\n".join([header] + _shortened(text.splitlines()))
    lines = [header, f"  your answer raised {type(error).__name__}: {error}"]
    yours = [f for f in frames if _is_readers(f.filename, code.co_filename)]
    for frame in yours[-MAX_FRAMES:]:
        lines.append(f"    in {frame.name}, line {frame.lineno}: {(frame.line or '').strip()}")
    return "\n".join(lines)


def _shortened(lines: list[str]) -> list[str]:
    """An assertion's message, indented, without blank lines, with at most
    ``MAX_POSITIONS`` of NumPy's differing positions (and then without the arrays
    in full) and ``MAX_LINES`` lines."""
    if any(_POSITION.match(line) for line in lines):  # the arrays in full add nothing
        cut = next((i for i, line in enumerate(lines) if line.strip().startswith("ACTUAL:")),
                   len(lines))
        lines = lines[:cut]
    kept, positions = [], 0
    for line in lines:
        if not line.strip():
            continue
        if _POSITION.match(line):
            positions += 1
            if positions > MAX_POSITIONS:
                continue
        line = line.rstrip()
        kept.append(line if len(line) <= MAX_WIDTH else line[:MAX_WIDTH - 3] + "...")
    if len(kept) > MAX_LINES:
        kept = kept[:MAX_LINES - 1] + [f"... ({len(kept) - MAX_LINES + 1} more lines)"]
    return [f"  {line}" for line in kept]


def _is_readers(filename: str, check_file: str) -> bool:
    """True for code the reader wrote: not the check, not a library, not this file."""
    if filename in (check_file, __file__) or filename.startswith("<solution"):
        return False
    path = Path(filename)
    if not path.is_absolute() or not path.exists():
        return True  # a notebook cell or a console's input
    libraries = {sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parent.parent)}
    return not any(str(path.resolve()).startswith(str(Path(root).resolve()))
                   for root in libraries)
