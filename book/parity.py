"""Check that minijax behaves like JAX, cell by cell and in tests.

Every chapter of the book starts with a hidden cell that runs ``%load_ext parity``.
From then on each code cell runs twice:

1. on minijax, exactly as written; the reader sees this run's output;
2. on real JAX, in a separate "twin" namespace, with every ``minijax`` name in the
   source rewritten to ``jax`` (``import minijax.numpy as jnp`` becomes
   ``import jax.numpy as jnp``). The twin's output is captured and never shown.

The two runs must agree on what the cell printed, on the value of its last
expression, on every top-level variable it bound to an array (or a tuple, list,
dict or namedtuple of arrays and Python numbers), and on whether it raised. Numbers
are compared at float32 tolerances (``RTOL``, ``ATOL``); nan and inf must sit in
the same places. When the runs disagree the cell fails with a ``ParityError`` that
says what differs.

A cell whose first line is ``# minijax only`` is not compared and not run on JAX
(it may show minijax's own source, say); so is an exercise's solution whose code
starts with it, on the line after ``%%solution``. Because the twin never sees such a cell,
names it defines do not exist in the twin: later cells must not rely on them.

A chapter ends with a hidden cell that calls ``parity.report()``, which prints how
many cells were compared and fails if none were, or if any disagreed.

The book's cells and a reader's. A cell whose source is the source of a code cell
stored in one of the notebooks next to this file is the book's: a disagreement fails
it with a ``ParityError`` and makes ``report()`` fail. Any other cell, one the reader
wrote or changed, is the reader's: a disagreement prints a short side-by-side view of
what differs, the cell does not fail, and ``report()`` only counts it apart. With the
environment variable ``PARITY_STRICT=1`` (set by scripts/run_chapters.py and by the
tests' conftest.py, so nbval has it too) every cell counts as the book's.

What a run cannot reproduce is not a difference: object addresses, the module path
in an object's default repr (``<minijax.custom_derivatives.custom_jvp object at
0x...>`` and ``<jax._src.custom_derivatives.custom_jvp object at 0x...>`` agree), the
timings that ``%time`` prints, temporary paths, and two functions shown by identity.
IPython's magics run once: their results are recorded during minijax's run and
handed to the twin, except ``%time`` and ``%%solution``, whose code runs on each
library. A cell that uses something only one of the libraries has says so in one
line.

``%%solution`` marks an exercise's solution (see exercises.py): it runs only with
``PARITY_STRICT=1``, so that "Run All" in Jupyter neither runs nor reveals it.

Tests use the same comparison without a notebook: ``assert_same(fn)`` runs
``fn(jax_like, jax_like.numpy)`` once with minijax and once with JAX, and
``compare(mini, real)`` compares two values.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import io
import itertools
import json
import linecache
import os
import random
import re
import sys
import tempfile
import tokenize
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any, Callable

import numpy as np
from IPython.core.displayhook import DisplayHook

# The twin must not look for accelerators: on a machine with a GPU but a CPU-only
# jaxlib, JAX writes a warning that would land in the notebook.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

RTOL = 1e-5
ATOL = 1e-6
SKIP_MARKER = "# minijax only"
MAX_SHOWN = 3  # differing array elements quoted in a message
SHORT_OUTPUT = 8  # printed texts up to this many lines are quoted whole

STRICT_VARIABLE = "PARITY_STRICT"  # "1": every cell is the book's, and solutions run
# Magics whose code is an example to run on each library; other magics run once.
CODE_MAGICS = frozenset({"time", "solution"})
SOLUTION_SKIPPED = ("This is the exercise's solution, folded away: running the whole "
                    "notebook does not run it.\nTo read it, unfold the cell; to run it, "
                    "delete its first line, %%solution, and run the cell.")
COLUMN = 38  # width of a column in the side-by-side view of a reader's cell

# Names IPython manages itself; they differ between the two runs by design.
_SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_MISSING = object()


class ParityError(AssertionError):
    """minijax and JAX disagree."""


def strict() -> bool:
    """True when every cell counts as the book's (``PARITY_STRICT=1``)."""
    return os.environ.get(STRICT_VARIABLE) == "1"


class _Problem(str):
    """One difference: its text, and what each side gave, for the side-by-side view."""

    where: str
    mini: str
    real: str

    def __new__(cls, text: str, where: str = "", mini: str = "", real: str = "") -> "_Problem":
        problem = super().__new__(cls, text)
        problem.where, problem.mini, problem.real = where, mini, real
        return problem


# ---------------------------------------------------------------------------
# Comparing values


def compare(mini: Any, real: Any, name: str = "value") -> None:
    """Raise ParityError if minijax's ``mini`` and JAX's ``real`` differ."""
    problems = differences(mini, real, name)
    if problems:
        raise ParityError(_message(name, problems))


