"""The parity check must fail on every kind of difference and pass on agreement."""

from __future__ import annotations

import collections
import re
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import parity
from parity import ParityError

Point = collections.namedtuple("Point", "x y")
Other = collections.namedtuple("Other", "x y")


def fails(mini, real) -> str:
    """Message of the ParityError that comparing mini with real raises."""
    with pytest.raises(ParityError) as caught:
        parity.compare(mini, real)
    return str(caught.value)


# ---------------------------------------------------------------------------
# compare: pytrees of arrays


def test_equal_pytrees_pass():
    tree = {"a": (jnp.arange(3.0), 2), "b": [jnp.float32(1.5), None], "p": Point(1.0, jnp.ones(2))}
    same = {"a": (jnp.arange(3.0), 2), "b": [jnp.float32(1.5), None], "p": Point(1.0, jnp.ones(2))}
    parity.compare(tree, same)


def test_float32_rounding_passes():
    parity.compare(jnp.sin(jnp.float32(1.0)), jnp.float32(np.sin(np.float64(1.0))))


def test_wrong_value_fails_and_says_where():
    message = fails(jnp.array([1.0, 2.0, 3.5]), jnp.array([1.0, 2.0, 3.0]))
    assert "values differ at 1 of 3 positions" in message
    assert "value[2]: minijax 3.5, JAX 3.0" in message


def test_small_but_real_difference_fails():
    fails(jnp.float32(1.0), jnp.float32(1.001))


def test_wrong_dtype_fails():
    assert "dtype is int32 in minijax, float32 in JAX" in fails(jnp.arange(3), jnp.arange(3.0))


def test_wrong_shape_fails():
    assert "shape is (3,) in minijax, (1, 3) in JAX" in fails(jnp.ones(3), jnp.ones((1, 3)))


def test_wrong_weak_type_fails():
    assert "weak_type is False in minijax, True in JAX" in fails(jnp.float32(1.0), jnp.asarray(1.0))


def test_array_without_weak_type_fails():
    class BareArray:  # an array type that forgot weak_type
        def __init__(self, value):
            self.value = np.asarray(value, np.float32)
            self.shape, self.dtype = self.value.shape, self.value.dtype

        def __array__(self, dtype=None, copy=None):
            return self.value

    assert "weak_type is None in minijax, False in JAX" in fails(BareArray(1.0), jnp.float32(1.0))


@pytest.mark.parametrize("mini, real", [
    ((jnp.ones(2), jnp.ones(2)), [jnp.ones(2), jnp.ones(2)]),  # tuple vs list
    ((jnp.ones(2),), (jnp.ones(2), jnp.ones(2))),  # length
    ({"a": 1.0}, {"b": 1.0}),  # keys
    (Point(1.0, 2.0), Other(1.0, 2.0)),  # namedtuple type
    (Point(1.0, 2.0), (1.0, 2.0)),  # namedtuple vs tuple
    (None, jnp.ones(2)),
    (1.0, jnp.float32(1.0)),  # Python float vs array
    (np.ones(2, np.float32), jnp.ones(2)),  # NumPy array vs JAX array
    (1, 1.0),  # int vs float
])
def test_wrong_structure_fails(mini, real):
    fails(mini, real)


def test_nan_and_inf_positions_must_match():
    nan, inf = float("nan"), float("inf")
    parity.compare(jnp.array([nan, 1.0, inf]), jnp.array([nan, 1.0, inf]))
    assert "values differ at 2 of 3" in fails(jnp.array([nan, 1.0, 0.0]), jnp.array([1.0, nan, 0.0]))
    fails(jnp.array([inf]), jnp.array([-inf]))
    fails(jnp.array([inf]), jnp.array([3.0e38]))
    fails(nan, 1.0)


def test_integers_compare_exactly():
    parity.compare(jnp.array([2**30]), jnp.array([2**30]))
    fails(jnp.array([2**30]), jnp.array([2**30 + 1]))


