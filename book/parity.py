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
(it may show minijax's own source, say). Because the twin never sees such a cell,
names it defines do not exist in the twin: later cells must not rely on them.

A chapter ends with a hidden cell that calls ``parity.report()``, which prints how
many cells were compared and fails if none were, or if any disagreed.

Tests use the same comparison without a notebook: ``assert_same(fn)`` runs
``fn(jax_like, jax_like.numpy)`` once with minijax and once with JAX, and
``compare(mini, real)`` compares two values.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import io
import os
import random
import re
import sys
import tokenize
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

# Names IPython manages itself; they differ between the two runs by design.
_SHELL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_MISSING = object()


class ParityError(AssertionError):
    """minijax and JAX disagree."""


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
        return [
            f"{path}: minijax gives a {kind_mini}, JAX a {kind_real}\n"
            f"    minijax: {_show(mini)}\n    JAX:     {_show(real)}"
        ]
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
        return [f"{path}: minijax gives {_show(mini)}, JAX {_show(real)}"]
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
        return [f"{path}: minijax gives {len(mini)} items, JAX {len(real)}"]
    problems: list[str] = []
    for i, (a, b) in enumerate(zip(mini, real)):
        problems += differences(a, b, f"{path}[{i}]")
    return problems


def _dict_differences(mini: dict, real: dict, path: str) -> list[str]:
    if set(mini) != set(real):
        return [f"{path}: minijax has keys {sorted(map(repr, mini))}, "
                f"JAX {sorted(map(repr, real))}"]
    problems: list[str] = []
    for key in sorted(mini, key=repr):
        problems += differences(mini[key], real[key], f"{path}[{key!r}]")
    return problems


def _array_differences(mini: Any, real: Any, path: str) -> list[str]:
    problems = []
    for attribute in ("shape", "dtype", "weak_type"):
        a, b = _array_attribute(mini, attribute), _array_attribute(real, attribute)
        if a != b:
            problems.append(f"{path}: {attribute} is {a} in minijax, {b} in JAX")
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
        return [f"{path}: minijax gives {a[()]!s}, JAX {b[()]!s}"]
    where = [tuple(int(i) for i in index) for index in np.argwhere(wrong)[:MAX_SHOWN]]
    lines = [f"{path}: values differ at {int(wrong.sum())} of {wrong.size} positions"]
    for index in where:
        label = ", ".join(map(str, index))
        lines.append(f"    at {path}[{label}]: minijax {a[index]!s}, JAX {b[index]!s}")
    return ["\n".join(lines)]


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise agreement: exact for integers, float32 tolerance for floats."""
    if a.dtype.kind not in "biufc":  # e.g. bfloat16 from ml_dtypes
        a, b = a.astype(np.float64), b.astype(np.float64)
    if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
        return np.asarray(a == b)
    both_nan = np.isnan(a) & np.isnan(b)
    # isclose already demands that infinities match in place and sign.
    return np.isclose(a, b, rtol=RTOL, atol=ATOL) | both_nan


def _object_differences(mini: Any, real: Any, path: str) -> list[str]:
    """Other objects (jaxprs, functions, ...) are compared by what they print."""
    if type(mini).__name__ != type(real).__name__:
        return [f"{path}: minijax gives a {type(mini).__name__}, "
                f"JAX a {type(real).__name__}"]
    return text_differences(repr(mini), repr(real), f"{path} (as printed)")


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
    return problem


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
    if mini is None or real is None:
        return [f"exception: minijax {_describe(mini)}, JAX {_describe(real)}"]
    if type(mini).__name__ != type(real).__name__:
        return [f"exception: minijax {_describe(mini)}, JAX {_describe(real)}"]
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


def _compile_cell(code: str, quiet: bool) -> tuple[CodeType, CodeType | None]:
    """Compile a cell's body, and its last expression separately to get its value."""
    tree = ast.parse(code)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not quiet:
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, "<cell run on JAX>", "exec")
    return body, compile(last, "<cell run on JAX>", "eval") if last else None


def _is_skipped(source: str) -> bool:
    for line in source.splitlines():
        if line.strip():
            return line.strip() == SKIP_MARKER
    return False


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

    def __init__(self, shell: Any, stream: Any) -> None:
        self.shell, self.stream, self.parts = shell, stream, []
        self.had_own_write = "write" in vars(stream)
        self.saved_write = stream.write
        stream.write = self.write

    def write(self, data: str, *args: Any, **kwargs: Any) -> Any:
        # Like IPython's own history tee: skip the display hook's "Out[n]:" echo
        # and tracebacks, which are not the cell's printing.
        if not (_flag(self.shell.displayhook, "is_active")
                or _flag(self.shell.display_pub, "is_publishing")
                or _flag(self.shell, "showing_traceback")):
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
# The IPython extension