def differences(mini: Any, real: Any, path: str = "value") -> list[str]:
    """List how two pytrees differ (empty when they agree)."""
    kind_mini, kind_real = _kind(mini), _kind(real)
    if kind_mini != kind_real:
        return [_Problem(
            f"{path}: minijax gives a {kind_mini}, JAX a {kind_real}\n"
            f"    minijax: {_show(mini)}\n    JAX:     {_show(real)}",
            path, f"a {kind_mini}: {_show(mini)}", f"a {kind_real}: {_show(real)}")]
    if kind_mini in ("tuple", "list") or kind_mini.startswith("namedtuple"):
        return _sequence_differences(mini, real, path)
    if kind_mini == "dict":
        return _dict_differences(mini, real, path)
    if kind_mini in ("array", "numpy array"):
        return _array_differences(mini, real, path)
    if kind_mini in ("bool", "int", "float", "complex"):
        return _value_differences(np.asarray(mini), np.asarray(real), path)
    if kind_mini == "object":
        return _object_differences(mini, real, path)
    if mini != real:  # str and None
        return [_Problem(f"{path}: minijax gives {_show(mini)}, JAX {_show(real)}",
                         path, _show(mini), _show(real))]
    return []


def _kind(x: Any) -> str:
    """Name the kind of a pytree node; both sides must have the same kinds."""
    if x is None:
        return "None"
    # Exact NumPy types first: np.float64 is also a Python float.
    if type(x) is np.ndarray or isinstance(x, np.generic):
        return "numpy array"
    for python_type in (bool, int, float, complex, str):
        if isinstance(x, python_type):
            return python_type.__name__
    # A tuple shape tells arrays apart from modules like jax.numpy, which also
    # have attributes named shape and dtype.
    if isinstance(getattr(x, "shape", None), tuple) and hasattr(x, "dtype"):
        return "array"
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        return f"namedtuple {type(x).__name__}"
    for container in (tuple, list, dict):
        if isinstance(x, container):
            return container.__name__
    return "object"


def _sequence_differences(mini: Any, real: Any, path: str) -> list[str]:
    if len(mini) != len(real):
        return [_Problem(f"{path}: minijax gives {len(mini)} items, JAX {len(real)}",
                         path, f"{len(mini)} items", f"{len(real)} items")]
    problems: list[str] = []
    for i, (a, b) in enumerate(zip(mini, real)):
        problems += differences(a, b, f"{path}[{i}]")
    return problems


def _dict_differences(mini: dict, real: dict, path: str) -> list[str]:
    if set(mini) != set(real):
        keys_mini, keys_real = sorted(map(repr, mini)), sorted(map(repr, real))
        return [_Problem(f"{path}: minijax has keys {keys_mini}, JAX {keys_real}",
                         f"{path} keys", ", ".join(keys_mini), ", ".join(keys_real))]
    problems: list[str] = []
    for key in sorted(mini, key=repr):
        problems += differences(mini[key], real[key], f"{path}[{key!r}]")
    return problems


def _array_differences(mini: Any, real: Any, path: str) -> list[str]:
    problems = []
    for attribute in ("shape", "dtype", "weak_type"):
        a, b = _array_attribute(mini, attribute), _array_attribute(real, attribute)
        if a != b:
            problems.append(_Problem(f"{path}: {attribute} is {a} in minijax, {b} in JAX",
                                     f"{path} {attribute}", str(a), str(b)))
    if problems:
        return problems
    return _value_differences(np.asarray(mini), np.asarray(real), path)


def _array_attribute(x: Any, attribute: str) -> Any:
    if attribute == "shape":
        return tuple(x.shape)
    if attribute == "dtype":
        return np.dtype(x.dtype).name
    # NumPy arrays have no weak_type; JAX arrays always do, so minijax's must too.
    return getattr(x, "weak_type", None)