def test_other_objects_compare_by_what_they_print():
    class Jaxpr:
        def __init__(self, text):
            self.text = text

        def __repr__(self):
            return self.text

    parity.compare(Jaxpr("{ lambda ; a:f32[]. let b:f32[] = sin a in (b,) }"),
                   Jaxpr("{ lambda ; a:f32[]. let b:f32[] = sin a in (b,) }"))
    fails(Jaxpr("{ lambda ; a:f32[]. let b:f32[] = sin a in (b,) }"),
          Jaxpr("{ lambda ; a:f32[]. let b:f32[] = cos a in (b,) }"))


# ---------------------------------------------------------------------------
# text_differences: printed output


@pytest.mark.parametrize("mini, real", [
    ("0.84147096\n", "0.8414709\n"),  # float32 rounding
    ("[0.5403023 ]", "[0.54030234]"),  # NumPy pads columns differently
    ("Array(3.0485873, dtype=float32, weak_type=True)",
     "Array(3.0485874, dtype=float32, weak_type=True)"),
    ("1e-05 -inf nan", "1.0000001e-05 -inf nan"),
])
def test_equal_texts_pass(mini, real):
    assert parity.text_differences(mini, real) == []


@pytest.mark.parametrize("mini, real", [
    ("called f!\ncalled g!\n", "called g!\ncalled f!\n"),  # side-effect order
    ("called f!\n", "called f!\ncalled f!\n"),  # one line missing
    ("Array(1., dtype=float32)", "Array(1., dtype=float32, weak_type=True)"),
    ("dtype=float32", "dtype=float64"),  # digits inside a name are text
    ("3", "3.0"),  # an integer is not a float
    ("2", "3"),
    ("nan", "1.0"),
    ("inf", "-inf"),
    ("1.0", "1.1"),
    ("a:f32[3]", "a:f32[4]"),
])
def test_different_texts_fail(mini, real):
    assert parity.text_differences(mini, real) != []


def test_text_difference_names_the_lines():
    [problem] = parity.text_differences("a\nx = 1\n", "a\nx = 2\n")
    assert "minijax, line 2: 'x = 1'" in problem and "JAX,     line 2: 'x = 2'" in problem


# ---------------------------------------------------------------------------
# to_jax_source


def test_rewrites_the_name_minijax_only():
    source = (
        "import minijax.numpy as jnp\n"
        "from minijax import custom_jvp\n"
        "import minijax\n"
        "y = minijax.grad(f)(x) + minijax_helper  # minijax\n"
        "print('minijax')\n"
    )
    assert parity.to_jax_source(source) == (
        "import jax.numpy as jnp\n"
        "from jax import custom_jvp\n"
        "import jax\n"
        "y = jax.grad(f)(x) + minijax_helper  # minijax\n"
        "print('minijax')\n"
    )


def test_rewrites_several_names_on_one_line():
    assert parity.to_jax_source("a = minijax.x(minijax.y)") == "a = jax.x(jax.y)"


# ---------------------------------------------------------------------------
# assert_same: the API for tests


def fake_minijax(monkeypatch, **numpy_overrides) -> None:
    """Install a stand-in `minijax` that forwards to JAX, except for the overrides."""
    package = types.ModuleType("minijax")
    numpy_module = types.ModuleType("minijax.numpy")
    package.__getattr__ = lambda name: getattr(jax, name)
    numpy_module.__getattr__ = lambda name: getattr(jnp, name)
    for name, value in numpy_overrides.items():
        setattr(numpy_module, name, value)
    package.numpy = numpy_module
    monkeypatch.setitem(sys.modules, "minijax", package)
    monkeypatch.setitem(sys.modules, "minijax.numpy", numpy_module)


def slightly_wrong_sin(x):
    return jnp.sin(x) + 1e-3


def test_assert_same_passes_and_returns_minijax_result(monkeypatch):
    fake_minijax(monkeypatch)

    def example(lib, np_):
        print("slope:", lib.grad(np_.sin)(1.0))
        return np_.sin(np_.arange(3.0)), np.random.randn(2)

    result = parity.assert_same(example)
    assert result[0].shape == (3,)


