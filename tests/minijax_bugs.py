"""Known differences between minijax and JAX, each the reason of a strict xfail.

A test marked with one of these fails (as expected) until minijax is fixed; then it
passes, and because the mark is strict, pytest reports that so the mark is removed.
"""