def _value_differences(a: np.ndarray, b: np.ndarray, path: str) -> list[str]:
    wrong = ~_close(a, b)
    if not wrong.any():
        return []
    if wrong.ndim == 0:
        return [_Problem(f"{path}: minijax gives {a[()]!s}, JAX {b[()]!s}",
                         path, str(a[()]), str(b[()]))]
    where = [tuple(int(i) for i in index) for index in np.argwhere(wrong)[:MAX_SHOWN]]
    lines = [f"{path}: values differ at {int(wrong.sum())} of {wrong.size} positions"]
    for index in where:
        label = ", ".join(map(str, index))
        lines.append(f"    at {path}[{label}]: minijax {a[index]!s}, JAX {b[index]!s}")
    first = ", ".join(map(str, where[0]))
    count = f" ({int(wrong.sum())} of {wrong.size} differ)"
    return [_Problem("\n".join(lines), f"{path}[{first}]{count}",
                     str(a[where[0]]), str(b[where[0]]))]


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise agreement: exact for integers, float32 tolerance for floats."""
    if a.dtype.kind == "V" or b.dtype.kind == "V":  # float0 holds no values: equal by shape
        return np.full(a.shape, a.dtype == b.dtype)
    if a.dtype.kind not in "biufc":  # e.g. bfloat16 from ml_dtypes
        a, b = a.astype(np.float64), b.astype(np.float64)
    if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
        return np.asarray(a == b)
    both_nan = np.isnan(a) & np.isnan(b)
    # isclose already demands that infinities match in place and sign.
    return np.isclose(a, b, rtol=RTOL, atol=ATOL) | both_nan


def _object_differences(mini: Any, real: Any, path: str) -> list[str]:
    """Other objects (jaxprs, ...) are compared by what they print. Two functions
    shown by identity (``<function f at 0x...>``, ``<PjitFunction of ...>``) agree:
    how each library wraps a function is not behaviour."""
    if _shown_by_identity(mini) and _shown_by_identity(real):
        return []
    if type(mini).__name__ != type(real).__name__:
        return [_Problem(f"{path}: minijax gives a {type(mini).__name__}, "
                         f"JAX a {type(real).__name__}", path,
                         f"a {type(mini).__name__}", f"a {type(real).__name__}")]
    return text_differences(repr(mini), repr(real), f"{path} (as printed)")


def _shown_by_identity(x: Any) -> bool:
    if not callable(x) or isinstance(x, type):
        return False
    try:
        return bool(_ADDRESS.search(repr(x)))
    except Exception:  # a broken repr is compared, and reported, as text
        return False


def _show(x: Any, limit: int = 300) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------
# Comparing printed text

_NUMBER = (r"[+-]?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
           r"|\d+[eE][+-]?\d+|\d+|nan|inf)")
# A number must not touch a letter, digit or dot, so `float32` stays one word.
_TOKEN = re.compile(rf"(?P<number>(?<![\w.]){_NUMBER}(?![\w.]))|(?P<word>\w+)|(?P<other>\S)")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
# An object's default repr names its module, which differs between the libraries.
_DEFAULT_REPR = re.compile(r"<(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*) object at 0x[0-9a-fA-F]+>")
# What %time and %timeit print: timings, never the same twice.
_TIMING_LINE = re.compile(
    r"^(?:CPU times: .*|Wall time: .*|Compiler time: .*|Parser\s*: .*"
    r"|.* per loop \(mean . std\. dev\. of .*\)|The slowest run took .*"
    r"|.*intermediate result is being cached\.?)\n?", re.MULTILINE)
_TEMP_PATH = re.compile("(?:" + "|".join(sorted({re.escape(tempfile.gettempdir()), "/tmp",
                                                  "/var/folders"}, key=len, reverse=True))
                        + r")/[^\s'\"]*")


def run_specific_text_removed(text: str) -> str:
    """``text`` without what depends on the run rather than on the library: the
    lines of timings, temporary paths, and the module path of default reprs."""
    text = _TIMING_LINE.sub("", text)
    text = _TEMP_PATH.sub("<temporary path>", text)
    return _DEFAULT_REPR.sub(r"<\1 object>", text)


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


def text_differences(mini: str, real: str, what: str = "printed output") -> list[str]:
    """Compare two printed texts token by token.

    Numbers agree within float32 tolerance (an integer must match an integer
    exactly); nan and inf must match; other text must match exactly. Spacing is
    ignored because NumPy pads columns to the width of the widest number.
    """
    mini, real = run_specific_text_removed(mini), run_specific_text_removed(real)
    a, b = _tokens(mini), _tokens(real)
    for token_a, token_b in zip(a, b):
        if not _same_token(token_a, token_b):
            return [_text_problem(what, mini, real, token_a.line, token_b.line)]
    if len(a) != len(b):
        n = min(len(a), len(b))
        more = "minijax" if len(a) > n else "JAX"
        return [_text_problem(f"{what} ({more} printed more)", mini, real,
                              _line_of(a, n), _line_of(b, n))]
    return []


def _line_of(tokens: list[_Token], n: int) -> int:
    """Line of the n-th token, or of the last one when there are fewer."""
    if not tokens:
        return 0
    return tokens[min(n, len(tokens) - 1)].line


def _tokens(text: str) -> list[_Token]:
    # Memory addresses change from run to run and say nothing about behaviour.
    text = _ADDRESS.sub("0xADDRESS", text)
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _TOKEN.finditer(line):
            found.append(_Token(match.lastgroup or "other", match.group(), number))
    return found


def _same_token(a: _Token, b: _Token) -> bool:
    if a.kind != "number" or b.kind != "number":
        return a.text == b.text
    a_is_int, b_is_int = _is_int_text(a.text), _is_int_text(b.text)
    if a_is_int or b_is_int:
        return a_is_int and b_is_int and int(a.text) == int(b.text)
    return bool(_close(np.asarray(float(a.text)), np.asarray(float(b.text))))


def _is_int_text(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _text_problem(what: str, mini: str, real: str, line_a: int, line_b: int) -> str:
    problem = (f"{what} differs:\n"
               f"    minijax, line {line_a}: {_line(mini, line_a)}\n"
               f"    JAX,     line {line_b}: {_line(real, line_b)}")
    if max(len(mini.splitlines()), len(real.splitlines())) <= SHORT_OUTPUT:
        problem += f"\n    minijax printed: {mini!r}\n    JAX printed:     {real!r}"
    where = f"{what.replace(' differs', '')}, line {max(line_a, line_b, 1)}"
    return _Problem(problem, where, _line(mini, line_a), _line(real, line_b))


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return repr(lines[number - 1]) if 0 < number <= len(lines) else "(nothing)"


# ---------------------------------------------------------------------------
# One run of some code on one side


@dataclasses.dataclass
class _Run:
    """What one side did: printed text, last value, raised exception."""

    stdout: str
    value: Any = None
    error: BaseException | None = None


def _compare_runs(mini: _Run, real: _Run, has_value: bool) -> list[str]:
    problems = _error_differences(mini.error, real.error)
    problems += text_differences(mini.stdout, real.stdout)
    if has_value and mini.error is None and real.error is None:
        problems += differences(mini.value, real.value, "result")
    return problems


def _error_differences(mini: BaseException | None, real: BaseException | None) -> list[str]:
    if mini is None and real is None:
        return []
    if mini is None or real is None or type(mini).__name__ != type(real).__name__:
        return [_Problem(f"exception: minijax {_describe(mini)}, JAX {_describe(real)}",
                         "exception", _describe(mini), _describe(real))]
    return []


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "raised nothing"
    return f"raised {type(error).__name__}: {error}"


def _message(subject: str, problems: list[str]) -> str:
    return f"{subject} differs between minijax and JAX:\n- " + "\n- ".join(problems)


@contextlib.contextmanager
def _capture_output():
    """Collect stdout; swallow stderr, which a reader never sees from JAX's run."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        yield out