def test_assert_same_fails_on_a_wrong_value(monkeypatch):
    fake_minijax(monkeypatch, sin=slightly_wrong_sin)
    with pytest.raises(ParityError, match="result: values differ at 3 of 3 positions"):
        parity.assert_same(lambda lib, np_: np_.sin(np_.arange(3.0)))


def test_assert_same_fails_on_wrong_printing(monkeypatch):
    fake_minijax(monkeypatch, sin=slightly_wrong_sin)
    with pytest.raises(ParityError, match="printed output differs"):
        parity.assert_same(lambda lib, np_: print(np_.sin(1.0)))


def test_assert_same_fails_on_side_effect_order(monkeypatch):
    fake_minijax(monkeypatch)

    def example(lib, np_):
        order = ["f", "g"] if lib.__name__ == "minijax" else ["g", "f"]
        for name in order:
            print(f"called {name}!")

    with pytest.raises(ParityError, match="printed output differs"):
        parity.assert_same(example)


def test_assert_same_compares_exceptions(monkeypatch):
    fake_minijax(monkeypatch)

    def raises_type_error(lib, np_):
        raise TypeError("same on both sides")

    with pytest.raises(TypeError):
        raises_type_error(jax, jnp)
    parity.assert_same(raises_type_error)

    def only_minijax_raises(lib, np_):
        if lib.__name__ == "minijax":
            raise ValueError("minijax only")

    with pytest.raises(ParityError, match="minijax raised ValueError: minijax only, JAX raised nothing"):
        parity.assert_same(only_minijax_raises)

    def different_types(lib, np_):
        raise (KeyError if lib.__name__ == "minijax" else IndexError)("x")

    with pytest.raises(ParityError, match="minijax raised KeyError"):
        parity.assert_same(different_types)


# ---------------------------------------------------------------------------
# The IPython extension, driven through a real InteractiveShell


@pytest.fixture
def shell(monkeypatch):
    """An IPython shell with the extension loaded and a stand-in minijax, in which
    every cell counts as the book's (as under nbval)."""
    monkeypatch.setenv("PARITY_STRICT", "1")
    yield from make_shell(monkeypatch)


@pytest.fixture
def reader(monkeypatch):
    """The same, as a reader has it in Jupyter: cells not stored in a chapter are
    the reader's own."""
    monkeypatch.delenv("PARITY_STRICT", raising=False)
    yield from make_shell(monkeypatch)


def make_shell(monkeypatch):
    fake_minijax(monkeypatch)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    config.InteractiveShell.colors = "nocolor"
    ipython = InteractiveShell.instance(config=config)
    ipython.reset()
    run(ipython, "%load_ext parity")
    yield ipython
    ipython.run_line_magic("unload_ext", "parity")
    ipython.reset()


REPORT_CELL = "import parity\nparity.report()"


def run(ipython, source: str):
    return ipython.run_cell(source, store_history=True)


def parity_message(result) -> str:
    """The message of the ParityError that failed a cell."""
    assert isinstance(result.error_in_exec, ParityError), result.error_in_exec
    return str(result.error_in_exec)


def test_agreeing_cells_pass_and_are_counted(shell, capsys):
    cells = [
        "import minijax.numpy as jnp\nfrom minijax import grad",
        "print(grad(jnp.sin)(1.0))",
        "grad(jnp.sin)(1.0)",
        "ys = jnp.sin(jnp.arange(4.0))\nparts = {'ys': ys, 'n': 4}",
        "import numpy as np\nsample = np.random.randn(3)",
        "1 / 0",  # both raise ZeroDivisionError
    ]
    results = [run(shell, cell) for cell in cells]
    for result in results[:-1]:
        assert result.success, result.error_in_exec
    assert type(results[-1].error_in_exec) is ZeroDivisionError
    capsys.readouterr()
    assert run(shell, REPORT_CELL).success
    assert capsys.readouterr().out.strip() == (
        "6 cells compared with JAX, 0 skipped ('# minijax only'): all agree.")


def test_minijax_output_still_reaches_the_notebook(shell, capsys):
    run(shell, "print('hello from the cell')")
    assert capsys.readouterr().out.count("hello from the cell") == 1