class _Session:
    """Per-shell state of the extension: the twin namespace and the counts."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.twin: dict[str, Any] = {"__name__": "__main__", "get_ipython": shell.get_ipython}
        self.compared = 0
        self.skipped = 0
        self.failures: list[int | None] = []
        self.skipped_names: set[str] = set()
        self.reporting = False
        self.before: dict[str, Any] | None = None
        self.tee: _Tee | None = None
        self.start_random: tuple[Any, Any] | None = None

    def pre_run_cell(self, info: Any) -> None:
        if self.tee:  # the previous cell never reached post_run_cell
            self.tee.close()
        self.reporting = False
        self.before = dict(self.shell.user_ns)
        self.start_random = _random_state()
        self.tee = _Tee(self.shell, sys.stdout)

    def post_run_cell(self, result: Any) -> None:
        stdout = self.tee.close() if self.tee else ""
        before, self.tee, self.before = self.before, None, None
        # The cell that loaded the extension started before there was a tee.
        if result is None or before is None or result.error_before_exec is not None:
            return
        try:
            problems = self._check(result, before, stdout)
        except Exception as crash:  # a broken check must not pass silently
            problems = [f"the parity check itself failed: {type(crash).__name__}: {crash}"]
        if problems:
            self._fail(result, problems)

    def _check(self, result: Any, before: dict[str, Any], stdout: str) -> list[str]:
        if self.reporting:
            self.reporting = False
            return []
        source = result.info.raw_cell
        if _is_skipped(source):
            self.skipped += 1
            self.skipped_names |= _user_names(before, self.shell.user_ns)
            return []
        self.compared += 1
        code = self.shell.transform_cell(source)
        has_value = not DisplayHook.semicolon_at_end_of_expression(code)
        twin_before = dict(self.twin)
        real = self._run_twin(to_jax_source(code), has_value)
        mini = _Run(stdout, result.result, result.error_in_exec)
        problems = _compare_runs(mini, real, has_value)
        problems += self._variable_differences(before, twin_before)
        return problems + self._hints(real.error)

    def _run_twin(self, code: str, has_value: bool) -> _Run:
        after_minijax = _random_state()
        _set_random_state(self.start_random)
        try:
            with _hidden_figures(), _capture_output() as out:
                try:
                    body, last = _compile_cell(code, quiet=not has_value)
                    exec(body, self.twin)
                    value = eval(last, self.twin) if last else None
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
                problems.append(f"variable {name}: {side} run did not bind it")
            else:
                problems += differences(mini, real, f"variable {name}")
        return problems

    def _hints(self, twin_error: BaseException | None) -> list[str]:
        if isinstance(twin_error, NameError) and twin_error.name in self.skipped_names:
            return [f"hint: {twin_error.name!r} was defined in a cell marked "
                    f"'{SKIP_MARKER}', which never runs on JAX"]
        return []

    def _fail(self, result: Any, problems: list[str]) -> None:
        self.failures.append(result.execution_count)
        error = ParityError(_message("this cell", problems))
        # Failing the cell: ipykernel, nbclient and nbval all read error_in_exec.
        result.error_in_exec = error
        try:
            raise error
        except ParityError:
            self.shell.showtraceback(exception_only=True)

    def summary(self) -> str:
        compared = _plural(self.compared, "cell")
        return f"{compared} compared with JAX, {self.skipped} skipped ({SKIP_MARKER!r})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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


def unload_ipython_extension(shell: Any) -> None:
    """Entry point of ``%unload_ext parity``."""
    global _SESSION
    if _SESSION is None or _SESSION.shell is not shell:
        return
    shell.events.unregister("pre_run_cell", _SESSION.pre_run_cell)
    shell.events.unregister("post_run_cell", _SESSION.post_run_cell)
    if _SESSION.tee:
        _SESSION.tee.close()
    _SESSION = None


def report() -> None:
    """Print how many cells were checked; raise if none were or any disagreed."""
    if _SESSION is None:
        raise ParityError("the parity extension is not loaded: run `%load_ext parity` first")
    _SESSION.reporting = True  # this cell is not an example to compare
    if _SESSION.failures:
        cells = ", ".join(str(n) for n in _SESSION.failures)
        raise ParityError(f"{_SESSION.summary()}; cells {cells} disagree with JAX")
    if _SESSION.compared == 0:
        raise ParityError(f"{_SESSION.summary()}: nothing was checked")
    print(f"{_SESSION.summary()}: all agree.")