def _random_state() -> tuple[Any, Any]:
    return np.random.get_state(), random.getstate()


def _set_random_state(state: tuple[Any, Any]) -> None:
    np.random.set_state(state[0])
    random.setstate(state[1])


# ---------------------------------------------------------------------------
# The API for tests


def assert_same(fn: Callable[[ModuleType, ModuleType], Any]) -> Any:
    """Run ``fn(lib, lib.numpy)`` on minijax and on JAX; raise if they differ.

    Compares what ``fn`` prints, what it returns and what it raises. Both runs
    start from the same state of NumPy's and Python's random generators.
    Returns minijax's result.
    """
    start = _random_state()
    mini = _run_with(fn, "minijax")
    _set_random_state(start)
    real = _run_with(fn, "jax")
    problems = _compare_runs(mini, real, has_value=True)
    if problems:
        raise ParityError(_message(getattr(fn, "__name__", "function"), problems))
    return mini.value


def _run_with(fn: Callable[[ModuleType, ModuleType], Any], library: str) -> _Run:
    lib = importlib.import_module(library)
    lib_numpy = importlib.import_module(f"{library}.numpy")
    with _capture_output() as out:
        try:
            value = fn(lib, lib_numpy)
        except Exception as error:  # compared with the other side's
            return _Run(out.getvalue(), error=error)
    return _Run(out.getvalue(), value)


# ---------------------------------------------------------------------------
# Turning a cell into its JAX twin


def to_jax_source(source: str) -> str:
    """Rewrite each Python name ``minijax`` to ``jax`` (strings and comments stay)."""
    lines = source.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source  # Python will report the real syntax error when it runs
    starts = [t.start for t in tokens if t.type == tokenize.NAME and t.string == "minijax"]
    for row, col in reversed(starts):  # right to left keeps earlier columns valid
        line = lines[row - 1]
        lines[row - 1] = line[:col] + "jax" + line[col + len("minijax"):]
    return "".join(lines)


_TWIN_CELLS = itertools.count(1)


def _compile_cell(code: str, quiet: bool, filename: str = "") -> tuple[CodeType, CodeType | None]:
    """Compile a cell's body, and its last expression separately to get its value.

    The source is registered with linecache under ``filename`` (a fresh name by
    default), so that tracebacks and code that reads its caller's source see it.
    """
    filename = filename or f"<cell run on JAX #{next(_TWIN_CELLS)}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    tree = ast.parse(code, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not quiet:
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec")
    return body, compile(last, filename, "eval") if last else None


def _run_code(code: str, namespace: dict[str, Any], quiet: bool, filename: str = "") -> Any:
    """Run a cell's code in ``namespace``; return the value of its last expression."""
    body, last = _compile_cell(code, quiet, filename)
    exec(body, namespace)
    return eval(last, namespace) if last else None


def _is_skipped(source: str) -> bool:
    """A cell whose first line is the marker; for a solution, the first line of its
    code, after ``%%solution``."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    if lines[:1] == ["%%solution"]:
        lines = lines[1:]
    return lines[:1] == [SKIP_MARKER]


def fingerprint(source: str) -> str:
    """A cell's identity: its source, without trailing spaces and blank lines."""
    text = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(text.encode()).hexdigest()