def install_wrong_sin(monkeypatch):
    monkeypatch.setattr(sys.modules["minijax.numpy"], "sin", slightly_wrong_sin, raising=False)


@pytest.mark.parametrize("cell, problem", [
    ("print(jnp.sin(1.0))", "printed output differs"),
    ("jnp.sin(jnp.arange(3.0))", "result: values differ"),
    ("y = jnp.sin(2.0)", "variable y: minijax gives"),  # never printed
    ("pair = (jnp.cos(1.0), jnp.sin(1.0))", r"variable pair\[1\]"),
])
def test_a_wrong_minijax_result_fails_the_cell(shell, monkeypatch, cell, problem):
    run(shell, "import minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    message = parity_message(run(shell, cell))
    assert message.startswith("this cell differs")
    assert re.search(problem, message)


def test_the_same_cell_passes_with_a_correct_minijax(shell):
    run(shell, "import minijax.numpy as jnp")
    for cell in ["print(jnp.sin(1.0))", "jnp.sin(jnp.arange(3.0))", "y = jnp.sin(2.0)"]:
        assert run(shell, cell).success


def test_a_failed_cell_makes_the_report_fail(shell, monkeypatch):
    run(shell, "import minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    run(shell, "y = jnp.sin(2.0)")
    result = run(shell, REPORT_CELL)
    assert "disagree with JAX" in parity_message(result)


def test_exception_only_on_one_side_fails(shell):
    result = run(shell, "import minijax\nif minijax.__name__ == 'minijax':\n    raise ValueError('boom')")
    assert "minijax raised ValueError: boom, JAX raised nothing" in parity_message(result)
    result = run(shell, "import minijax\nif minijax.__name__ == 'jax':\n    raise ValueError('boom')")
    assert "minijax raised nothing, JAX raised ValueError: boom" in parity_message(result)


def test_trailing_semicolon_hides_the_value_on_both_sides(shell, monkeypatch):
    run(shell, "import minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    # The value is not displayed, so it is not compared; nor is anything bound.
    assert run(shell, "jnp.sin(1.0);").success


def test_minijax_only_cells_are_skipped_and_counted(shell, capsys):
    assert run(shell, "# minijax only\nimport minijax\nprint(minijax.__name__)").success
    assert run(shell, "x = 2.0\nprint(x)").success
    capsys.readouterr()
    run(shell, REPORT_CELL)
    assert capsys.readouterr().out.strip() == (
        "1 cell compared with JAX, 1 skipped ('# minijax only'): all agree.")


def test_names_from_skipped_cells_are_missing_on_jax_with_a_hint(shell):
    run(shell, "# minijax only\nz = 3")
    result = run(shell, "print(z)")
    assert "'z' was defined in a cell marked '# minijax only'" in parity_message(result)


def test_report_fails_when_nothing_was_compared(shell):
    result = run(shell, REPORT_CELL)
    assert "nothing was checked" in parity_message(result)


def test_report_fails_without_the_extension():
    parity_session = parity._SESSION
    parity._SESSION = None
    try:
        with pytest.raises(ParityError, match="not loaded"):
            parity.report()
    finally:
        parity._SESSION = parity_session


def test_magics_run_once_and_the_twin_gets_their_results(shell):
    calls = []
    shell.register_magic_function(lambda line: calls.append(line) or len(calls), "line", "count")
    result = run(shell, "n = %count once\nprint(n)")
    assert result.success, result.error_in_exec
    assert calls == ["once"]
    result = run(shell, "words = !echo one two\nprint(words)")
    assert result.success, result.error_in_exec


def test_timings_are_not_compared(shell, monkeypatch):
    run(shell, "import minijax.numpy as jnp")
    assert run(shell, "%timeit -n 2 -r 2 jnp.sin(1.0)").success
    assert run(shell, "%time y = jnp.sin(2.0)").success
    assert run(shell, "%%time\nz = jnp.sin(2.0)\nprint(z)").success
    # %time's code runs on JAX too, so a wrong minijax still fails the cell.
    install_wrong_sin(monkeypatch)
    assert "variable y" in parity_message(run(shell, "%time y = jnp.sin(2.0)"))


def test_after_a_parity_error_tb_shows_no_frame_of_the_check(shell, monkeypatch):
    run(shell, "import minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    parity_message(run(shell, "jnp.sin(1.0)"))
    assert sys.last_traceback is None
    parity_message(run(shell, "y = jnp.sin(1.0)\nraise ValueError('own')"))
    assert str(sys.last_value) == "own"  # %tb shows the cell's own error


@pytest.mark.parametrize("mini, real", [
    ("<minijax.custom_derivatives.custom_jvp object at 0x7f3a2c1e5d90>",
     "<jax._src.custom_derivatives.custom_jvp object at 0x7f99aa01b2c0>"),
    ("CPU times: user 1.2 ms, sys: 0 ns, total: 1.2 ms\nWall time: 1.31 ms\n0.5\n", "0.5\n"),
    ("1.23 µs ± 4.56 ns per loop (mean ± std. dev. of 7 runs, 1,000,000 loops each)\n", ""),
    ("saved to /tmp/tmpab12cd/out.npy\n", "saved to /tmp/tmpzz98xy/out.npy\n"),
])
def test_run_specific_text_is_not_a_difference(mini, real):
    assert parity.text_differences(mini, real) == []


def test_functions_shown_by_identity_agree():
    def f(x):
        return x

    parity.compare(f, jax.jit(f))
    fails(f, 1.0)


# ---------------------------------------------------------------------------
# A reader's own cells


def as_the_books(monkeypatch, *cells: str) -> None:
    """Make these cells the book's, as if stored in a chapter."""
    monkeypatch.setattr(parity._SESSION, "book", frozenset(map(parity.fingerprint, cells)))


def test_a_readers_cell_that_differs_shows_a_table_and_does_not_fail(reader, monkeypatch, capsys):
    as_the_books(monkeypatch, "import minijax.numpy as jnp")
    run(reader, "import minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    result = run(reader, "y = jnp.sin(2.0)\njnp.sin(1.0)")
    assert result.success
    note = capsys.readouterr().err
    assert note.startswith("minijax and JAX differ on this cell. It is yours")
    lines = note.splitlines()
    assert lines[1].split() == ["minijax", "JAX"]
    assert lines[2].split()[:3] == ["result", "0.84247094", "0.84147096"]
    assert lines[3].split()[:2] == ["variable", "y"]
    assert "Traceback" not in note and len(lines) == 4
    assert run(reader, REPORT_CELL).success
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "1 cell compared with JAX, 0 skipped ('# minijax only'): all agree.",
        "Your own cells: 1 cell compared with JAX, 1 differs (In [3]); they do not "
        "count in the chapter's check."]


def test_a_readers_function_object_passes(reader, capsys):
    run(reader, "import minijax.numpy as jnp\nfrom minijax import custom_jvp")
    assert run(reader, "f = custom_jvp(jnp.sin)\nf").success
    assert run(reader, "def g(x):\n    return x\ng").success
    assert capsys.readouterr().err == ""


def test_a_book_cell_counts_in_the_report_and_a_passing_rerun_clears_it(shell, monkeypatch):
    run(shell, "import minijax.numpy as jnp")
    with monkeypatch.context() as patch:
        install_wrong_sin(patch)
        parity_message(run(shell, "y = jnp.sin(2.0)"))
    assert run(shell, "y = jnp.sin(2.0)").success
    assert run(shell, REPORT_CELL).success


def test_the_books_cells_are_those_stored_in_its_notebooks(reader, monkeypatch, tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = jnp.sin(2.0)  ")])
    nbformat.write(notebook, tmp_path / "chapter.ipynb")
    monkeypatch.setattr(parity._SESSION, "book", parity.book_fingerprints(tmp_path))
    run(reader, "import minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    assert "variable y" in parity_message(run(reader, "y = jnp.sin(2.0)\n"))  # the book's
    assert run(reader, "y = jnp.sin(2.0) + 0").success  # changed: the reader's


def test_something_only_jax_has_is_said_in_one_line(reader, monkeypatch, capsys):
    minijax = sys.modules["minijax"]
    monkeypatch.setattr(minijax, "__getattr__", lambda name: (
        (_ for _ in ()).throw(AttributeError(name)) if name == "hessian" else getattr(jax, name)))
    as_the_books(monkeypatch, "x = 1")
    run(reader, "x = 1")
    result = run(reader, "from minijax import hessian")
    assert isinstance(result.error_in_exec, ImportError)
    out, err = capsys.readouterr()
    assert err == ""
    assert out.strip() == ("ImportError: minijax.hessian does not exist; JAX has jax.hessian. "
                           "minijax builds part of JAX's API: the page 'minijax and JAX' "
                           "lists what it lacks.")
    assert run(reader, REPORT_CELL).success


def test_something_only_minijax_has_is_said_in_one_line(reader, monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["minijax"], "only_here", 2.0, raising=False)
    result = run(reader, "from minijax import only_here\nprint(only_here)")
    assert result.success
    assert capsys.readouterr().err.strip() == (
        "minijax.only_here exists only in minijax (JAX has no jax.only_here): this cell "
        "was not compared with JAX, and what it defines exists only on minijax's side.")
    result = run(reader, "print(only_here + 1)")  # JAX's side has no only_here
    assert result.success
    assert capsys.readouterr().err.startswith("'only_here' exists only on minijax's side")


def test_something_only_minijax_has_fails_a_book_cell(shell, monkeypatch):
    monkeypatch.setattr(sys.modules["minijax"], "only_here", 2.0, raising=False)
    message = parity_message(run(shell, "from minijax import only_here"))
    assert message.endswith("exists only on minijax's side.")
    assert message.count("\n") == 1


SOLUTION_CELL = "%%solution\nimport minijax.numpy as jnp\nanswer = jnp.sin(2.0)\nprint('check passed')"


def test_a_solution_runs_on_both_libraries_when_the_book_is_checked(shell, monkeypatch, capsys):
    assert run(shell, SOLUTION_CELL).success
    assert "check passed" in capsys.readouterr().out
    install_wrong_sin(monkeypatch)
    assert "variable answer" in parity_message(run(shell, SOLUTION_CELL))


def test_a_solution_marked_minijax_only_is_skipped(shell, capsys):
    cell = "%%solution\n# minijax only\nimport minijax\nprint(minijax.__name__)"
    assert run(shell, cell).success
    assert "minijax" in capsys.readouterr().out
    run(shell, "x = 2.0")
    run(shell, REPORT_CELL)
    assert capsys.readouterr().out.strip() == (
        "1 cell compared with JAX, 1 skipped ('# minijax only'): all agree.")


def test_a_solution_does_not_run_for_a_reader(reader, capsys):
    assert run(reader, SOLUTION_CELL).success
    out, err = capsys.readouterr()
    assert "answer" not in reader.user_ns
    assert out.startswith("This is the exercise's solution, folded away")
    assert "check passed" not in out and err == ""


def test_twin_plots_stay_out_of_the_notebook(shell):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    cell = ("import matplotlib.pyplot as plt\nimport minijax.numpy as jnp\n"
            "xs = jnp.linspace(0.0, 1.0, 5)\nplt.plot(xs, jnp.sin(xs))\nplt.show()")
    assert run(shell, cell).success
    # Only minijax's figure exists, and it holds only minijax's line.
    assert plt.get_fignums() == [1]
    assert len(plt.figure(1).axes[0].lines) == 1
    plt.close("all")


def test_a_plotted_array_is_checked(shell, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    run(shell, "import matplotlib.pyplot as plt\nimport minijax.numpy as jnp")
    install_wrong_sin(monkeypatch)
    result = run(shell, "xs = jnp.linspace(0.0, 1.0, 5)\nys = jnp.sin(xs)\nplt.plot(xs, ys);")
    assert "variable ys: values differ" in parity_message(result)
    import matplotlib.pyplot as plt

    plt.close("all")
