"""The differential fuzzer (tests/fuzz.py): a seeded run, and checks of its registries.

The seeded run draws the same programs on every run (derandomized). A mismatch that
neither registry explains fails, with the program shrunk by Hypothesis; the counts of
skipped mismatches are printed at the end of pytest's report. For a long run with
other programs: ``.venv/bin/python tests/fuzz.py 5000`` (see the README).
"""

from __future__ import annotations

import io
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings

import fuzz
from differences import DELIBERATE
from unfixed_bugs import UNFIXED_BUGS

SEEDED_PROGRAMS = 400  # about a minute on two cores


def test_seeded_programs_agree_with_jax(record_property):
    tally = fuzz.Tally()

    @settings(max_examples=SEEDED_PROGRAMS, derandomize=True, **fuzz.SETTINGS)
    @given(fuzz.programs())
    def check(program):
        mismatch = fuzz.compare(program)
        if tally.record(mismatch, program) is None and mismatch is not None:
            raise AssertionError("minijax and JAX disagree, and neither "
                                 "tests/differences.py nor tests/unfixed_bugs.py explains "
                                 f"it:\n{mismatch.describe()}")

    try:
        check()
    finally:
        record_property("fuzz", tally.summary())
        print(tally.summary())


def _mismatch(entry):
    return fuzz.compare(fuzz.Program.from_source(entry.source, entry.x, entry.y))


@pytest.mark.parametrize("entry", UNFIXED_BUGS, ids=lambda e: e.name)
def test_each_unfixed_bug_still_reproduces(entry):
    mismatch = _mismatch(entry)
    assert mismatch is not None, (
        f"{entry.name} no longer reproduces: minijax now agrees with JAX on its example. "
        f"Remove the entry from tests/unfixed_bugs.py.")
    assert fuzz.explain(mismatch) == ("unfixed", entry.name), mismatch.describe()


@pytest.mark.parametrize("entry", DELIBERATE, ids=lambda e: e.name)
def test_each_deliberate_difference_shows_in_its_example(entry):
    mismatch = _mismatch(entry)
    assert mismatch is not None, f"{entry.name}: minijax and JAX agree on the example"
    assert fuzz.explain(mismatch) == ("deliberate", entry.name), mismatch.describe()


def test_entries_have_distinct_names():
    names = [e.name for e in DELIBERATE + UNFIXED_BUGS]
    assert len(names) == len(set(names))


OFF_BY_A_THOUSANDTH = """
def program(x, y):
    return jnp.tanh(x) + (1e-3 if jax.__name__ == "minijax" else 0.)
"""


def test_an_unexplained_mismatch_fails():
    """No registry explains a plain wrong value, even on inputs at float32's edges."""
    for x in (np.array([0.5, -1.0], np.float32), np.array([1e30, -100.0], np.float32)):
        mismatch = fuzz.compare(fuzz.Program.from_source(OFF_BY_A_THOUSANDTH, x, 0.0))
        assert mismatch is not None and fuzz.explain(mismatch) is None


def test_a_report_runs_on_jax_as_printed():
    """The source a report prints is the program that ran."""
    mismatch = fuzz.compare(fuzz.Program.from_source(OFF_BY_A_THOUSANDTH,
                                                     np.array([0.5], np.float32), 0.0))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(mismatch.program.report_source(), {"__name__": "report"})
    assert out.getvalue().strip() == str(mismatch.real.value)


def test_a_long_run_prints_a_shrunk_program(monkeypatch):
    """The command-line run shrinks an unexplained mismatch and prints it."""
    from hypothesis import strategies as st

    sizes = st.integers(1, 6).map(lambda n: fuzz.Program.from_source(
        OFF_BY_A_THOUSANDTH, np.linspace(-1., 1., n).astype(np.float32), 0.0))
    monkeypatch.setattr(fuzz, "programs", lambda: sizes)
    lines = []
    tally = fuzz.long_run(5, seed=3, out=lines.append)
    text = "\n".join(lines)
    assert tally.unexplained >= 1 and "=== unexplained mismatch 1: result: values" in text
    assert "x = np.array([-1.], np.float32)" in text  # shrunk to one element
    assert "1 distinct unexplained mismatch," in text


def test_the_book_renders_the_registry_of_deliberate_differences():
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "_ext"))
    try:
        import book_site
    finally:
        sys.path.remove(str(root / "_ext"))
    entries = book_site.deliberate_differences(root / "tests" / "differences.py")
    assert [e.name for e in entries] == [e.name for e in DELIBERATE]
    for entry in entries:
        assert entry.text.count("`") % 2 == 0, f"{entry.name}: unbalanced backticks"


CLOSURE_UNDER_JIT = """
def f(x, y):
    c = jnp.mean(y)
    @jax.custom_jvp
    def g(a):
        return jnp.sin(a) * c
    g.defjvp(lambda p, t: (g(p[0]), jnp.cos(p[0]) * c * t[0]))
    {use}
def program(x, y):
    return jax.jvp(lambda y: jax.jit(f)(x, y), (y,), (jnp.ones_like(y),))
"""


@pytest.mark.parametrize("use", ["return g(y)", "g(y)\n    return jnp.sin(y)",
                                 "g(x)\n    return jnp.sin(y)", "return jnp.sin(y)"])
def test_closure_under_jit_is_the_closure_whether_or_not_it_is_used(use):
    """JAX fails on the first (internal TypeError), returns on the second and third
    (the rule's result is dead code; in the third the rule closes over a value that is
    not differentiated): the entry explains all three. The last calls no rule."""
    mismatch = fuzz.compare(fuzz.Program.from_source(
        CLOSURE_UNDER_JIT.format(use=use), np.float32(0.5), np.float32(-1.0)))
    if use == "return jnp.sin(y)":
        assert mismatch is None
    else:
        assert fuzz.explain(mismatch) == ("deliberate", "closure_under_jit"), \
            mismatch.describe()


def test_a_long_run_out_of_shrinking_budget_prints_the_smallest_so_far(monkeypatch):
    """When the budget of shrinking attempts runs out, the report is the smallest
    failing program found by then, and says so."""
    from hypothesis import strategies as st

    sizes = st.integers(1, 6).map(lambda n: fuzz.Program.from_source(
        OFF_BY_A_THOUSANDTH, np.linspace(-1., 1., n).astype(np.float32), 0.0))
    monkeypatch.setattr(fuzz, "programs", lambda: sizes)
    monkeypatch.setattr(fuzz, "SHRINK_BUDGET", 2)
    lines = []
    fuzz.long_run(5, seed=3, out=lines.append)
    text = "\n".join(lines)
    assert "(shrunk as far as 2 attempts went)" in text
    assert "x = np.array([" in text