def book_fingerprints(folder: Path | None = None) -> frozenset[str]:
    """The fingerprints of every code cell stored in the notebooks of ``folder``
    (by default the folder of this file, book/): the cells the book wrote."""
    folder = folder or Path(__file__).resolve().parent
    found = set()
    for path in sorted(folder.glob("*.ipynb")):
        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError):
            continue
        for cell in cells:
            if cell.get("cell_type") == "code":
                source = cell.get("source", "")
                found.add(fingerprint("".join(source) if isinstance(source, list) else source))
    return frozenset(found)


def _user_names(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Names that a cell bound or rebound at top level."""
    return {
        name for name, value in after.items()
        if not name.startswith("_") and name not in _SHELL_NAMES
        and (name not in before or before[name] is not value)
    }


def _is_data(x: Any) -> bool:
    """True for arrays, Python numbers, and containers holding only those."""
    kind = _kind(x)
    if kind in ("array", "numpy array", "bool", "int", "float", "complex", "None"):
        return True
    if kind == "dict":
        return all(_is_data(v) for v in x.values())
    if kind in ("tuple", "list") or kind.startswith("namedtuple"):
        return all(_is_data(v) for v in x)
    return False


@contextlib.contextmanager
def _hidden_figures():
    """Keep the twin's plots out of the notebook and off minijax's figures."""
    if "matplotlib.pyplot" not in sys.modules:
        yield
        return
    import matplotlib.pyplot as plt
    from matplotlib._pylab_helpers import Gcf

    shown, saved_show = dict(Gcf.figs), plt.show
    Gcf.figs.clear()  # the twin starts with no current figure to draw on
    plt.show = lambda *args, **kwargs: None
    try:
        yield
    finally:
        plt.show = saved_show
        Gcf.destroy_all()  # only the twin's figures are registered now
        Gcf.figs.update(shown)


class _Tee:
    """Records what a cell prints while still passing it on to the notebook."""

    def __init__(self, shell: Any, stream: Any, quiet: Callable[[], bool]) -> None:
        self.shell, self.stream, self.quiet, self.parts = shell, stream, quiet, []
        self.had_own_write = "write" in vars(stream)
        self.saved_write = stream.write
        stream.write = self.write

    def write(self, data: str, *args: Any, **kwargs: Any) -> Any:
        # Like IPython's own history tee: skip the display hook's "Out[n]:" echo
        # and tracebacks, which are not the cell's printing; skip too what a magic
        # that runs once prints (the twin does not print it again).
        if not (_flag(self.shell.displayhook, "is_active")
                or _flag(self.shell.display_pub, "is_publishing")
                or _flag(self.shell, "showing_traceback") or self.quiet()):
            self.parts.append(data)
        return self.saved_write(data, *args, **kwargs)

    def close(self) -> str:
        if self.had_own_write:
            self.stream.write = self.saved_write
        else:
            del self.stream.write
        return "".join(self.parts)


def _flag(obj: Any, name: str) -> bool:
    return bool(getattr(obj, name, False))


# ---------------------------------------------------------------------------
# Something only one library has


_LACKING = [
    re.compile(r"cannot import name '(?P<name>\w+)' from '(?P<module>[\w.]+)'"),
    re.compile(r"module '(?P<module>[\w.]+)' has no attribute '(?P<name>\w+)'"),
    re.compile(r"No module named '(?P<module>[\w.]+)'"),
]


def lacking(error: BaseException | None) -> tuple[str, str] | None:
    """``(library, dotted name)`` when ``error`` says that a module of minijax or of
    JAX lacks a name or a submodule, else None."""
    if not isinstance(error, (ImportError, AttributeError)):
        return None
    for pattern in _LACKING:
        match = pattern.search(str(error))
        if match:
            module = match.group("module")
            name = match.groupdict().get("name")
            library = module.split(".")[0]
            if library in ("minijax", "jax"):
                return library, f"{module}.{name}" if name else module
    return None


def _in_other_library(dotted: str) -> str:
    """The same dotted name in the other library."""
    library, _, rest = dotted.partition(".")
    other = "jax" if library == "minijax" else "minijax"
    return f"{other}.{rest}" if rest else other


def _exists(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name) if module else (
            importlib.util.find_spec(name) is not None)
    except Exception:  # an import that fails: the name is not there
        return False


def only_jax_message(dotted_in_minijax: str) -> str:
    return (f"{dotted_in_minijax} does not exist; JAX has "
            f"{_in_other_library(dotted_in_minijax)}. minijax builds part of JAX's API: "
            "the page 'minijax and JAX' lists what it lacks.")


def only_minijax_message(dotted_in_jax: str) -> str:
    return (f"{_in_other_library(dotted_in_jax)} exists only in minijax (JAX has no "
            f"{dotted_in_jax}): this cell was not compared with JAX, and what it "
            "defines exists only on minijax's side.")


def _one_library_only(mini: BaseException | None, real: BaseException | None) -> str | None:
    """One line when a cell used a name that only one of the libraries has."""
    missing = lacking(mini)
    if missing and missing[0] == "minijax" and real is None:
        return only_jax_message(missing[1])
    missing = lacking(real)
    if missing and missing[0] == "jax" and mini is None:
        return only_minijax_message(missing[1])
    return None


# ---------------------------------------------------------------------------
# A reader's cell: a compact view of what differs


def _cut(text: str, width: int = COLUMN) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def side_by_side(problems: list[str]) -> str:
    """What differs, one row per difference: where, minijax's side, JAX's side."""
    rows = [(p.where, p.mini, p.real) for p in problems if getattr(p, "where", "")]
    others = [str(p) for p in problems if not getattr(p, "where", "")]
    lines = ["minijax and JAX differ on this cell. It is yours (written or changed), so "
             "it does not count against the chapter's check:"]
    if rows:
        where_width = max(len(_cut(row[0], 30)) for row in rows)
        lines.append(f"  {'':<{where_width}}  {'minijax':<{COLUMN}}  JAX")
        for where, mini, real in rows:
            lines.append(f"  {_cut(where, 30):<{where_width}}  {_cut(mini):<{COLUMN}}  "
                         f"{_cut(real)}".rstrip())
    lines += [f"  {line}" for other in others for line in other.splitlines()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The IPython extension


_RECORDED = ("run_line_magic", "run_cell_magic", "system", "getoutput")


class _TwinShell:
    """What ``get_ipython()`` returns in the twin: magics that run once give back
    what they gave in minijax's run; ``%time`` and ``%%solution`` run their code on JAX."""

    def __init__(self, session: "_Session") -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session.shell, name)

    def run_line_magic(self, magic_name: str, line: str, _stack_depth: int = 1) -> Any:
        if magic_name in CODE_MAGICS:
            return self._session.run_code_magic(magic_name, line, None, self._session.twin)
        return self._session.replay("run_line_magic", magic_name)

    def run_cell_magic(self, magic_name: str, line: str, cell: str) -> Any:
        if magic_name in CODE_MAGICS:
            return self._session.run_code_magic(magic_name, line, cell, self._session.twin)
        return self._session.replay("run_cell_magic", magic_name)

    def system(self, cmd: str) -> Any:
        return self._session.replay("system", None)

    def getoutput(self, cmd: str, split: bool = True, depth: int = 0) -> Any:
        return self._session.replay("getoutput", None)


