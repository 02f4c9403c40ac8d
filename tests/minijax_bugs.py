"""Known differences between minijax and JAX, each the reason of a strict xfail.

A test marked with one of these fails (as expected) until minijax is fixed; then it
passes, and because the mark is strict, pytest reports that so the mark is removed.
"""

FLOAT0_TANGENT = ("minijax: the tangent of a boolean output is an array of bool zeros; JAX "
                  "gives float0 tangents to boolean (and integer) outputs")
