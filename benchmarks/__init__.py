"""minijax's benchmarks against JAX, HIPS autograd and hand-written NumPy.

Run them all with ``.venv/bin/python -m benchmarks`` (several minutes: the last
measure runs the whole test command), or some by number:
``.venv/bin/python -m benchmarks 1 2 3``.  They need the packages of
``requirements-bench.txt``.  They are not tests: CI does not run them, and no
figure here fails anything; a missed target prints the profile that shows why.
"""