class _Session:
    """Per-shell state of the extension: the twin namespace and the counts."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.twin: dict[str, Any] = {"__name__": "__main__",
                                     "get_ipython": lambda: self.twin_shell}
        self.twin_shell = _TwinShell(self)
        self.book = book_fingerprints()
        self.compared = 0
        self.skipped = 0
        self.failures: dict[str, int | None] = {}  # the book's cells that disagreed
        self.reader_compared = 0
        self.reader_differing: dict[str, int | None] = {}
        self.skipped_names: set[str] = set()
        self.reporting = False
        self.before: dict[str, Any] | None = None
        self.tee: _Tee | None = None
        self.start_random: tuple[Any, Any] | None = None
        self.calls: list[tuple[str, str | None, Any]] = []  # magics of this cell
        self.replayed = 0
        self.magic_depth = 0
        self.quiet_depth = 0

    # -- magics run once, recorded for the twin

    def _record_magics(self) -> None:
        self.calls, self.replayed, self.magic_depth, self.quiet_depth = [], 0, 0, 0
        for method in _RECORDED:
            setattr(self.shell, method, self._recorder(method, getattr(self.shell, method)))

    def _stop_recording(self) -> None:
        for method in _RECORDED:
            self.shell.__dict__.pop(method, None)

    def _recorder(self, method: str, original: Callable) -> Callable:
        def record(*args: Any, **kwargs: Any) -> Any:
            if self.magic_depth:  # a magic run by a magic: the outer one is recorded
                return original(*args, **kwargs)
            name = args[0] if method.startswith("run_") and args else None
            if method == "run_line_magic":  # IPython finds the caller's frame by depth
                kwargs["_stack_depth"] = kwargs.get("_stack_depth", 1) + 1
            quiet = name not in CODE_MAGICS
            self.magic_depth += 1
            self.quiet_depth += quiet
            try:
                result = original(*args, **kwargs)
            finally:
                self.magic_depth -= 1
                self.quiet_depth -= quiet
            self.calls.append((method, name, result))
            return result
        return record

    def replay(self, method: str, name: str | None) -> Any:
        for i in range(self.replayed, len(self.calls)):
            if self.calls[i][:2] == (method, name):
                self.replayed = i + 1
                return self.calls[i][2]
        return None

    def run_code_magic(self, name: str, line: str, cell: str | None,
                       namespace: dict[str, Any]) -> Any:
        """``%time``/``%%time`` and ``%%solution`` in the twin."""
        if name == "solution" and not strict():
            print(SOLUTION_SKIPPED)
            return None
        code = to_jax_source(self.shell.transform_cell(line if cell is None else cell))
        return _run_code(code, namespace, quiet=name == "solution")

    # -- the events

    def pre_run_cell(self, info: Any) -> None:
        if self.tee:  # the previous cell never reached post_run_cell
            self.tee.close()
        self.reporting = False
        self.before = dict(self.shell.user_ns)
        self.start_random = _random_state()
        self.tee = _Tee(self.shell, sys.stdout, lambda: self.quiet_depth > 0)
        self._record_magics()

    def post_run_cell(self, result: Any) -> None:
        self._stop_recording()
        stdout = self.tee.close() if self.tee else ""
        before, self.tee, self.before = self.before, None, None
        # The cell that loaded the extension started before there was a tee.
        if result is None or before is None or result.error_before_exec is not None:
            return
        source = result.info.raw_cell
        books = strict() or fingerprint(source) in self.book
        key = getattr(result.info, "cell_id", None) or fingerprint(source)
        try:
            problems, note = self._check(result, before, stdout, books)
        except Exception as crash:  # a broken check must not pass silently
            problems = [f"the parity check itself failed: {type(crash).__name__}: {crash}"]
            note = None
        if books:
            self.failures.pop(key, None)
            if problems:
                self.failures[key] = result.execution_count
                self._fail(result, problems)
            return
        self.reader_differing.pop(key, None)
        if problems:
            self.reader_differing[key] = result.execution_count
            note = side_by_side(problems)
        if note:
            print(note, file=sys.stderr)

    def _check(self, result: Any, before: dict[str, Any], stdout: str,
               books: bool) -> tuple[list[str], str | None]:
        """The differences (empty if none), and a note for the reader."""
        if self.reporting:
            self.reporting = False
            return [], None
        source = result.info.raw_cell
        if _is_skipped(source):
            self.skipped += 1
            self.skipped_names |= _user_names(before, self.shell.user_ns)
            return [], None
        code = self.shell.transform_cell(source)
        has_value = not DisplayHook.semicolon_at_end_of_expression(code)
        twin_before = dict(self.twin)
        real = self._run_twin(to_jax_source(code), has_value)
        mini = _Run(stdout, result.result, result.error_in_exec)
        one_library = _one_library_only(mini.error, real.error)
        if one_library:
            if books:
                self.compared += 1
                return [one_library], None
            self.skipped += 1
            self.skipped_names |= _user_names(before, self.shell.user_ns)
            # minijax's own error already said it (see _show_lacking).
            return [], None if lacking(mini.error) else one_library
        if not books and self._missing_on_jax(real.error) and mini.error is None:
            self.skipped += 1
            self.skipped_names |= _user_names(before, self.shell.user_ns)
            return [], (f"{real.error.name!r} exists only on minijax's side (it was "
                        f"defined in a cell marked '{SKIP_MARKER}', or one that JAX could "
                        "not run), so this cell was not compared with JAX.")
        if books:
            self.compared += 1
        else:
            self.reader_compared += 1
        problems = _compare_runs(mini, real, has_value)
        problems += self._variable_differences(before, twin_before)
        return problems + self._hints(real.error), None

    def _run_twin(self, code: str, has_value: bool) -> _Run:
        after_minijax = _random_state()
        _set_random_state(self.start_random)
        try:
            with _hidden_figures(), _capture_output() as out:
                try:
                    value = _run_code(code, self.twin, quiet=not has_value)
                except Exception as error:  # compared with minijax's
                    return _Run(out.getvalue(), error=error)
            return _Run(out.getvalue(), value)
        finally:
            _set_random_state(after_minijax)

    def _variable_differences(self, before: dict, twin_before: dict) -> list[str]:
        user_ns = self.shell.user_ns
        names = _user_names(before, user_ns) | _user_names(twin_before, self.twin)
        problems: list[str] = []
        for name in sorted(names):
            mini, real = user_ns.get(name, _MISSING), self.twin.get(name, _MISSING)
            if not (_is_data(mini) or _is_data(real)):
                continue
            if mini is _MISSING or real is _MISSING:
                side = "JAX's" if real is _MISSING else "minijax's"
                problems.append(_Problem(f"variable {name}: {side} run did not bind it",
                                         f"variable {name}",
                                         "(not bound)" if mini is _MISSING else _show(mini),
                                         "(not bound)" if real is _MISSING else _show(real)))
            else:
                problems += differences(mini, real, f"variable {name}")
        return problems

    def _hints(self, twin_error: BaseException | None) -> list[str]:
        if self._missing_on_jax(twin_error):
            return [f"hint: {twin_error.name!r} was defined in a cell marked "
                    f"'{SKIP_MARKER}', or one that JAX could not run, so it does not "
                    "exist on JAX's side"]
        return []

    def _missing_on_jax(self, twin_error: BaseException | None) -> bool:
        return isinstance(twin_error, NameError) and twin_error.name in self.skipped_names

    def _fail(self, result: Any, problems: list[str]) -> None:
        own_error = result.error_in_exec
        error = ParityError(_message("this cell", problems))
        # Failing the cell: ipykernel, nbclient and nbval all read error_in_exec.
        result.error_in_exec = error
        # Shown without a traceback: its frames would be this module's, not the cell's.
        self.shell.showtraceback(exc_tuple=(ParityError, error, None), exception_only=True)
        if own_error is not None:  # %tb and %debug go on showing the cell's own error
            sys.last_type, sys.last_value = type(own_error), own_error
            sys.last_traceback = own_error.__traceback__
            if hasattr(sys, "last_exc"):
                sys.last_exc = own_error

    def summary(self) -> str:
        compared = _plural(self.compared, "cell")
        return f"{compared} compared with JAX, {self.skipped} skipped ({SKIP_MARKER!r})"

    def reader_summary(self) -> str:
        differing = sorted(n for n in self.reader_differing.values() if n is not None)
        verdict = (f"{_plural(len(self.reader_differing), 'differs', 'differ')} "
                   f"(In {differing})" if self.reader_differing else "all agree")
        return (f"Your own cells: {_plural(self.reader_compared, 'cell')} compared with "
                f"JAX, {verdict}; they do not count in the chapter's check.")


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    if plural is not None:
        return f"{count} {noun if count == 1 else plural}"
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _show_lacking(shell: Any, etype: type, value: BaseException, tb: Any,
                  tb_offset: int | None = None) -> Any:
    """IPython's handler for ImportError and AttributeError in a reader's session:
    when minijax lacks something JAX has, one line says so instead of a traceback."""
    missing = lacking(value)
    if missing and missing[0] == "minijax" and _exists(_in_other_library(missing[1])):
        stb = [f"{etype.__name__}: {only_jax_message(missing[1])}"]
        sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # for %tb
        shell._showtraceback(etype, value, stb)
        return stb
    return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def solution(line: str, cell: str) -> None:
    """``%%solution``: the cell below the line is an exercise's solution. It runs
    only when ``PARITY_STRICT=1`` (when the book is checked); otherwise it prints
    where the solution is and how to run it."""
    if not strict():
        print(SOLUTION_SKIPPED)
        return
    shell = _SESSION.shell if _SESSION else None
    if shell is None:
        raise RuntimeError("%%solution needs the parity extension: run `%load_ext parity`")
    _run_code(shell.transform_cell(cell), shell.user_ns, quiet=True,
              filename=f"<solution, In [{shell.execution_count}]>")


_SESSION: _Session | None = None


def load_ipython_extension(shell: Any) -> None:
    """Entry point of ``%load_ext parity``."""
    global _SESSION
    if _SESSION is not None and _SESSION.shell is shell:
        return
    if _SESSION is not None:
        unload_ipython_extension(_SESSION.shell)
    _SESSION = _Session(shell)
    shell.events.register("pre_run_cell", _SESSION.pre_run_cell)
    shell.events.register("post_run_cell", _SESSION.post_run_cell)
    shell.register_magic_function(solution, "cell", "solution")
    if not strict() and not shell.custom_exceptions:
        shell.set_custom_exc((ImportError, AttributeError), _show_lacking)


def unload_ipython_extension(shell: Any) -> None:
    """Entry point of ``%unload_ext parity``."""
    global _SESSION
    if _SESSION is None or _SESSION.shell is not shell:
        return
    shell.events.unregister("pre_run_cell", _SESSION.pre_run_cell)
    shell.events.unregister("post_run_cell", _SESSION.post_run_cell)
    _SESSION._stop_recording()
    if shell.custom_exceptions == (ImportError, AttributeError):
        shell.set_custom_exc((), None)
    if _SESSION.tee:
        _SESSION.tee.close()
    _SESSION = None


def report() -> None:
    """Print how many cells were checked; raise if none were or any disagreed.

    Only the book's cells count; the reader's own cells get a line of their own.
    """
    if _SESSION is None:
        raise ParityError("the parity extension is not loaded: run `%load_ext parity` first")
    _SESSION.reporting = True  # this cell is not an example to compare
    if _SESSION.failures:
        cells = ", ".join(str(n) for n in _SESSION.failures.values())
        raise ParityError(f"{_SESSION.summary()}; cells {cells} disagree with JAX")
    if _SESSION.compared == 0:
        raise ParityError(f"{_SESSION.summary()}: nothing was checked")
    print(f"{_SESSION.summary()}: all agree.")
    if _SESSION.reader_compared or _SESSION.reader_differing:
        print(_SESSION.reader_summary())
